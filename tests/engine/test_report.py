"""Reports: one self-contained HTML file with the plots (embedded PNG) and the tables, plus CSV."""

from __future__ import annotations

import base64
import csv
import re

import pytest

from kdgui.core.config import demo_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import RunFinished
from kdgui.engine.report import write_report
from kdgui.engine.session import run
from kdgui.engine.sweep import run_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def assert_self_contained(page: str) -> None:
    """Nothing to fetch: no external scripts, style sheets or images."""
    assert not re.search(r'<(script|link)\b', page)
    assert not re.search(r'src="(?!data:)', page)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = demo_config()
    cfg.data.limit = 240
    cfg.training.epochs = 1
    cfg.training.num_threads = 1
    cfg.training.log_every = 1
    cfg.compression.steps = [{"kind": "quantize", "method": "fake", "params": {"bits": 4}}]  # type: ignore[list-item]
    cfg = cfg.model_validate(cfg.model_dump())
    folder = tmp_path_factory.mktemp("report") / "run"
    events = list(run(cfg, folder))
    assert isinstance(events[-1], RunFinished)
    return folder


def test_run_report_holds_plots_metrics_stages_and_config(run_dir, tmp_path) -> None:
    result = write_report(run_dir, tmp_path / "r.html", tmp_path / "r.csv")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(page)
    pngs = embedded_pngs(page)
    assert len(pngs) == 3 == len(result.plots)
    assert all(p.startswith(PNG_MAGIC) and len(p) > 2000 for p in pngs)
    assert "Training loss" in page and "Accuracy per epoch" in page
    assert "<h2>Metrics</h2>" in page and "<h2>Compression stages</h2>" in page
    assert "quantize:fake" in page and "temperature: 4.0" in page  # stage and config
    rows = read_rows(tmp_path / "r.csv")
    assert [r["model"] for r in rows] == ["teacher", "student", "quantize:fake"]
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    assert float(rows[1]["accuracy"]) == pytest.approx(summary["student"]["accuracy"])
    assert f"{100 * summary['student']['accuracy']:.1f}%" in page


def test_sweep_report_holds_trade_off_and_pareto_plots_and_the_table(tmp_path) -> None:
    def fake(cfg, out_dir, control=None):
        t = cfg.distill.temperature
        out_dir.mkdir(parents=True)
        m = {"accuracy": 0.5 + t / 20, "params": 10, "nonzero_params": 10,
             "size_bytes": 100 * t, "zip_size_bytes": 90 * t, "latency_ms": 2.0 - t / 10}
        yield RunFinished(run_dir=str(out_dir), summary={
            "teacher": {**m, "accuracy": 1.0}, "student": m, "stages": []})

    meta = {"title": "Temperature <lesson>", "formula": "p = softmax(z/T)",
            "look_at": ["the curve"], "explanation": "T softens."}
    list(run_sweep(demo_config(), "T", [1, 4, 8], tmp_path / "s", run_fn=fake, meta=meta))
    result = write_report(tmp_path / "s", tmp_path / "s.html", tmp_path / "s.csv")
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    assert_self_contained(page)
    assert result.kind == "sweep"
    assert len(embedded_pngs(page)) == 3
    assert "Accuracy against size, Pareto front" in page
    assert "Accuracy against latency, Pareto front" in page
    assert "Temperature &lt;lesson&gt;" in page and "p = softmax(z/T)" in page  # escaped
    for acc in ("55.0%", "70.0%", "90.0%"):
        assert acc in page
    rows = read_rows(tmp_path / "s.csv")
    assert [r["value"] for r in rows] == ["1", "4", "8"]


def test_a_folder_that_is_neither_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="neither"):
        write_report(tmp_path, tmp_path / "x.html")
