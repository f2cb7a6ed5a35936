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

A run's length is known when it starts (``RunStarted``: epochs × steps per epoch), so
:meth:`SteadyViewBox.plan_x` holds the x range over the planned run from its first point: the
curve then fills the plot from left to right like a progress bar, and the x axis is laid out
once per run instead of at every bound the data crosses. Data past the plan (a fine-tuning stage
after pruning adds epochs) falls back to the growth rule.

:func:`cache_axes` makes axes that do not move cheap to repaint: with the grid on, an axis item
covers the whole view box, so every new point repainted both axes' tick labels (pyqtgraph replays
them from a QPicture; text drawing is the dearest part of a paint). Qt's device-coordinate cache
keeps each axis as a pixmap until its ticks change (pyqtgraph then calls ``update()``, which
drops the pixmap). Measured on the loss plot with 3 curves of 300 points: redraw + paint 12.1 ms
→ 1.5 ms; the painted pixels are identical.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem

#: Room left beyond the data on each side, as a fraction of the data's span.
HEADROOM = 0.08
#: Extra room on the right of the x axis (a run's steps and epochs grow that way).
GROWTH = 0.5
#: Refit when the data spans less than this fraction of the held range.
REFIT_BELOW = 0.4
#: Data this far below zero (or past a plan), as a fraction of its span, counts as not negative
#: (within the plan): pyqtgraph widens a curve's bounds by its pen width in pixels (about 1 % of
#: a plot's span), which made a range of steps from 1 start at −200 of 800. pyqtgraph's own
#: padding (≥ 2 %) still shows such points.
PEN_SLACK = 0.02


def held_range(data: tuple[float, float], held: list[float] | None, axis: int,
               plan: float | None = None) -> list[float]:
    """The range to show for ``data`` (lo, hi) given the range held so far (None: none).

    ``plan``: the data will reach at least this value (the end of a planned run): while ``hi``
    is within it, the range covers the plan with headroom only, on a finer round step (a plan
    does not creep), and stays as points arrive."""
    lo, hi = float(data[0]), float(data[1])
    # Steps, epochs, losses: no negative room.
    floor = 0.0 if lo >= -PEN_SLACK * max(hi - lo, 0.0) else -math.inf
    lo = max(lo, floor)
    planned = plan is not None and hi - plan <= PEN_SLACK * max(plan - lo, 0.0)
    if planned and plan is not None:
        hi = float(plan)
    if held is not None:
        span = held[1] - held[0]
        if held[0] <= lo and hi <= held[1] and (hi - lo) >= REFIT_BELOW * span:
            return list(held)
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
    right = HEADROOM + (GROWTH if axis == 0 and not planned else 0.0)
    lo, hi = lo - HEADROOM * span, hi + right * span
    # Out to a round step (1, 2 or 5 × 10^k, about a quarter of the range), so a curve that
    # creeps upwards (accuracy) crosses a bound now and then, not at every epoch; a plan's end
    # is fixed, so a twentieth of the range leaves less blank on the right.
    step = _round_step((hi - lo) / (20 if planned else 4))
    return [max(floor, math.floor(lo / step) * step), math.ceil(hi / step) * step]


def _round_step(value: float) -> float:
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value)


class SteadyViewBox(pg.ViewBox):
    """A ViewBox whose auto range follows the data in steps (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[list[float] | None] = [None, None]
        self._plan: float | None = None

    def plan_x(self, upper: float | None) -> None:
        """The x data will reach at least ``upper`` (None: forget the plan); see the module
        docstring. The x range is fitted to the plan now, before the first point comes."""
        if upper == self._plan:
            return  # a finished run's plan, said again: the range stays as it is
        self._plan = None if upper is None else float(upper)
        self._held[0] = None  # the range held for another run, or for no plan
        self.enableAutoRange(x=True)
        self.updateAutoRange()

    def suggestPadding(self, axis: int) -> float:
        """A fixed padding (the held bounds have headroom already): pyqtgraph's depends on the
        view's size in pixels, so a y axis whose labels widened (60 → 100 %) moved x too."""
        return PEN_SLACK

    def childrenBounds(self, frac: Any = None, orthoRange: Any = (None, None),
                       items: Any = None) -> list[Any]:
        bounds = super().childrenBounds(frac=frac, orthoRange=orthoRange, items=items)
        if items is not None:  # a question about some items, not the auto range
            return bounds
        out: list[Any] = [None, None]
        for axis in (0, 1):
            plan = self._plan if axis == 0 else None
            data = bounds[axis]
            if data is None and plan is not None:  # no point yet: show the planned run
                data = (0.0, plan)
            if data is None:
                self._held[axis] = None
                continue
            self._held[axis] = held_range(data, self._held[axis], axis, plan)
            out[axis] = list(self._held[axis])  # pyqtgraph pads it in place: a copy
        return out


def cache_axes(plot: pg.PlotItem) -> None:
    """Paint each of ``plot``'s axes from a pixmap until its ticks change (module docstring)."""
    for entry in plot.axes.values():
        entry["item"].setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


__all__ = ["GROWTH", "HEADROOM", "PEN_SLACK", "REFIT_BELOW", "SteadyViewBox", "cache_axes", "held_range"]
