"""Mixed precision by sensitivity: per-layer bits from measured drops, under a size budget."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.components.compression import KmeansShareParams, method_traits
from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext, apply_unit
from kdgui.engine.compress.finetune import make_finetune
from kdgui.engine.compress.share.mixed import PLAN_BITS, layer_cost, plan_bits


def _brute(drops, nonzero, bits, budget):
    best = None
    for plan in itertools.product(range(len(bits)), repeat=len(drops)):
        cost = sum(layer_cost(n, bits[j]) for n, j in zip(nonzero, plan, strict=True))
        if cost > budget * sum(nonzero):
            continue
        loss = sum(max(0.0, drops[i][j]) for i, j in enumerate(plan))
        if best is None or loss < best - 1e-12:
            best = loss
    return best


def test_plan_is_optimal_and_within_budget_on_random_instances() -> None:
    rng = random.Random(0)
    bits = list(PLAN_BITS)
    for _ in range(25):
        layers = rng.randint(1, 4)
        nonzero = [rng.randint(300, 20000) for _ in range(layers)]
        # drops shrink with bits (plus noise), as measured drops do
        drops = [[rng.uniform(0, 0.3) / (b - 1) ** rng.uniform(0.5, 3) + rng.uniform(-0.01, 0.01)
                  for b in bits] for _ in range(layers)]
        floor = sum(layer_cost(n, 2) for n in nonzero) / sum(nonzero)
        budget = rng.uniform(floor + 0.05, 8.0)
        plan = plan_bits(drops, nonzero, bits, budget)
        cost = sum(layer_cost(n, b) for n, b in zip(nonzero, plan, strict=True))
        assert cost <= budget * sum(nonzero) + 1e-6
        loss = sum(max(0.0, drops[i][bits.index(b)]) for i, b in enumerate(plan))
        # exact up to the cost grid's rounding (costs rounded up: never over budget)
        assert loss <= _brute(drops, nonzero, bits, budget - 0.01) + 1e-9
        assert loss >= _brute(drops, nonzero, bits, budget) - 1e-9  # and no better than exact


def test_plan_gives_the_sensitive_layer_more_bits() -> None:
    bits = list(PLAN_BITS)
    robust = [0.0] * len(bits)  # the big layer loses nothing even at 2 bits
    fragile = [0.5 if b < 6 else 0.0 for b in bits]  # the small layer needs 6
    plan = plan_bits([robust, fragile], [10_000, 500], bits, 2.9)
    assert plan[0] == 2 and plan[1] >= 6
    # codebooks count: 8 bits on 500 weights cost 256 float32 values, 6 bits only 64
    assert layer_cost(500, 8) == 500 * 8 + 32 * 256 and layer_cost(500, 6) == 500 * 6 + 32 * 64
    with pytest.raises(CompressionError, match="below what the smallest widths cost"):
        plan_bits([robust], [10], bits, 2.0)  # 10 weights at 2 bits + 4 float32 values


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32),
                         nn.ReLU(), nn.Linear(32, 4))


def _data(n: int = 256) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=gen)
    return TensorDataset(x, (x[:, :4].argmax(1)))


def test_kmeans_with_a_budget_measures_plans_and_shares_by_the_plan() -> None:
    model, data = _mlp(), _data()
    for _ in make_finetune(data, batch_size=64, lr=3e-3)(model, 3):
        pass
    ctx = CompressionContext(input_shape=(16,), calibration=data)
    params = KmeansShareParams(bits_budget=3.0, plan_samples=128)
    gen = apply_unit("quantize", "kmeans", model, params.model_dump(), ctx)
    shared = gen if isinstance(gen, nn.Module) else None
    if shared is None:
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            shared = stop.value
    report = ctx.report["bit_plan"]
    assert report["layers"] == ["1", "3", "5"] and report["bits"] == list(PLAN_BITS)
    assert np.array(report["accuracy_drop"]).shape == (3, 7)
    kl = np.array(report["kl"])
    assert kl.shape == (3, 7) and (kl >= -1e-6).all()
    assert (kl[:, 0] >= kl[:, -1]).all() and kl[:, 0].max() > 0  # 2 bits move the output most
    assert report["average_bits"] <= 3.0 + 1e-9 and report["budget_bits"] == 3.0
    cost = sum(layer_cost(n, report["plan"][k]) for k, n in zip(report["layers"],
                                                                report["nonzero"], strict=True))
    assert cost <= 3.0 * sum(report["nonzero"])
    assert report["samples"] == 128
    modules = dict(shared.named_modules())
    for name, bits in report["plan"].items():
        w = modules[name].weight.detach().numpy()
        assert 2 <= bits <= 8 and np.unique(w[w != 0]).size <= 2 ** bits
    assert any("mixed precision:" in n.message for n in ctx.notes)
    # the sweep's size axis counts the budget (rounded up)
    assert method_traits("quantize", "kmeans").stored_bits(params) == 3


def test_budget_is_validated_and_unlabelled_data_still_plans() -> None:
    with pytest.raises(ValueError):
        KmeansShareParams(bits_budget=1.0)
    x = torch.randn(64, 16)
    ctx = CompressionContext(input_shape=(16,), calibration=TensorDataset(x, torch.full((64,), -1)))
    apply_unit_result = apply_unit("quantize", "kmeans", _mlp(), {"bits_budget": 4}, ctx)
    try:  # no fine-tuning epochs: the unit returns the model (a generator that ends at once)
        while True:
            next(apply_unit_result)
    except StopIteration:
        pass
    report = ctx.report["bit_plan"]  # the output change needs no labels; accuracy does
    assert report["baseline"] is None and report["predicted_drop"] is None
    assert report["average_bits"] <= 4 and len(report["plan"]) == 3


def test_staged_table_has_no_sharing_row_without_sharing_and_carries_the_plan(tmp_path) -> None:
    from types import SimpleNamespace as Step

    from kdgui.cli.printer import staged_table as printed
    from kdgui.engine.compress.quantize.fake import fake_quantize_weight
    from kdgui.engine.compress.share.table import staged_table
    from kdgui.engine.export import export_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 300), nn.ReLU(), nn.Linear(300, 3))
    with torch.no_grad():  # 4-bit fake quant: ≤ 15 values per layer, so deepc codes the layers
        for layer in (model[0], model[2]):
            layer.weight.copy_(fake_quantize_weight(layer.weight, 4, per_channel=False))
    result = export_model(model, "deepc", tmp_path / "m.kdc", torch.randn(2, 20))
    export = {"format": "deepc", "ok": True, "path": result.path,
              "size_bytes": result.size_bytes, "verified": result.verified}
    stages = [{"name": "before", "params": 7000, "nonzero_params": 7000, "accuracy": 0.9},
              {"name": "fake", "params": 7000, "nonzero_params": 7000, "accuracy": 0.89}]
    table = staged_table([Step(kind="quantize", method="fake")], stages, [export])
    assert table["layers"]  # the file does code the layers ...
    assert [r["stage"] for r in table["rows"]] == ["float", "coding"]  # ... yet no sharing row
    plan = {"layers": ["0", "2"], "bits": [2, 3], "nonzero": [6000, 900],
            "accuracy_drop": [[0.001, 0.0], [0.2, 0.01]], "kl": [[0.002, 0.001], [0.3, 0.02]],
            "plan": {"0": 2, "2": 3}, "average_bits": 2.13, "budget_bits": 2.25,
            "predicted_drop": 0.011, "predicted_kl": 0.022, "samples": 64}
    shared = dict(stages[1], name="share", bit_plan=plan)
    table = staged_table([Step(kind="quantize", method="kmeans")], [stages[0], shared], [export])
    assert [r["stage"] for r in table["rows"]] == ["float", "sharing", "coding"]
    assert table["bit_plan"] is plan
    text = printed(table)
    assert "Mixed precision by sensitivity" in text and "*2.00" in text and "*20.00" in text
    assert "+1.00" in text and "1.10 in all" in text  # accuracy drop at the chosen widths


def test_compress_cli_takes_a_budget(tmp_path) -> None:
    """``kdgui compress --quantize kmeans:BUDGET`` (the plan's printing is tested above; a run
    through it is the budget test with apply_unit)."""
    from kdgui.engine.jobs.compress_job import CompressRequest, build_steps, quantize_choices

    step = build_steps(CompressRequest(model="demo", data="digits", out_dir=tmp_path / "x",
                                       quantize="kmeans:3.5"))[0]
    assert (step.method, step.params) == ("kmeans", {"bits_budget": 3.5})
    for bad in ("kmeans:9", "kmeans:x"):
        with pytest.raises(CompressionError, match="from 2 to 8"):
            build_steps(CompressRequest(model="demo", data="digits", out_dir=tmp_path / "y",
                                        quantize=bad))
    assert "kmeans:BUDGET" in quantize_choices()
