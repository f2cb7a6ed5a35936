"""Export one stage of a run (the final compressed model by default) and say what was written.

A run folder holds several models: the distilled student (``student/``) and, after a compression
pipeline, one model per step (``stages/<i>_<name>/``). Users export what they compressed, so the
dialog offers the *final* stage first and names, after the export, which stage each file holds
and how many parameters it has. The export itself — loading the stage, writing the files,
reloading them to compare outputs — is one engine job (``kdgui.engine.jobs.export_run``) run on a
worker thread; the dialog only lists the choices and shows the records the job returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.formatting import fmt_count
from kdgui.core.registry import REGISTRIES
from kdgui.core.run_folders import EXPORT_DIR, read_summary
from kdgui.gui.qt_worker import QtWorker

#: The stage key meaning "the last model the run produced" (the compressed one, if any).
FINAL = "final"
STUDENT = "student"


@dataclass(frozen=True)
class StageChoice:
    """One model of a run the user can export."""

    key: str  # what export_run receives as ``stage``
    label: str  # what the combo box shows
    params: int | None = None


def stage_choices(run_dir: str | Path) -> list[StageChoice]:
    """The models of ``run_dir`` (as the export job lists them): the final stage first, then
    each earlier compression stage, then the distilled student. A run without compression
    offers only its student, which is then its final model."""
    from kdgui.engine import jobs  # run_stages reads the folder only: no torch

    entries = jobs.run_stages(run_dir)
    student = (read_summary(run_dir) or {}).get("student")
    student_params = student.get("params") if isinstance(student, dict) else None
    steps = [e for e in entries if e["stage"] != STUDENT
             and (e.get("metrics") or {}).get("name") != "before"]  # stage 0 = the student
    choices: list[StageChoice] = []
    if steps:
        for n, entry in enumerate(reversed(steps)):
            metrics = entry.get("metrics") or {}
            name, params = metrics.get("name") or entry["stage"], metrics.get("params")
            if n == 0:
                choices.append(StageChoice(FINAL, f"final model — after {name}{_params(params)}",
                                           params))
            else:
                choices.append(StageChoice(entry["stage"], f"after {name}{_params(params)}",
                                           params))
        if any(e["stage"] == STUDENT for e in entries):
            choices.append(StageChoice(STUDENT, "distilled student, before compression"
                                                f"{_params(student_params)}", student_params))
    elif entries:
        choices.append(StageChoice(FINAL, "final model — the distilled student"
                                          f"{_params(student_params)}", student_params))
    return choices


def _params(params: Any) -> str:
    return f" ({fmt_count(params)} params)" if isinstance(params, (int, float)) else ""


def _export_job() -> Callable[..., Any]:
    """The engine's export job (imported on the worker thread: it imports torch)."""
    from kdgui.engine import jobs

    return jobs.export_run


