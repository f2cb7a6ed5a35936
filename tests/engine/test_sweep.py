"""Sweeps: planning (keys, shorthands, validation), Pareto fronts, N runs, cancelling mid-sweep."""

from __future__ import annotations

import csv
import json
import random

import pytest

from kdgui.core.config import demo_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import RunControl, RunFailed, RunFinished, StepEvent
from kdgui.engine.sweep import (
    SweepFinished,
    SweepRunDone,
    SweepRunEvent,
    SweepStarted,
    pareto_front,
    parse_vary,
    plan_sweep,
    run_sweep,
    vary_config,
)


def _tiny(epochs: int = 1):
    """The demo, made as small as a test can afford on two shared cores."""
    cfg = demo_config()
    cfg.data.limit = 240
    cfg.training.epochs = epochs
    cfg.training.log_every = 1
    cfg.training.num_threads = 1
    return cfg


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------ planning


def test_parse_vary_reads_yaml_scalars() -> None:
    assert parse_vary("distill.temperature=1,4,8") == ("distill.temperature", [1, 4, 8])
    assert parse_vary("width = 0.5, 1.0") == ("width", [0.5, 1.0])
    for bad in ("distill.temperature", "=1,2", "T=1,,2", "T="):
        with pytest.raises(ConfigError):
            parse_vary(bad)


def test_shorthands_map_onto_the_config() -> None:
    base = demo_config()
    assert vary_config(base, "T", 8).distill.temperature == 8
    assert vary_config(base, "alpha", 0.2).distill.alpha == 0.2
    assert vary_config(base, "width", 0.5).student.width == 0.5
    pruned = vary_config(base, "prune.sparsity", 0.9)
    (step,) = pruned.compression.steps
    assert (step.kind, step.method, step.params["sparsity"]) == ("prune", "magnitude", 0.9)


def test_compression_shorthand_sets_existing_step_and_keeps_deep_compression_order() -> None:
    base = vary_config(demo_config(), "quantize.bits", 8)
    both = vary_config(base, "prune.sparsity", 0.5)
    assert [s.kind for s in both.compression.steps] == ["prune", "quantize"]
    again = vary_config(both, "quantize.bits", 4)
    assert [s.params.get("bits") for s in again.compression.steps] == [None, 4]
    lowrank = vary_config(again, "lowrank.rank_fraction", 0.25)
    assert [s.kind for s in lowrank.compression.steps] == ["prune", "lowrank", "quantize"]
    by_index = vary_config(again, "compression.steps.0.params.sparsity", 0.7)
    assert by_index.compression.steps[0].params["sparsity"] == 0.7


