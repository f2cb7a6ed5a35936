"""Issue 17.3/17.4: per-layer latency and quantization error, the change classification of a
real pruned / quantized / shared / factorised pair, and two models compared for Netron."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgui.cli.main import main
from kdgui.engine.metrics import layer_table
from kdgui.engine.metrics.per_layer import (
    capture,
    layer_latency,
    layer_quant_error,
    leaf_modules,
)
from kdgui.engine.model_diff import diff_layers
from kdgui.engine.netron_annotate import read_annotations
from tests.engine.netron_run import shared_run


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def _int8(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear},
                                                      dtype=torch.qint8)


BATCHES = [torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]


def test_layer_latency_times_every_leaf_once_per_batch() -> None:
    model = _mlp()
    ms = layer_latency(model, BATCHES, repeats=2)
    assert list(ms) == ["0", "1", "2", "3"]  # every leaf, in module order
    assert all(0.0 < v < 1000.0 for v in ms.values())
    assert not model._forward_hooks and not model[1]._forward_pre_hooks  # hooks removed
    model.train()
    layer_latency(model, BATCHES[:1], repeats=1)
    assert model.training and model[1].training


def test_quant_error_is_positive_on_int8_layers_and_exactly_zero_on_float_ones() -> None:
    model = _mlp()
    quantized = _int8(model)
    assert list(leaf_modules(quantized)) == ["0", "1", "2", "3"]  # packed params not a leaf
    errors = layer_quant_error(model, quantized, BATCHES)
    assert set(errors) == {"0", "1", "2", "3"}
    assert errors["0"] == 0.0 and errors["2"] == 0.0  # Flatten and ReLU stay float
    assert 0.0 < errors["1"] < 0.05 and 0.0 < errors["3"] < 0.05  # int8: small, not zero
    assert layer_quant_error(model, copy.deepcopy(model), BATCHES) == {
        "0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0}

    # TorchScript refuses hooks: its layers run on inputs captured from the float twin.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(quantized)
    captured = capture(model, BATCHES)
    script_errors = layer_quant_error(model, scripted, BATCHES, captured=captured)
    assert script_errors["1"] == pytest.approx(errors["1"], rel=1e-5)
    assert script_errors["2"] == 0.0
    ms = layer_latency(scripted, BATCHES, repeats=1, inputs=captured)
    assert set(ms) == {"0", "1", "2", "3"} and all(v > 0 for v in ms.values())


def test_change_kinds_of_real_pruned_quantized_shared_and_factorised_pairs() -> None:
    shape = (1, 8, 8)
    before = _mlp()
    pruned = copy.deepcopy(before)
    with torch.no_grad():
        w = pruned[1].weight
        w[w.abs() < w.abs().median()] = 0.0
    kinds = {r["name"]: r["kind"] for r in diff_layers(layer_table(before, shape),
                                                       layer_table(pruned, shape))}
    assert kinds == {"0": "same", "1": "pruned", "2": "same", "3": "same"}

    kinds = {r["name"]: r["kind"] for r in diff_layers(layer_table(before, shape),
                                                       layer_table(_int8(before), shape))}
    assert kinds == {"0": "same", "1": "quantized", "2": "same", "3": "quantized"}

    narrow = copy.deepcopy(before)  # 8 of fc1's 32 outputs gone, as structured pruning does
    narrow[1], narrow[3] = nn.Linear(64, 24), nn.Linear(24, 10)
    kinds = {r["name"]: r["kind"] for r in diff_layers(layer_table(before, shape),
                                                       layer_table(narrow, shape))}
    assert kinds["1"] == "changed"  # fewer parameters alone: e.g. a narrower student
    narrow[1].kdgui_removed_channels = list(range(8))
    kinds = {r["name"]: r["kind"] for r in diff_layers(layer_table(before, shape),
                                                       layer_table(narrow, shape))}
    assert kinds["1"] == "pruned"

    shared = copy.deepcopy(before)
    with torch.no_grad():  # 16 shared values, as weight sharing at 4 bits leaves them
        w = shared[3].weight
        levels = torch.linspace(float(w.min()), float(w.max()), 16)
        w.copy_(levels[(w.unsqueeze(-1) - levels).abs().argmin(-1)])
    shared[3].kdgui_bits = 4
    rows = diff_layers(layer_table(before, shape), layer_table(shared, shape))
    assert {r["name"]: r["kind"] for r in rows}["3"] == "shared"

    factorised = copy.deepcopy(before)
    u, s, v = torch.linalg.svd(before[1].weight.detach(), full_matrices=False)
    pair = nn.Sequential(nn.Linear(64, 4, bias=False), nn.Linear(4, 32))
    with torch.no_grad():
        pair[0].weight.copy_(torch.diag(s[:4]) @ v[:4])
        pair[1].weight.copy_(u[:, :4])
        pair[1].bias.copy_(before[1].bias)
    pair.kdgui_rank = 4
    factorised[1] = pair
    rows = diff_layers(layer_table(before, shape), layer_table(factorised, shape))
    assert {r["name"]: r["kind"] for r in rows} == {
        "0": "same", "1": "decomposed", "2": "same", "3": "same", "1.0": "decomposed",
        "1.1": "decomposed"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)  # read only: shared with the window's compare tests


def test_compare_before_and_after_int8_marks_and_measures_the_quantized_layers(
        run: Path, tmp_path: Path) -> None:
    from kdgui.engine import jobs

    a, b = jobs.compare_source(f"{run}:prune"), jobs.compare_source(f"{run}:2")
    assert (a.label, b.label) == ("stage 1: prune", "stage 2: int8")
    result = jobs.compare_models(a, b, tmp_path, overlays=True)
    kinds = {r["name"]: r["kind"] for r in result.rows}
    assert kinds == {"conv1": "same", "bn1": "same", "conv2": "same", "fc1": "quantized",
                     "fc2": "quantized"}
    for index in (0, 1):  # both graphs: the nodes of fc1 and fc2, and only those
        marked = result.highlights(index)
        assert marked and set(marked.values()) == {"quantized"}
        side = result.side(index)
        assert {side.node_layer[n] for n in marked} == {"fc1", "fc2"}
    errors = result.b.overlays.column("quant_error")
    assert result.b.overlays.reference == "stage 1: prune"
    assert errors["conv1"] == 0.0 and errors["conv2"] == 0.0
    assert errors["fc1"] > 0.0 and errors["fc2"] > 0.0
    assert set(result.b.overlays.column("latency_ms")) == {"conv1", "bn1", "conv2", "fc1", "fc2"}
    assert result.a.overlays.column("quant_error") == {}  # a float model has no quant error
    notes = read_annotations(result.b.prepared.onnx_path)
    fc1 = [keys for keys in notes.values() if keys.get("layer") == "fc1"]
    assert fc1 and fc1[0]["change"] == "quantized" and float(fc1[0]["quant_error"]) > 0
    assert all(float(k["latency_ms"]) > 0 for k in notes.values() if "latency_ms" in k)


def test_kdgui_netron_compare_prints_the_diff_and_serves_both(
        run: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdgui.cli import netron_cmd

    served: list[str] = []

    def stop(_seconds: float) -> None:
        served.append("pause")
        raise KeyboardInterrupt

    monkeypatch.setattr(netron_cmd, "_pause", stop)
    assert main(["netron", f"{run}:before", "--compare", f"{run}:prune", "--no-browser"]) == 0
    out = capsys.readouterr().out
    assert "changed (pruned)" in out and "layers differ" in out
    assert out.count("http://127.0.0.1:") == 2 and served == ["pause"]
    assert main(["netron", f"{run}:nope", "--compare", str(run), "--no-browser"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
