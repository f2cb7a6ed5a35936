"""The fake engine the window tests use (tests/gui/fake_engine.py) speaks the real engine's event
schema: the same events, fields, field types (numpy arrays included) and nested keys, in the same
order, for a finished run and for one paused, resumed and stopped.

Why: the window tests run in milliseconds on the fake, so they are only worth something while the
fake looks like the engine. The real engine runs here once per scenario (the embedded demo, one
epoch); when the engine's events change, this test names each difference, and the fake is fixed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kdgui.core.config import ExperimentConfig, demo_config
from kdgui.core.events import Event, RunControl, RunStarted, StepEvent
from tests.gui.fake_engine import fake_run

#: Events the real engine sends that the fake may leave out, and why.
FAKE_MAY_OMIT = {
    # the fake has no torch, so it writes no model file, and it announces none
    ("artifact", "student"),
}

RunFn = Callable[..., Iterator[Event]]


def _real_run() -> RunFn:
    try:
        from kdgui.engine.jobs import run  # the facade, once it provides the run job
    except ImportError:
        from kdgui.engine.session import run
    return run


def _config() -> ExperimentConfig:
    config = demo_config()
    config.training.epochs = 1
    config.training.log_every = 5
    return config


def _finished(run_fn: RunFn, out: Path) -> list[Event]:
    return list(run_fn(_config(), out, control=RunControl()))


def _paused_resumed_stopped(run_fn: RunFn, out: Path) -> list[Event]:
    """Pause after the first step event, resume from another thread (as the window does), and
    stop once resumed; the events are what a window would see."""
    control = RunControl()
    events: list[Event] = []
    resumer: threading.Timer | None = None
    for event in run_fn(_config(), out, control=control):
        events.append(event)
        if isinstance(event, StepEvent) and resumer is None:
            control.pause()
            resumer = threading.Timer(0.2, control.resume)
            resumer.start()
        elif getattr(event, "state", None) == "resumed":
            control.stop()
    assert resumer is not None, "no step event: the run could not be paused"
    resumer.join()
    return events


SCENARIOS = {"finished": _finished, "paused-resumed-stopped": _paused_resumed_stopped}


def signature(value: Any) -> Any:
    """The schema of a value: dict keys, list element schemas, numpy dtype and rank, types."""
    if isinstance(value, np.ndarray):
        return f"ndarray[{value.dtype}, ndim={value.ndim}]"
    if isinstance(value, dict):
        return {str(k): signature(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return ("list", frozenset(repr(signature(v)) for v in value))
    return type(value).__name__


def _key(event: Event) -> tuple[str, str]:
    """Events of one kind that differ by role (teacher/student stage, each artifact, each state)
    carry different fields: compare them role by role."""
    role = getattr(event, "name", None) or getattr(event, "what", None) or getattr(event, "state",
                                                                                    None)
    return event.kind, str(role or "")


def _fields(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__ if name != "kind"}


def schema_differences(real: Any, fake: Any, where: str) -> list[str]:
    """Each place where the fake's schema differs from the real one, as a readable line."""
    if isinstance(real, dict) and isinstance(fake, dict):
        out = [f"{where}: the fake lacks {k!r}" for k in real.keys() - fake.keys()]
        out += [f"{where}: the fake adds {k!r}" for k in fake.keys() - real.keys()]
        for k in real.keys() & fake.keys():
            out += schema_differences(real[k], fake[k], f"{where}.{k}")
        return out
    if isinstance(real, tuple) and isinstance(fake, tuple):  # lists
        if not real[1]:  # the real list is empty here: the fake's must be too
            return [] if not fake[1] else [f"{where}: the real list is empty, the fake's not"]
        if not fake[1]:
            return [f"{where}: the fake's list is empty, the real one holds {sorted(real[1])[0]}"]
        return [f"{where}[]: the fake has {item}, the real one only {sorted(real[1])}"
                for item in fake[1] - real[1]]
    return [] if real == fake else [f"{where}: real {real}, fake {fake}"]


def _first_by_key(events: list[Event]) -> dict[tuple[str, str], Event]:
    out: dict[tuple[str, str], Event] = {}
    for event in events:
        out.setdefault(_key(event), event)
    return out


def _order(events: list[Event]) -> list[str]:
    """The run's story with repeats folded: ``started step epoch stage artifact finished``."""
    story: list[str] = []
    for event in events:
        word = event.kind if event.kind != "state" else f"state:{event.state}"
        if not story or story[-1] != word:
            story.append(word)
    return story


@pytest.fixture(scope="module")
def real_events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Event]]:
    run = _real_run()
    return {name: scenario(run, tmp_path_factory.mktemp(f"real-{name}") / "run")
            for name, scenario in SCENARIOS.items()}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fake_engine_sends_the_real_engines_events_and_fields(
    scenario: str, real_events: dict[str, list[Event]], tmp_path: Path
) -> None:
    real = _first_by_key(real_events[scenario])
    fake_events = SCENARIOS[scenario](fake_run, tmp_path / "run")
    fake = _first_by_key(fake_events)
    assert real.keys() - fake.keys() <= FAKE_MAY_OMIT, "the fake never sends these"
    assert fake.keys() <= real.keys(), "the fake sends events the engine never does"
    problems: list[str] = []
    for key in real.keys() & fake.keys():
        problems += schema_differences(signature(_fields(real[key])),
                                       signature(_fields(fake[key])), ":".join(key))
        problems += schema_differences(signature(real[key].to_dict()),
                                       signature(fake[key].to_dict()), ":".join(key) + " (json)")
    assert problems == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fake_engine_tells_the_run_in_the_real_engines_order(
    scenario: str, real_events: dict[str, list[Event]], tmp_path: Path
) -> None:
    fake_events = SCENARIOS[scenario](fake_run, tmp_path / "run")
    real_story = _order([e for e in real_events[scenario] if _key(e) not in FAKE_MAY_OMIT])
    assert _order(fake_events) == real_story
    # "log": the fast-path lines (how teacher and student run) that follow RunStarted
    if scenario == "finished":
        assert real_story == ["started", "log", "step", "epoch", "stage", "artifact", "finished"]
    else:
        assert real_story[:6] == ["started", "log", "step", "state:paused", "state:resumed",
                                  "state:stopped"]
    for events in (real_events[scenario], fake_events):  # numbers a plot relies on
        steps = [e for e in events if isinstance(e, StepEvent)]
        assert [e.step for e in steps] == sorted({e.step for e in steps})
        per_epoch = next(e for e in events if isinstance(e, RunStarted)).steps_per_epoch
        # every log_every steps, and each epoch's first step: a live plot's point at once
        assert steps[0].step == 1
        assert all(e.step % _config().training.log_every == 0 or (e.step - 1) % per_epoch == 0
                   for e in steps)
        assert all(len(e.layer_names) == e.sparsity.size for e in steps)
        assert [e.progress for e in steps] == sorted(e.progress for e in steps)
        assert events[-1].stopped is (scenario != "finished")


def test_fake_engine_takes_the_run_jobs_keywords() -> None:
    """The window calls the engine's run job with keywords (control, resume, ...); the fake must
    take each of them, with the same defaults."""
    import inspect

    from kdgui.engine.jobs import run as job

    real = inspect.signature(job).parameters
    fake = inspect.signature(fake_run).parameters
    assert {"control", "resume"} <= set(real)
    for name, param in real.items():
        assert name in fake and fake[name].kind == param.kind, name
        if name != "runs_root":  # the fake's default is a plain folder, the engine's the config's
            assert fake[name].default == param.default, name
