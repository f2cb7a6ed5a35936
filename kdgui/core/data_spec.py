"""Parsing of dataset spec strings such as ``digits``, ``mnist:ROOT`` or ``folder:PATH``.

The spec is one string so that it fits in a CLI flag, a config file and a text field alike. It
is split on the *first* colon only, so Windows paths (``folder:C:\\data``) survive. It lives in the
core (no torch) so that the config itself rejects an unknown kind: ``kdgui config --check`` and
``kdgui run`` then refuse the same specs, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdgui.core.errors import DataError

#: Kinds that need no path: the data ship with a package.
EMBEDDED_KINDS: tuple[str, ...] = ("digits",)
#: torchvision datasets read from (or downloaded into) a local root folder.
TORCHVISION_KINDS: tuple[str, ...] = (
    "mnist",
    "fashionmnist",
    "kmnist",
    "cifar10",
    "cifar100",
    "svhn",
)
#: Every kind a spec may name, in the order error messages list them.
KNOWN_KINDS: tuple[str, ...] = (*EMBEDDED_KINDS, *TORCHVISION_KINDS, "folder")

# Spellings people type for the same dataset; mapped before validation.
_ALIASES: dict[str, str] = {
    "fashion-mnist": "fashionmnist",
    "fashion_mnist": "fashionmnist",
    "fmnist": "fashionmnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "imagefolder": "folder",
}


def known_kinds_text() -> str:
    """The known kinds as users write them, for error messages and help."""
    forms = [
        k if k in EMBEDDED_KINDS else f"{k}:{'PATH' if k == 'folder' else 'ROOT'}"
        for k in KNOWN_KINDS
    ]
    return ", ".join(forms)


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """Split a spec into ``(kind, path)``: ``"mnist:ROOT"`` → ``("mnist", "ROOT")``.

    The kind is lower-cased and common aliases (``fashion-mnist``, ``cifar-10``) are folded into
    the canonical name. ``path`` is ``None`` when the spec has no colon. An unknown kind raises
    :class:`DataError` listing the known kinds; whether a path is required is checked by the
    loader, which knows what it needs.
    """
    text = spec.strip()
    if not text:
        raise DataError(
            "The dataset spec is empty",
            f"Name a dataset: {known_kinds_text()}.",
            source="data.spec",
        )
    kind, sep, rest = text.partition(":")
    kind = _ALIASES.get(kind.strip().lower(), kind.strip().lower())
    path = rest.strip() if sep else None
    if kind not in KNOWN_KINDS:
        hint = ""
        try:
            if len(text) < 4096 and Path(text).expanduser().is_dir():
                hint = f" For a folder of class subfolders write 'folder:{text}'."
        except (OSError, ValueError):  # a name the OS cannot even look up
            pass
        raise DataError(
            f"Unknown dataset kind '{kind[:40]}' in spec '{spec[:200]}'",
            f"Use one of: {known_kinds_text()}.{hint}",
            source="data.spec",
        )
    return kind, (path or None)


def class_ids_from_text(value: Any) -> Any:
    """``data.exclude_classes`` as typed: '3', '3, 7' or '[3, 7]' in a text field, or one number
    (--set reads data.exclude_classes=3 as the number 3); a list passes through."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        parts = value.strip().strip("[]").replace(",", " ").split()
        if not all(p.lstrip("-").isdigit() for p in parts):
            raise ValueError(f"'{value}' is not a list of class ids (write e.g. 3, 7)")
        return [int(p) for p in parts]
    return value


def check_class_ids(value: list[int]) -> list[int]:
    """Negative or repeated ids are typos; ids beyond the dataset's classes are caught when
    the data are loaded (the number of classes is not known here)."""
    if any(c < 0 for c in value):
        raise ValueError(f"class ids must be ≥ 0 (got {value})")
    if len(set(value)) != len(value):
        raise ValueError(f"class ids are repeated (got {value})")
    return sorted(value)
