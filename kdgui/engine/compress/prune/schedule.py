"""The Zhu & Gupta (2017) cubic sparsity schedule, as a pure function.

``s_t = s_f + (s_i - s_f)(1 - (t - t0)/(nΔt))^3`` for ``t0 ≤ t ≤ t0 + nΔt``: sparsity rises fast
while the network has many redundant weights and slowly near the end, when every removed weight
hurts. Before ``t0`` it is ``s_i``; after ``t0 + nΔt`` it stays at ``s_f``.
"""

from __future__ import annotations

from kdgui.core.errors import CompressionError


def cubic_sparsity(t: int, s_i: float, s_f: float, t0: int, n: int, dt: int) -> float:
    """Target sparsity at step ``t`` (``n`` pruning updates every ``dt`` steps from ``t0``)."""
    if n < 1 or dt < 1:
        raise CompressionError(
            f"gradual pruning needs n ≥ 1 updates every Δt ≥ 1 steps (got n={n}, Δt={dt})",
            "Fine-tune for more steps or lower the pruning frequency Δt.",
        )
    if t <= t0:
        return s_i
    progress = min(1.0, (t - t0) / (n * dt))
    return s_f + (s_i - s_f) * (1.0 - progress) ** 3


def schedule_points(total_steps: int, start_fraction: float, end_fraction: float,
                    frequency: int) -> tuple[int, int, int]:
    """``(t0, n, Δt)`` for a schedule over ``total_steps`` training steps.

    Δt is shrunk when the span is shorter than one update interval, so a short fine-tuning still
    gets at least one pruning update instead of silently never reaching ``s_f``.
    """
    t0 = int(start_fraction * total_steps)
    span = max(1, int(end_fraction * total_steps) - t0)
    dt = max(1, min(frequency, span))
    n = max(1, span // dt)
    return t0, n, dt
