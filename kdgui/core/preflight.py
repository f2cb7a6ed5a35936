"""The checks of a config against this machine that need no torch: do the files it names exist?

The schema (:mod:`kdgui.core.config`) refuses what is wrong in any place; a missing teacher file
or dataset folder is wrong *here*. ``kdgui config --check`` and ``kdgui run`` both call
:func:`check_paths`, so a config that ``run`` would refuse for a missing path is refused by
``--check`` too, with the same line, before any model or data is loaded. Relative paths start at
the current folder, as they do for a run.
"""

from __future__ import annotations

from pathlib import Path

from kdgui.core.config import ExperimentConfig, ModelRef
from kdgui.core.data_spec import TORCHVISION_KINDS, parse_data_spec
from kdgui.core.errors import ConfigError, DataError, printable


def _exists(text: str) -> bool:
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):  # a name the OS cannot look up (too long, NUL byte)
        return False


def _check_model(ref: ModelRef | None, field: str) -> None:
    if ref is None or not ref.path or ref.path == "demo":
        return
    if not _exists(ref.path):
        raise ConfigError(
            f"{field} = '{printable(ref.path, 200)}': the model file does not exist",
            "Check the path (relative paths start at the current folder).",
        )


def check_paths(config: ExperimentConfig) -> None:
    """Raise a :class:`ConfigError` naming the first file or folder the config needs but
    that does not exist (a dataset root is fine when ``data.download`` will create it)."""
    _check_model(config.teacher, "teacher.path")
    _check_model(config.student.model, "student.model.path")
    try:
        kind, path = parse_data_spec(config.data.spec)
    except DataError as exc:  # the schema already refuses these; kept for model_construct
        raise ConfigError(exc.what, exc.fix, source="data.spec") from None
    if path is None:
        return
    if kind in TORCHVISION_KINDS and config.data.download:
        return
    if not _exists(path):
        hint = " or pass --download (needs network)" if kind in TORCHVISION_KINDS else ""
        raise ConfigError(
            f"data.spec = '{printable(config.data.spec, 200)}': the folder "
            f"'{printable(path, 200)}' does not exist",
            f"Point it at an existing folder{hint}.",
        )
