"""A pyqtgraph view box whose automatic range moves in steps, not with every new point.

pyqtgraph's auto range fits the data exactly, so a live curve that gains a point changes the view
range at every redraw: both axes then lay out their ticks again (Python, several milliseconds)
and the plot is painted twice (the range is fitted while painting, which asks for a second
paint). Measured on the Run panel's plots: 11–15 ms of UI-thread CPU and two 20–40 ms paints per
redraw, against 3 ms and one 1 ms paint when the range does not move.

:class:`SteadyViewBox` keeps pyqtgraph's auto range (the user's zoom and pan, the "A" button and
the log-scale toggle work as before) but fits it to *held* bounds: the data's bounds plus
headroom (:data:`HEADROOM` of the span on each side; the x axis, which a run extends to the
right, gets :data:`GROWTH` more on the right), out to a round step. The held bounds change only when the data leaves
them, or fills less than :data:`REFIT_BELOW` of them (a new run's smaller numbers), so a curve
that gains points redraws without moving its axes.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg

#: Room left beyond the data on each side, as a fraction of the data's span.
HEADROOM = 0.08
#: Extra room on the right of the x axis (a run's steps and epochs grow that way).
GROWTH = 0.5
#: Refit when the data spans less than this fraction of the held range.
REFIT_BELOW = 0.4


def held_range(data: tuple[float, float], held: list[float] | None, axis: int) -> list[float]:
    """The range to show for ``data`` (lo, hi) given the range held so far (None: none)."""
    lo, hi = float(data[0]), float(data[1])
    floor = 0.0 if lo >= 0 else -math.inf  # steps, epochs, losses: no negative room
    if held is not None:
        span = held[1] - held[0]
        if held[0] <= lo and hi <= held[1] and (hi - lo) >= REFIT_BELOW * span:
            return list(held)
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
    right = HEADROOM + (GROWTH if axis == 0 else 0.0)
    lo, hi = lo - HEADROOM * span, hi + right * span
    # Out to a round step (1, 2 or 5 × 10^k, about a quarter of the range), so a curve that
    # creeps upwards (accuracy) crosses a bound now and then, not at every epoch.
    step = _round_step((hi - lo) / 4)
    return [max(floor, math.floor(lo / step) * step), math.ceil(hi / step) * step]


def _round_step(value: float) -> float:
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value)


class SteadyViewBox(pg.ViewBox):
    """A ViewBox whose auto range follows the data in steps (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[list[float] | None] = [None, None]

    def childrenBounds(self, frac: Any = None, orthoRange: Any = (None, None),
                       items: Any = None) -> list[Any]:
        bounds = super().childrenBounds(frac=frac, orthoRange=orthoRange, items=items)
        if items is not None:  # a question about some items, not the auto range
            return bounds
        out: list[Any] = [None, None]
        for axis in (0, 1):
            data = bounds[axis]
            if data is None:
                self._held[axis] = None
                continue
            self._held[axis] = held_range(data, self._held[axis], axis)
            out[axis] = list(self._held[axis])  # pyqtgraph pads it in place: a copy
        return out


__all__ = ["GROWTH", "HEADROOM", "REFIT_BELOW", "SteadyViewBox", "held_range"]
