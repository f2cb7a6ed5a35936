"""The run folder's torch part: the training checkpoint, written so a crash never corrupts it.

The layout, the names and the plain files (config, event log, summary) belong to
:mod:`kdgui.core.run_folders` (docs/run-folder.md); :class:`RunDir` adds
``checkpoints/last.pt`` — student, adapters, optimizer and scheduler state after the last epoch —
which needs torch to write and read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdgui.core.run_folders import RunFolder, checkpoint_path, new_run_dir


def default_run_dir(name: str, root: str | os.PathLike[str] = "runs") -> Path:
    """Deprecated spelling kept while engine.session moves to ``new_run_dir(root, name)``."""
    return new_run_dir(root, name)


class RunDir(RunFolder):
    """One run folder as a run writes it: the core's plain files plus the checkpoint."""

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.path)

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
