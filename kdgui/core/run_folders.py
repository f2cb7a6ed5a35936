"""What a run folder is, and where to find them: one definition for the CLI, the window, the
history index and the Netron view (docs/run-folder.md)."""

from __future__ import annotations

import os
from pathlib import Path


def is_run_folder(path: Path) -> bool:
    """A folder written by a run: ``config.yaml`` plus ``metrics.jsonl`` or ``summary.json``."""
    return (path / "config.yaml").is_file() and (
        (path / "metrics.jsonl").is_file() or (path / "summary.json").is_file()
    )


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Run folders directly under ``root`` (or ``root`` itself when it is one), newest first."""
    base = Path(root).expanduser()
    if is_run_folder(base):
        return [base]
    if not base.is_dir():
        return []
    runs = [p for p in base.iterdir() if p.is_dir() and is_run_folder(p)]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)
