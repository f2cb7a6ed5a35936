"""Pruning units: magnitude (masked), Zhu & Gupta schedule, structured (removed), sensitivity."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.components.compression import MagnitudePruneParams, StructuredPruneParams
from kdgui.core.errors import CompressionError
from kdgui.engine.compress import CompressionContext, apply_unit
from kdgui.engine.compress.finetune import make_finetune, steps_per_epoch
from kdgui.engine.compress.prune import sensitivity, structured, unstructured
from kdgui.engine.compress.prune.schedule import cubic_sparsity, schedule_points


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def data(n: int = 128) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 4, 4, generator=gen)
    return TensorDataset(x, (x.flatten(1)[:, :4].argmax(1)))


def run_all(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def weight_sparsity(model: nn.Module) -> float:
    ws = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


# ------------------------------------------------------------------ schedule


def test_cubic_schedule_matches_the_formula() -> None:
    s_i, s_f, t0, n, dt = 0.1, 0.9, 10, 5, 4
    assert cubic_sparsity(0, s_i, s_f, t0, n, dt) == s_i
    assert cubic_sparsity(t0, s_i, s_f, t0, n, dt) == s_i
    for t in (12, 18, 25):
        expected = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3
        assert cubic_sparsity(t, s_i, s_f, t0, n, dt) == pytest.approx(expected)
    assert cubic_sparsity(t0 + n * dt, s_i, s_f, t0, n, dt) == pytest.approx(s_f)
    assert cubic_sparsity(1000, s_i, s_f, t0, n, dt) == pytest.approx(s_f)
    values = [cubic_sparsity(t, s_i, s_f, t0, n, dt) for t in range(40)]
    assert values == sorted(values)  # monotone
    # steep first: the first quarter of the span adds more than the last quarter
    assert values[15] - values[10] > values[30] - values[25]


def test_schedule_points_always_give_an_update() -> None:
    assert schedule_points(100, 0.0, 0.5, 10) == (0, 5, 10)
    t0, n, dt = schedule_points(3, 0.0, 0.7, 10)
    assert n >= 1 and dt >= 1 and t0 + n * dt <= 3


# ------------------------------------------------------------ unstructured


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_oneshot_magnitude_reaches_sparsity_and_keeps_shapes(scope: str) -> None:
    model = mlp()
    shapes = [p.shape for p in model.parameters()]
    out = unstructured.apply(model, MagnitudePruneParams(sparsity=0.75, scope=scope),
                             CompressionContext(input_shape=(1, 4, 4)))
    assert weight_sparsity(out) == pytest.approx(0.75, abs=0.01)
    assert [p.shape for p in out.parameters()] == shapes
    assert out.kdgui_prune_state == "masked"
    if scope == "layer":
        for m in (out[1], out[3]):
            assert float((m.weight == 0).float().mean()) == pytest.approx(0.75, abs=0.02)


def test_magnitude_removes_the_smallest_weights() -> None:
    model = mlp()
    w = model[1].weight.detach().clone()
    unstructured.prune_oneshot(model, MagnitudePruneParams(sparsity=0.5))
    kept = model[1].weight != 0
    assert w.abs()[kept].min() >= w.abs()[~kept].max()


def test_global_scope_prunes_layers_unevenly() -> None:
    model = mlp()
    with torch.no_grad():
        model[3].weight.mul_(100)  # the second layer's weights are all large
    unstructured.prune_oneshot(model, MagnitudePruneParams(sparsity=0.5, scope="global"))
    assert float((model[3].weight == 0).float().mean()) < 0.05
    assert float((model[1].weight == 0).float().mean()) > 0.55


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_a_compression_error(bad: float) -> None:
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(CompressionError, match="sparsity"):
        run_all(apply_unit("prune", "magnitude", model, {"sparsity": bad},
                           CompressionContext(input_shape=(1, 4, 4))))
    with pytest.raises(CompressionError, match=r"outside \[0, 1\)"):
        unstructured.magnitude_masks(unstructured.prunable_layers(model), bad, "layer")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mask_keeper_holds_zeros_through_optimizer_steps() -> None:
    model = mlp()
    unstructured.prune_oneshot(model, MagnitudePruneParams(sparsity=0.8))
    masks = unstructured.masks_from_zeros(model)
    ds = data()
    with unstructured.keep_masks(model):
        for _ in make_finetune(ds, batch_size=32, lr=1e-2)(model, 1):
            pass
    assert all(torch.equal(model.get_submodule(n).weight != 0, m) for n, m in masks.items())
    assert not model[1]._forward_pre_hooks  # hooks removed


def test_gradual_pruner_follows_schedule_and_masks_are_monotone() -> None:
    model = mlp()
    params = MagnitudePruneParams(sparsity=0.8, schedule="gradual", frequency=2,
                                  end_fraction=0.5)
    pruner = unstructured.GradualPruner(model, params, total_steps=40)
    seen = []
    previous = {n: torch.ones_like(m) for n, m in pruner.masks.items()}
    for t in range(1, 41):
        with torch.no_grad():  # an "optimizer step" that revives pruned weights
            for p in model.parameters():
                p.add_(0.01)
        seen.append(pruner.step(t))
        for name, mask in pruner.masks.items():
            assert not (mask & ~previous[name]).any()  # never un-prunes
            assert (model.get_submodule(name).weight[~mask] == 0).all()
        previous = {n: m.clone() for n, m in pruner.masks.items()}
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(0.8)
    assert seen[5] == pytest.approx(pruner.target(6))
    assert weight_sparsity(model) == pytest.approx(0.8, abs=0.01)


def test_gradual_pipeline_unit_trains_and_reaches_target() -> None:
    ds = data()
    ctx = CompressionContext(input_shape=(1, 4, 4), calibration=ds,
                             finetune=make_finetune(ds, batch_size=32),
                             steps_per_epoch=steps_per_epoch(ds, 32), epochs=2)
    events = []
    gen = apply_unit("prune", "magnitude", mlp(),
                     {"sparsity": 0.7, "schedule": "gradual", "frequency": 1}, ctx)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        model = stop.value
    assert weight_sparsity(model) == pytest.approx(0.7, abs=0.01)
    assert ctx.trained and model.kdgui_prune_state == "masked"
    assert any("fine-tune epoch 2/2" in getattr(e, "message", "") for e in events)


def test_gradual_without_finetuning_is_refused() -> None:
    with pytest.raises(CompressionError, match="fine-tuning epochs"):
        run_all(apply_unit("prune", "magnitude", mlp(), {"schedule": "gradual"},
                           CompressionContext(input_shape=(1, 4, 4))))


# --------------------------------------------------------------- structured


class Residual(nn.Module):
    """Two residual blocks and a concat: channel counts must stay consistent across the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16),
                                    nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.branch = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.block1(x))
        x = torch.cat([x, self.branch(x)], dim=1)
        return self.head(x.mean((2, 3)))


class Depthwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pw1 = nn.Conv2d(3, 16, 1)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn2 = nn.BatchNorm2d(16)
        self.pw2 = nn.Conv2d(16, 24, 1)
        self.head = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.pw1(x)))
        x = torch.relu(self.bn2(self.dw(x)))
        return self.head(self.pw2(x).mean((2, 3)))


@pytest.mark.parametrize("make", [Residual, Depthwise])
@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor"])
def test_structured_removes_channels_physically(make: type, importance: str) -> None:
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    calib = TensorDataset(torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 5, (16,)))
    ctx = CompressionContext(input_shape=(3, 8, 8), calibration=calib)
    params_before = sum(p.numel() for p in model.parameters())
    out = structured.apply(model, StructuredPruneParams(ratio=0.5, importance=importance), ctx)
    assert out(x).shape == (2, 5)  # forward works, classes kept
    assert sum(p.numel() for p in out.parameters()) < 0.8 * params_before
    convs = [m for m in out.modules() if isinstance(m, nn.Conv2d)]
    assert any(m.out_channels < 16 for m in convs)
    assert out.kdgui_prune_state == "removed"
    assert any(getattr(m, "kdgui_removed_channels", 0) > 0 for m in convs)
    if make is Depthwise:
        assert out.dw.groups == out.dw.in_channels == out.dw.out_channels == out.pw1.out_channels
    else:
        assert out.stem.out_channels == out.block1[3].out_channels  # the residual sum agrees


def test_structured_ratio_out_of_range_and_unknown_layer() -> None:
    ctx = CompressionContext(input_shape=(3, 8, 8))
    with pytest.raises(CompressionError, match="ratio"):
        run_all(apply_unit("prune", "structured", Residual(), {"ratio": 1.0}, ctx))
    with pytest.raises(CompressionError, match="no layer named 'nope'"):
        structured.apply(Residual(), StructuredPruneParams(ignore=["nope"]), ctx)


def test_taylor_with_empty_calibration_is_refused() -> None:
    empty = TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))
    ctx = CompressionContext(input_shape=(3, 8, 8), calibration=empty)
    with pytest.raises(CompressionError, match="calibration set is empty"):
        structured.apply(Residual(), StructuredPruneParams(importance="taylor"), ctx)


# -------------------------------------------------------------- sensitivity


def test_sensitivity_table_has_a_drop_per_layer_and_ratio() -> None:
    model = mlp()
    ds = data(256)

    def acc(m: nn.Module) -> float:
        x, y = ds.tensors
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    before = copy.deepcopy(model.state_dict())
    table = sensitivity.sensitivity(model, ["1", "3"], [0.0, 0.5, 0.99], acc)
    assert table["layers"] == ["1", "3"] and table["ratios"] == [0.0, 0.5, 0.99]
    drops = table["accuracy_drop"]
    assert len(drops) == 2 and all(len(row) == 3 for row in drops)
    assert all(row[0] == pytest.approx(0.0) for row in drops)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CompressionError, match="no layer named"):
        sensitivity.sensitivity(model, ["zzz"], [0.5], acc)
