"""Printing a run's events in a terminal: a progress bar with ETA, a line per epoch, a table."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from kdgui.core.errors import printable
from kdgui.core.events import (
    ArtifactEvent,
    EpochEvent,
    Event,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
)
from kdgui.core.formatting import fmt_duration


def fmt_bytes(n: float | None) -> str:
    if n is None or n < 0:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_count(n: float | None) -> str:
    if n is None or n < 0:
        return "n/a"
    if n >= 1e9:
        return f"{n / 1e9:.2f} G"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e4:
        return f"{n / 1e3:.1f} k"
    return f"{int(n):,}"


def fmt_pct(x: float | None) -> str:
    """A fraction as a percentage; ``n/a`` when unmeasured (None, or NaN: no labels)."""
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def fmt_ms(x: float | None) -> str:
    return "n/a" if x is None or x < 0 else f"{x:.2f} ms"


ROWS = (
    ("accuracy", "accuracy", fmt_pct),
    ("params", "params", fmt_count),
    ("non-zero params", "nonzero_params", fmt_count),
    ("size", "size_bytes", fmt_bytes),
    ("size (zip)", "zip_size_bytes", fmt_bytes),
    ("MACs", "macs", fmt_count),
    ("latency b1", "latency_ms", fmt_ms),
    ("latency b32", "latency_ms_b32", fmt_ms),
)


def comparison_table(columns: list[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text table: one row per metric, one column per model."""
    header = ["", *[name for name, _ in columns]]
    rows = [header]
    for label, key, fmt in ROWS:
        if not any(key in metrics for _, metrics in columns):
            continue
        rows.append([label, *[fmt(metrics.get(key)) for _, metrics in columns]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for j, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def staged_table(table: dict[str, Any] | None) -> str:
    """Deep Compression's stages (summary['deep_compression']): size, ratio and accuracy per
    stage beside the paper's ratio, then bits per weight per coded layer; '' without a table."""
    if not table:
        return ""
    rows = [["stage", "size", "ratio", "accuracy", "paper", "what is counted"]]
    for r in table["rows"]:
        ratio, paper = r.get("ratio"), r.get("paper_ratio")
        rows.append([r["stage"], fmt_bytes(r.get("size_bytes")),
                     "n/a" if ratio is None else f"{ratio:.1f}x", fmt_pct(r.get("accuracy")),
                     "" if paper is None else f"{paper:g}x", r.get("counts", "")])
    for name, size in (table.get("general_purpose_bytes") or {}).items():
        rows.append([f"({name})", fmt_bytes(size), "", "", "", "same streams, general-purpose"])
    lines = [f"Deep Compression stages (paper column: {table.get('paper', '')})", _grid(rows)]
    layers = table.get("layers") or []
    if layers:
        head = ["layer", "params", "non-zero", "weight bits", "index bits", "bits/weight",
                "Huffman", "zlib", "lzma"]
        body = [[str(x["layer"]), fmt_count(x["params"]), fmt_pct(x["density"]),
                 str(x["weight_bits"]), str(x["index_bits"]), f"{x['bits_per_weight']:.2f}",
                 fmt_bytes(x["huffman_bytes"]), fmt_bytes(x["zlib_bytes"]),
                 fmt_bytes(x["lzma_bytes"])] for x in layers]
        lines += ["", _grid([head, *body])]
    if table.get("bit_plan"):
        lines += ["", bit_plan_table(table["bit_plan"])]
    return "\n".join(lines)


def bit_plan_table(plan: dict[str, Any]) -> str:
    """The mixed-precision plan (a stage's ``bit_plan``): per layer the bits chosen and its
    sensitivity at each width, the output change in millinats (the window draws it as a
    heatmap), and the accuracy drop at the chosen width."""
    bits = plan["bits"]
    head = ["layer", "non-zero", "bits", "acc. drop", *[f"{b} bits" for b in bits]]
    body = []
    for i, (name, nonzero) in enumerate(zip(plan["layers"], plan["nonzero"], strict=False)):
        chosen = plan["plan"].get(name)
        drop = plan["accuracy_drop"][i][bits.index(chosen)] if chosen in bits else None
        body.append([str(name), fmt_count(nonzero), str(chosen),
                     "n/a" if drop is None else f"{100 * drop:+.2f}",
                     *[("*" if b == chosen else "") + f"{1000 * k:.2f}"
                       for b, k in zip(bits, plan["kl"][i], strict=False)]])
    drop = plan.get("predicted_drop")
    title = (f"Mixed precision by sensitivity: average {plan['average_bits']:.2f} bits per "
             f"non-zero weight (budget {plan['budget_bits']:g}); per width, how far the output "
             "moves (KL divergence, millinats) when only that layer is shared, on "
             f"{plan['samples']} training samples (* = chosen; acc. drop in points at the "
             "chosen width" + ("" if drop is None else f", {100 * drop:.2f} in all") + ")")
    return "\n".join([title, _grid([head, *body])])


def _grid(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) if i in (0, len(row) - 1) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


class EventPrinter:
    """Turns events into terminal output; the bar redraws in place only on a terminal."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False,
                 teacher_epochs: int = 0) -> None:
        """``teacher_epochs`` is the config's ``teacher.train_epochs``: the teacher is trained
        before the run announces itself (RunStarted), so only the caller knows it then."""
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.quiet = quiet
        self.epochs = 0
        self.teacher_epochs = teacher_epochs
        self._bar_shown = False

    def _of(self, stage: str) -> str:
        """The epoch count of a training stage, or '?' when it is not known (never 0)."""
        total = {"distill": self.epochs, "teacher": self.teacher_epochs}.get(stage, 0)
        return str(total) if total > 0 else "?"

    def _line(self, text: str) -> None:
        if self._bar_shown:
            self.out.write("\r\x1b[2K")
            self._bar_shown = False
        # Names and messages can come from files (layer names, run names): escaped, so they
        # never reach the terminal as control codes.
        self.out.write(printable(text) + "\n")
        self.out.flush()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def _on_started(self, e: RunStarted) -> None:
        self.epochs = e.epochs
        d = e.data
        shape = "×".join(str(s) for s in d.get("input_shape", []))
        self._line(f"run folder: {e.run_dir}")
        self._line(
            f"data: {d.get('source', d.get('name'))} · {d.get('n_train', '?')} train / "
            f"{d.get('n_val', '?')} val · {shape} · {d.get('num_classes')} classes"
        )
        t, s = e.teacher, e.student
        ratio = t.get("params", 0) / max(s.get("params", 1), 1)
        self._line(
            f"teacher: {t.get('source', '?')} · {t.get('params', 0):,} params · "
            f"val accuracy {fmt_pct(t.get('val_accuracy'))}"
        )
        self._line(
            f"student: {s.get('name', s.get('preset', 'student'))} · {s.get('params', 0):,} params "
            f"({ratio:.1f}× fewer) · device {e.device}"
            + (" · teacher outputs cached" if e.teacher_cached else "")
        )
        if any(e.pairs.values()):
            for kind, pairs in e.pairs.items():
                if pairs:
                    self._line(f"{kind} pairs: " + ", ".join(f"{a}→{b}" for a, b in pairs))
        if e.resumed_from_epoch:
            self._line(f"resuming after epoch {e.resumed_from_epoch}")

    def _on_step(self, e: StepEvent) -> None:
        if self.quiet or not self.tty:
            return
        width = 24
        filled = round(e.progress * width)
        bar = "█" * filled + "·" * (width - filled)
        stage = "" if e.stage == "distill" else f"{e.stage} "
        text = (
            f"\r\x1b[2K[{bar}] {100 * e.progress:5.1f}%  {stage}epoch {e.epoch}/{self._of(e.stage)}  "
            f"loss {e.losses.get('total', float('nan')):.4f}  "
            f"{e.samples_per_s:,.0f} samples/s  ETA {fmt_duration(e.eta_s)}"
        )
        self.out.write(text)
        self.out.flush()
        self._bar_shown = True

    def _on_epoch(self, e: EpochEvent) -> None:
        stage = "" if e.stage == "distill" else f"[{e.stage}] "
        self._line(
            f"{stage}epoch {e.epoch}/{self._of(e.stage)}  "
            f"loss {e.train_loss:.4f}  train acc {fmt_pct(e.train_accuracy)}  "
            f"val acc {fmt_pct(e.val_accuracy)}  agreement {fmt_pct(e.agreement)}  "
            f"({e.duration_s:.1f} s)"
        )

    def _on_stage(self, e: StageEvent) -> None:
        m = e.metrics
        self._line(
            f"measured {e.name}: accuracy {fmt_pct(m.get('accuracy'))}, "
            f"{fmt_count(m.get('params'))} params, {fmt_bytes(m.get('size_bytes'))}, "
            f"latency {fmt_ms(m.get('latency_ms'))}"
        )

    def _on_state(self, e: StateEvent) -> None:
        self._line(f"run {e.state}")

    def _on_log(self, e: LogEvent) -> None:
        self._line(f"{e.level}: {e.message}")

    def _on_artifact(self, e: ArtifactEvent) -> None:
        if not self.quiet:
            self._line(f"wrote {e.what}: {e.path}")

    def _on_finished(self, e: RunFinished) -> None:
        s = e.summary
        columns = [("teacher", s["teacher"]), ("student", s["student"])]
        columns += [(st.get("name", f"stage {i}"), st) for i, st in enumerate(s.get("stages", []))]
        self._line("")
        # line by line: _line makes each line printable, which turns a newline into a space
        for line in comparison_table(columns).splitlines():
            self._line(line)
        self._line("")
        if s.get("deep_compression"):
            for line in staged_table(s["deep_compression"]).splitlines():
                self._line(line)
            self._line("")
        self._line(("stopped early; " if e.stopped else "") + f"results in {e.run_dir}")

    def _on_failed(self, e: RunFailed) -> None:
        pass  # the CLI prints the error once, to stderr, with the right exit code