def test_bad_values_fail_before_any_run_naming_the_value(tmp_path) -> None:
    with pytest.raises(ConfigError, match="bits"):
        plan_sweep(demo_config(), "quantize.bits", [8, 1])
    with pytest.raises(ConfigError, match="temperature"):
        plan_sweep(demo_config(), "distill.temperature", [4, -1])
    with pytest.raises(ConfigError, match="tempx"):
        plan_sweep(demo_config(), "distill.tempx", [1])
    with pytest.raises(ConfigError, match="twice"):
        plan_sweep(demo_config(), "T", [4, 4.0])
    int8 = demo_config()
    int8.compression.steps = [{"kind": "quantize", "method": "dynamic-int8"}]  # type: ignore[list-item]
    int8 = int8.model_validate(int8.model_dump())
    with pytest.raises(ConfigError, match="dynamic-int8"):
        plan_sweep(int8, "quantize.bits", [4])
    with pytest.raises(ConfigError):
        list(run_sweep(demo_config(), "T", [1, 0], tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_pareto_front_matches_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(50):
        n = rng.randint(1, 9)
        costs = [rng.choice([1, 2, 3, 4]) for _ in range(n)]
        accs = [rng.choice([0.5, 0.7, 0.9]) for _ in range(n)]
        expected = {
            i for i in range(n)
            if not any(costs[j] <= costs[i] and accs[j] >= accs[i]
                       and (costs[j] < costs[i] or accs[j] > accs[i]) for j in range(n))
        }
        front = pareto_front(costs, accs)
        assert set(front) == expected
        assert [costs[i] for i in front] == sorted(costs[i] for i in front)
    assert pareto_front([1.0, None, 3.0], [0.9, 0.99, 0.95]) == [0, 2]


# ------------------------------------------------------------------------------------- running


def _fake_run(accuracies: dict[float, float | None]):
    """An engine stand-in: a summary whose accuracy and size depend on the temperature."""

    def run(cfg, out_dir, control=None):
        t = cfg.distill.temperature
        out_dir.mkdir(parents=True)
        (out_dir / "config.yaml").write_text("name: x\n")
        acc = accuracies[t]
        if acc is None:
            yield RunFailed(run_dir=str(out_dir), error={"what": "diverged", "message": "boom"})
            return
        metrics = {"accuracy": acc, "params": 100, "nonzero_params": 100,
                   "size_bytes": int(1000 * t), "zip_size_bytes": int(900 * t),
                   "latency_ms": 1.0 / t, "macs": 10}
        yield RunFinished(run_dir=str(out_dir), summary={
            "teacher": {**metrics, "accuracy": 1.0, "size_bytes": 10_000},
            "student": metrics, "stages": []})

    return run


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path) -> None:
    events = list(run_sweep(demo_config(), "T", [1, 2, 4], tmp_path / "s",
                            run_fn=_fake_run({1: 0.8, 2: None, 4: 0.9})))
    done = [e for e in events if isinstance(e, SweepRunDone)]
    assert [d.status for d in done] == ["completed", "failed", "completed"]
    assert done[1].error["message"] == "boom"
    end = events[-1]
    assert isinstance(end, SweepFinished) and end.failed == 1 and not end.stopped
    rows = _read_csv(tmp_path / "s" / "sweep.csv")
    assert [r["value"] for r in rows] == ["1", "4"]
    # size 1000·T: T=1 is smallest, T=4 most accurate; latency 1/T: T=4 is fastest and best.
    assert end.pareto_size == [0, 2] and end.pareto_latency == [2]
    assert [r["pareto_latency"] for r in rows] == ["False", "True"]
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert manifest["state"] == "finished" and len(manifest["runs"]) == 3


def test_sweep_runs_one_real_run_per_value(tmp_path) -> None:
    out = tmp_path / "sweep"
    events = list(run_sweep(_tiny(), "T", [1, 8], out))
    assert isinstance(events[0], SweepStarted) and events[0].total == 2
    tagged = [e for e in events if isinstance(e, SweepRunEvent)]
    assert {e.index for e in tagged} == {0, 1}
    assert all(e.value == [1, 8][e.index] for e in tagged)
    rows = _read_csv(out / "sweep.csv")
    assert [r["value"] for r in rows] == ["1", "8"]
    for row in rows:
        folder = out / row["run_dir"]
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["completed"]
        assert float(row["accuracy"]) == pytest.approx(summary["student"]["accuracy"])
        assert f"temperature: {float(row['value'])}" in (folder / "config.yaml").read_text()


def test_cancelling_mid_sweep_keeps_the_finished_runs(tmp_path) -> None:
    out = tmp_path / "sweep"
    control = RunControl()
    events = []
    for event in run_sweep(_tiny(epochs=2), "T", [1, 4, 8], out, control=control):
        events.append(event)
        # Stop inside the second run, after its first training step.
        if isinstance(event, SweepRunEvent) and event.index == 1 and isinstance(
                event.event, StepEvent):
            control.stop()
    done = [e for e in events if isinstance(e, SweepRunDone)]
    assert [d.status for d in done] == ["completed", "stopped"]
    end = events[-1]
    assert isinstance(end, SweepFinished) and end.stopped
    assert [r["index"] for r in end.rows] == [0]
    rows = _read_csv(out / "sweep.csv")
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    assert (out / rows[0]["run_dir"] / "summary.json").is_file()
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2  # the third run never started; the stopped one stays (resumable)
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["state"] == "stopped"
    assert [r["status"] for r in manifest["runs"]] == ["completed", "stopped"]


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path) -> None:
    list(run_sweep(demo_config(), "T", [1], tmp_path / "s", run_fn=_fake_run({1: 0.5})))
    with pytest.raises(ConfigError, match="already holds a sweep"):
        list(run_sweep(demo_config(), "T", [2], tmp_path / "s", run_fn=_fake_run({2: 0.5})))


def test_values_run_in_the_given_order(tmp_path) -> None:
    order = []

    def run(cfg, out_dir, control=None):
        order.append(cfg.distill.temperature)
        yield from _fake_run({cfg.distill.temperature: 0.5})(cfg, out_dir, control)

    list(run_sweep(demo_config(), "T", [8, 1, 4], tmp_path / "s", run_fn=run))
    assert order == [8, 1, 4]
