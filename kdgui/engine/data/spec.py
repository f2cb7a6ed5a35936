"""Dataset spec strings (``digits``, ``mnist:ROOT``, ``folder:PATH``): parsed in the core.

The parser and the table of kinds live in :mod:`kdgui.core.data_spec`, so the config rejects an
unknown kind before any work; the engine's data layer imports them from here as before.
"""

from __future__ import annotations

from kdgui.core.data_spec import (
    EMBEDDED_KINDS,
    KNOWN_KINDS,
    TORCHVISION_KINDS,
    known_kinds_text,
    parse_data_spec,
)

__all__ = [
    "EMBEDDED_KINDS",
    "KNOWN_KINDS",
    "TORCHVISION_KINDS",
    "known_kinds_text",
    "parse_data_spec",
]
