"""Distributed runs under torchrun: DistributedDataParallel on the student, one frozen teacher
per process, rank 0 alone writing (:mod:`.world`), and the launcher a front end uses to start
such a run and follow its events (:mod:`.launch`, which imports no torch). See
docs/distributed.md.

Names resolve lazily, so that ``kdgui.engine.distributed.launch`` can be imported (by the jobs
facade, in a process that only watches a run) without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CONTROL_FILE_ENV": "launch", "env_rank": "launch", "launched": "launch",
    "run_launched": "launch", "wants_launch": "launch",
    "World": "world", "check_resume": "world", "setup": "world", "shard": "world",
    "teardown": "world",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
