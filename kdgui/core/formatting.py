"""Compact numbers and durations for labels, shared by the window's panels."""

from __future__ import annotations

import math
from typing import Any


def fmt_count(n: Any) -> str:
    """``12345`` → ``'12.3k'``; anything that is not a non-negative number → ``'–'``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0 or math.isnan(n):
        return "–"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g}{suffix}"
    return str(int(n))


def fmt_duration(seconds: float | None) -> str:
    """``75`` → ``'1:15'``, ``3700`` → ``'1:01:40'``; unknown (None, NaN, negative) → ``'–'``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