def run_export(run_dir: str, fmt: str, stage: str, out_dir: str, verify: bool,
               job: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Call the export job and collect its per-format records (runs on a worker thread).

    The job may be a generator of events (its return value, or its ``export:<fmt>`` artifact
    events, are the records) or a plain function returning the records.
    """
    job = job or _export_job()
    kwargs: dict[str, Any] = {"stage": stage, "out_dir": out_dir}
    if "verify" in inspect.signature(job).parameters:
        kwargs["verify"] = verify
    result = job(run_dir, [fmt], **kwargs)
    if isinstance(result, Iterator):
        records: list[dict[str, Any]] = []
        errors: list[str] = []
        finished: Any = None
        try:
            while True:
                ev = next(result)
                what = getattr(ev, "what", "")
                if isinstance(what, str) and what.startswith("export:"):
                    records.append({"format": what.partition(":")[2], "path": ev.path,
                                    **dict(getattr(ev, "details", {}) or {})})
                elif getattr(ev, "level", "") == "error":
                    errors.append(str(getattr(ev, "message", "")))
                elif getattr(ev, "kind", "") == "failed":
                    raise _failed_job(ev.error)
                elif getattr(ev, "kind", "") == "job_finished":
                    finished = ev.result
        except StopIteration as stop:
            result = stop.value
        if result is None:
            result = finished if finished is not None else records
        if not result and errors:
            result = [{"format": fmt, "ok": False, "error": "; ".join(errors)}]
    return _records(result)


def _records(result: Any) -> list[dict[str, Any]]:
    """Per-format records from the job's result: a list, or a dict holding one (with the
    stage it exported, which each record inherits)."""
    if isinstance(result, dict):
        stage = result.get("stage")
        listed = next((result[k] for k in ("exports", "files", "records")
                       if isinstance(result.get(k), list)), None)
        rows = listed if listed is not None else [result]
        return [{**({"stage": stage} if stage else {}), **dict(r)} for r in rows
                if isinstance(r, dict)]
    return [dict(r) for r in result or [] if isinstance(r, dict)]


def _failed_job(error: dict[str, str]) -> Exception:
    from kdgui.core.errors import UserError

    return UserError(error.get("what", "the export failed"), error.get("fix", ""))


def verified_text(record: dict[str, Any]) -> str:
    """"✓ verified" only when the file was reloaded and compared; otherwise say what happened."""
    diff, tol = record.get("max_abs_diff"), record.get("tolerance")
    if diff is None or record.get("verify_ran") is False:
        return "Not verified: the file was not reloaded and compared."
    tol_text = f" (tolerance {tol:.3g})" if isinstance(tol, (int, float)) else ""
    if record.get("verified"):
        return f"✓ verified: reloaded, max |Δ| = {diff:.3g}{tol_text}"
    return f"✗ verification failed: max |Δ| = {diff:.3g}{tol_text}"


def describe_record(record: dict[str, Any], stage_label: str) -> str:
    """One format's outcome as HTML: the file, which stage it holds, verification, warnings."""
    fmt = record.get("format", "")
    if record.get("ok") is False or record.get("error"):
        return (f"<b style='color:#d62728'>✗ {fmt} failed</b>: "
                f"{_esc(str(record.get('error') or 'no file written'))}")
    stage = str(record.get("stage") or "")
    lines = [f"Wrote <b>{_esc(str(record.get('path', '')))}</b> "
             f"({int(record.get('size_bytes') or 0):,} bytes)",
             f"Model: <b>{_esc(stage_label)}</b>"
             + (f" (stage folder {_esc(stage)})" if stage and stage not in stage_label else ""),
             verified_text(record)]
    if record.get("ort_latency_ms") is not None:
        lines.append(f"onnxruntime latency: {record['ort_latency_ms']:.3g} ms")
    lines += [f"⚠ {_esc(str(w))}" for w in record.get("warnings", []) or []]
    return "<br>".join(lines)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class QtExportDialog(QDialog):
    """Pick a stage, a format and a folder; Export runs the engine's job off the UI thread."""

    def __init__(self, run_dir: str, parent: QWidget | None = None,
                 job: Callable[..., Any] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self.run_dir = run_dir
        self._job = job
        self._task: QtWorker | None = None
        self.records: list[dict[str, Any]] = []
        self.error_data: dict[str, str] | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.stage_combo = QComboBox()
        for choice in stage_choices(run_dir):
            self.stage_combo.addItem(choice.label, choice.key)
        if not self.stage_combo.count():
            self.stage_combo.addItem("no saved model in this run", FINAL)
        self.stage_combo.setToolTip("Which of the run's models to write: the final (compressed) "
                                    "one unless you choose an earlier stage")
        self.format_combo = QComboBox()
        for comp in REGISTRIES["exporter"]:
            self.format_combo.addItem(f"{comp.name} — {comp.title}", comp.name)
            self.format_combo.setItemData(self.format_combo.count() - 1, comp.summary, 3)
        self.path_edit = QLineEdit(str(Path(run_dir) / EXPORT_DIR))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.verify_box = QCheckBox("Reload the file and compare its outputs with PyTorch")
        self.verify_box.setChecked(True)
        form.addRow("Model", self.stage_combo)
        form.addRow("Format", self.format_combo)
        form.addRow("Folder", row)
        form.addRow("", self.verify_box)
        layout.addLayout(form)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        layout.addWidget(self.result_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.clicked.connect(self.export)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(600, 240)

    @property
    def result_data(self) -> dict[str, Any] | None:
        """The first record of the last export (kept for callers that export one format)."""
        return self.records[0] if self.records else None

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    def export(self) -> None:
        if self._task is not None and self._task.running:
            return
        args = (self.run_dir, self.format_combo.currentData(), self.stage_combo.currentData(),
                self.path_edit.text(), self.verify_box.isChecked(), self._job)
        self._stage_label = self.stage_combo.currentText()
        self.export_button.setEnabled(False)
        self.result_label.setText(f"Exporting the {self._stage_label}…")
        self.records, self.error_data = [], None
        # A job passed in (tests) needs no torch; the engine's job waits for the warm-up.
        task = QtWorker(lambda: run_export(*args), needs_engine=self._job is None, owner=self)
        task.returned.connect(self._done)
        task.errored.connect(self._failed)
        task.finished.connect(lambda: self.export_button.setEnabled(True))
        self._task = task
        task.start()

    def _done(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        if not records:
            self.result_label.setText("The export wrote nothing.")
            return
        self.result_label.setText("<br><br>".join(describe_record(r, self._stage_label)
                                                  for r in records))

    def _failed(self, error: dict[str, str]) -> None:
        self.error_data = error
        self.result_label.setText(f"<b>{_esc(error.get('what', ''))}</b><br>"
                                  f"{_esc(error.get('fix', ''))}")
