"""The Deep Compression file end to end: a pruned + shared MLP made with plain torch round-trips
through ``.kdc``, and the compress job runs prune → share → deepc export with its staged table."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from kdgui.core.config import CompressionStep
from kdgui.core.errors import ExportError
from kdgui.engine.compress.context import CompressionContext, apply_unit
from kdgui.engine.export import export_model, load_exported
from kdgui.engine.export.deepc import read_report
from kdgui.engine.export.deepc_format import decode_weight, encode_weight, shared_codebook


def _run(gen):
    if not hasattr(gen, "send"):
        return gen
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _shared_mlp(sparsity: float = 0.9) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(196, 120), nn.ReLU(), nn.Linear(120, 40),
                          nn.ReLU(), nn.Linear(40, 10))
    ctx = CompressionContext(input_shape=(1, 14, 14))
    model = _run(apply_unit("prune", "magnitude", model, {"sparsity": sparsity}, ctx))
    return _run(apply_unit("quantize", "kmeans", model, {"fc_bits": 4}, ctx))


@pytest.mark.parametrize("index_bits", [None, 1, 3, 8])
def test_a_weight_round_trips_exactly_with_fillers(index_bits) -> None:
    rng = np.random.default_rng(0)
    w = rng.choice(np.array([-0.5, 0.25, 1.5], dtype=np.float32), size=(30, 70))
    w[rng.random(w.shape) < 0.95] = 0
    w[:, :40] = 0  # long runs of zeros: gaps beyond 2^index_bits need fillers
    item = encode_weight(w, shared_codebook(w), index_bits)
    np.testing.assert_array_equal(decode_weight(item, w.shape), w)
    if index_bits == 1:
        assert item.fillers > 0


def test_a_pruned_shared_mlp_reloads_with_the_same_outputs(tmp_path) -> None:
    model = _shared_mlp()
    x = torch.randn(8, 1, 14, 14)
    result = export_model(model, "deepc", tmp_path / "m.kdc", x[:2], samples=x)
    assert result.verified and result.max_abs_diff == 0.0
    loaded = load_exported(tmp_path / "m.kdc", model=model)
    for a, b in zip(model.state_dict().values(), loaded.module.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    report = read_report(tmp_path / "m.kdc")
    layers = {row["layer"]: row for row in report["layers"]}
    assert set(layers) == {"1", "3", "5"}
    big = layers["1"]
    assert big["params"] == 196 * 120 and big["codebook"] <= 16
    assert big["nonzero"] == int((model[1].weight != 0).sum())
    # Huffman beats the fixed-width code; the whole file beats 32-bit floats by > 20x
    assert big["huffman_bytes"] < big["fixed_bytes"]
    float_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert result.size_bytes * 20 < float_bytes
    assert report["file_bytes"] == result.size_bytes


def test_an_unshared_layer_is_stored_raw_with_a_warning(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 300), nn.ReLU(), nn.Linear(300, 3))  # 6000 values
    result = export_model(model, "deepc", tmp_path / "m.kdc", torch.randn(2, 20))
    assert result.verified
    assert any("not weight-shared" in w for w in result.warnings)


def test_a_damaged_file_is_one_clear_error(tmp_path) -> None:
    model = _shared_mlp()
    path = tmp_path / "m.kdc"
    export_model(model, "deepc", path, torch.randn(2, 1, 14, 14))
    data = path.read_bytes()
    (tmp_path / "cut.kdc").write_bytes(data[: len(data) // 2])
    (tmp_path / "bad.kdc").write_bytes(b"PK\x03\x04" + data[4:])
    for name in ("cut.kdc", "bad.kdc"):
        with pytest.raises(ExportError, match="not a readable Deep Compression"):
            load_exported(tmp_path / name, model=model)


MODEL_PY = """
import torch
from torch import nn


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))
"""


def test_the_compress_job_prunes_shares_codes_and_tables_the_stages(tmp_path) -> None:
    from kdgui.core.events import JobFinished
    from kdgui.engine.jobs import CompressRequest, compress

    (tmp_path / "model.py").write_text(MODEL_PY)
    spec = importlib.util.spec_from_file_location("lenet_user", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.manual_seed(0)
    torch.save(module.LeNet300().state_dict(), tmp_path / "lenet.pt")
    steps = [
        CompressionStep(kind="prune", method="magnitude", params={"sparsity": 0.9},
                        finetune_epochs=1, name="prune"),
        CompressionStep(kind="quantize", method="kmeans", params={"fc_bits": 5},
                        finetune_epochs=1, name="share"),
    ]
    out = tmp_path / "out"
    events = list(compress(CompressRequest(
        model=str(tmp_path / "lenet.pt"), arch=f"{tmp_path / 'model.py'}:LeNet300", trust=True,
        data="digits", limit=400, out_dir=out, steps=steps, formats=["deepc"],
        train_epochs=2, lr=3e-3)))
    assert isinstance(events[-1], JobFinished), events[-1]
    summary = json.loads((out / "summary.json").read_text())
    (export,) = summary["exports"]
    assert export["ok"] and export["verified"], export
    table = summary["deep_compression"]
    rows = {r["stage"]: r for r in table["rows"]}
    assert list(rows) == ["float", "pruning", "sharing", "coding"]
    assert rows["float"]["size_bytes"] == 4 * summary["stages"][0]["params"]
    ratios = [rows[s]["ratio"] for s in ("pruning", "sharing", "coding")]
    assert ratios == sorted(ratios) and ratios[0] > 5 and ratios[2] > ratios[1] > ratios[0]
    assert rows["coding"]["size_bytes"] == export["size_bytes"]
    assert rows["sharing"]["accuracy"] == summary["stages"][-1]["accuracy"]
    assert [x["layer"] for x in table["layers"]] == ["fc1", "fc2", "fc3"]
    assert all(x["codebook"] <= 32 for x in table["layers"])
    # the coded file reloads from its own recorded architecture and matches the final stage
    loaded = load_exported(export["path"])
    stage = load_exported(next((out / "stages").glob("2_*")) / "model.pt2")
    x = torch.randn(4, *summary["input_shape"])
    torch.testing.assert_close(loaded(x), stage(x), rtol=0, atol=1e-5)
    from kdgui.cli.printer import staged_table

    text = staged_table(table)
    assert f"{rows['coding']['ratio']:.1f}x" in text and "40x" in text and "fc2" in text


def test_the_staged_table_says_only_what_was_measured(tmp_path) -> None:
    from types import SimpleNamespace as Step

    from kdgui.engine.compress.share.table import staged_table

    stages = [{"name": "before", "params": 1000, "nonzero_params": 1000, "accuracy": 0.9},
              {"name": "prune", "params": 1000, "nonzero_params": 100, "accuracy": 0.89},
              {"name": "share", "params": 1000, "nonzero_params": 100, "accuracy": 0.88}]
    prune = Step(kind="prune", method="magnitude")
    share = Step(kind="quantize", method="kmeans")
    assert staged_table([prune], stages[:2], []) is None  # nothing shared, nothing coded
    table = staged_table([prune, share], stages, [])
    rows = {r["stage"]: r for r in table["rows"]}
    assert rows["pruning"]["ratio"] == pytest.approx(10.0)
    assert rows["sharing"]["size_bytes"] is None and rows["sharing"]["accuracy"] == 0.88
    assert "coding" not in rows
    # a deepc file of an unshared model: a coding row, no sharing row
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 300), nn.ReLU(), nn.Linear(300, 3))
    result = export_model(model, "deepc", tmp_path / "m.kdc", torch.randn(2, 20))
    export = {"format": "deepc", "ok": True, "path": result.path, "size_bytes": result.size_bytes,
              "verified": result.verified}
    table = staged_table([prune], stages[:2], [export])
    assert [r["stage"] for r in table["rows"]] == ["float", "pruning", "coding"]


def test_the_run_printer_prints_the_staged_table_one_row_per_line() -> None:
    import io

    from kdgui.cli.printer import EventPrinter
    from kdgui.core.events import RunFinished

    metrics = {"accuracy": 0.9, "params": 1000, "nonzero_params": 100}
    table = {"rows": [
        {"stage": "float", "size_bytes": 4000, "ratio": 1.0, "accuracy": 0.9,
         "paper_ratio": 1.0, "counts": "32 bits per parameter"},
        {"stage": "coding", "size_bytes": 100, "ratio": 40.0, "accuracy": 0.9,
         "paper_ratio": 40.0, "counts": "the .kdc file"}],
        "layers": [], "general_purpose_bytes": {"zlib": 120}, "paper": "Han et al."}
    out = io.StringIO()
    EventPrinter(out)(RunFinished(run_dir="r", stopped=False, summary={
        "teacher": metrics, "student": metrics, "stages": [], "deep_compression": table}))
    lines = out.getvalue().splitlines()
    coding = [line for line in lines if line.startswith("coding")]
    assert len(coding) == 1 and "40.0x" in coding[0] and "float" not in coding[0]
    assert any(line.startswith("accuracy") for line in lines)  # the comparison table too


def test_a_shared_convnet_round_trips_with_8_bit_conv_codebooks(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 10)).eval()
    ctx = CompressionContext(input_shape=(1, 12, 12))
    model = _run(apply_unit("prune", "magnitude", model, {"sparsity": 0.5}, ctx))
    model = _run(apply_unit("quantize", "kmeans", model, {}, ctx))
    assert len(torch.unique(model[3].weight)) > 32  # conv: up to 2^8 values, fc: 2^5
    assert len(torch.unique(model[7].weight[model[7].weight != 0])) <= 32
    x = torch.randn(4, 1, 12, 12)
    result = export_model(model, "deepc", tmp_path / "c.kdc", x[:1], samples=x)
    assert result.verified and result.max_abs_diff == 0.0, result.warnings
    layers = {r["layer"]: r for r in read_report(tmp_path / "c.kdc")["layers"]}
    assert set(layers) == {"0", "3", "7"} and layers["3"]["weight_bits"] == 8
