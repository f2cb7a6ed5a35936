"""The ``sweep`` job: one experiment per value of one knob, compared (see
:mod:`kdgui.engine.sweep` for keys, shorthands and the folder layout).

The sweep's own events (``SweepStarted``, ``SweepRunEvent`` wrapping each run's events,
``SweepRunDone``, ``SweepFinished``) and its small helpers are re-exported here so that front
ends reach them through the facade.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.events import Event, RunControl
from kdgui.engine.sweep import (
    SIZE_KEYS,
    SweepFinished,
    SweepRunDone,
    SweepRunEvent,
    SweepStarted,
    add_pareto_flags,
    load_sweep,
    pareto_front,
    parse_vary,
)


def sweep(
    config: ExperimentConfig,
    key: str,
    values: Sequence[Any],
    out_dir: str | Path,
    *,
    control: RunControl | None = None,
    size_key: str = "zip_size_bytes",
    meta: dict[str, Any] | None = None,
) -> Generator[Event, str | None, list[dict[str, Any]]]:
    """Run ``config`` once per value of ``key`` into ``out_dir``; yields sweep events.

    Every value is validated before the first run (a bad value raises a ``ConfigError`` at the
    first ``next()``, before any folder is written)."""
    from kdgui.engine.sweep import run_sweep

    return (yield from run_sweep(config, key, values, out_dir, control=control,
                                 size_key=size_key, meta=meta))


__all__ = [
    "SIZE_KEYS",
    "SweepFinished",
    "SweepRunDone",
    "SweepRunEvent",
    "SweepStarted",
    "add_pareto_flags",
    "load_sweep",
    "pareto_front",
    "parse_vary",
    "sweep",
]
