"""The run folder: what a run writes, and how it is written so a crash never corrupts it.

Layout (documented in docs/run-folder.md)::

    RUN/
      config.yaml        the exact config of the run (re-validated on resume)
      metrics.jsonl      one JSON line per event, appended as the run goes
      checkpoints/last.pt  student, adapters, optimizer and scheduler state after the last epoch
      student/           the final student (state_dict + architecture sidecar) and exports
      summary.json       written last and atomically: its presence means the run completed
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import atomic_write_text, dump_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event


def default_run_dir(name: str, root: str | os.PathLike[str] = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{name}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


class RunDir:
    """Owns one run folder: creation, event log, checkpoints and the final summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = None

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: ExperimentConfig) -> RunDir:
        """Make a new run folder; refuses a folder that already holds a run."""
        p = Path(path)
        if (p / "metrics.jsonl").exists() or (p / "summary.json").exists():
            raise ConfigError(
                f"'{p}' already holds a run",
                "Choose another --out folder, or pass --resume to continue that run.",
            )
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot write to run folder '{p}': {exc.strerror or exc}",
                "Choose a folder you can write to with --out.",
            ) from None
        run = cls(p)
        atomic_write_text(p / "config.yaml", dump_config(config))
        return run

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> RunDir:
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise ConfigError(
                f"'{p}' is not a run folder (no config.yaml)", "Pass the folder of an earlier run."
            )
        return cls(p)

    # -- events -------------------------------------------------------------------------
    def log_event(self, event: Event) -> None:
        if self._log is None:
            self._log = open(self.path / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._log.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
        self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Atomically save tensors-only state (loadable with weights_only=True)."""
        target = self.checkpoint_path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.is_file():
            return None
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)

    # -- summary --------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> Path:
        target = self.path / "summary.json"
        atomic_write_text(target, json.dumps(summary, indent=2, default=_json_default))
        return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
