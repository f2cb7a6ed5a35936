"""What the two paper lessons of :mod:`kdgui.engine.lessons_kd` print and draw: the paper's
numbers beside the measured ones (lines for the CLI, rows for the window's table) and the
per-class accuracy as bars (``OUT/per_class.png``, when matplotlib is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The paper's missing-digit numbers (§3), shown beside the measured ones.
PAPER_MISSING_DIGIT = {"test_errors": 206, "errors_on_3": 133, "threes": 1010,
                       "bias_shift": 3.5, "test_errors_after": 109, "errors_on_3_after": 14,
                       "accuracy_on_3": 1 - 133 / 1010, "accuracy_on_3_after": 1 - 14 / 1010}

def missing_digit_compare(result: dict[str, Any]) -> list[list[str]]:
    """Rows of (what, published, measured here) for the window's and the report's table."""
    m, n, shift = result["models"], result["n_val"], result["bias_shift"]
    threes = m["teacher"]["count_3"]

    def on3(row: dict[str, Any]) -> str:
        return f"{row['accuracy_on_3']:.1%} ({row['errors_on_3']} of {threes} wrong)"

    return [["errors, distilled without 3s", "206 of 10,000",
             f"{m['distilled']['errors']} of {n:,}"],
            ["accuracy on 3s, distilled", "86.8% (133 of 1,010 wrong)", on3(m["distilled"])],
            ["class-3 bias shift", "+3.5 (set by hand)", f"+{shift:.2f} (computed, no labels)"],
            ["accuracy on 3s after the shift", "98.6% (14 of 1,010 wrong)",
             on3(m["distilled + bias"])],
            ["errors after the shift", "109 of 10,000", f"{m['distilled + bias']['errors']} of "
             f"{n:,}"],
            ["accuracy on 3s, labels only", "—", on3(m["labels only"])]]


def missing_digit_lines(result: dict[str, Any]) -> list[str]:
    """The summary a class reads: measured numbers beside the paper's."""
    p, m = result["paper"], result["models"]
    n, threes = result["n_val"], m["teacher"]["count_3"]
    lines = [f"{'model':<18} {'errors':>12} {'errors on 3s':>14} {'accuracy on 3s':>15}"]
    for name, row in m.items():
        lines.append(f"{name:<18} {row['errors']:>5} / {n:<5} {row['errors_on_3']:>6} / "
                     f"{threes:<6} {row['accuracy_on_3']:>14.1%}")
    held = result["held_out"]
    lines += [f"held-out class {held['class']}: {held['before']:.1%} right before the bias "
              f"correction, {held['after']:.1%} after (shift +{result['bias_shift']:.2f}, "
              f"computed from the data; paper: {p['accuracy_on_3']:.1%} → "
              f"{p['accuracy_on_3_after']:.1%} with +3.5 set by hand)"]
    lines += [f"paper (MNIST test, 10,000 images): 206 errors, 133 of 1,010 threes wrong "
              f"({p['accuracy_on_3']:.1%} right); after bias +3.5: 109 errors, 14 on threes "
              f"({p['accuracy_on_3_after']:.1%})",
              f"bias shift computed here: +{result['bias_shift']:.2f} ({result['bias_rule']})"]
    return lines


def bar_chart(out: Path, rows: dict[str, dict[str, Any]], names: list[str]) -> None:
    """Per-class accuracy of each model as grouped bars (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    width = 0.8 / len(rows)
    for i, (name, row) in enumerate(rows.items()):
        xs = np.arange(len(names)) + (i - (len(rows) - 1) / 2) * width
        ax.bar(xs, [100 * v for v in row["per_class"]], width, label=name)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncols=len(rows), loc="lower center", bbox_to_anchor=(0.5, 1.0),
              frameon=False)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "per_class.png")
    plt.close(fig)


__all__ = ["PAPER_MISSING_DIGIT", "bar_chart", "missing_digit_compare", "missing_digit_lines"]
