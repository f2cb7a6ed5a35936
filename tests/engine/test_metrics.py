"""Metrics on tiny models whose numbers can be worked out by hand."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from kdgui.core.errors import DataError
from kdgui.engine.metrics import (
    agreement,
    count_macs,
    count_nonzero,
    count_params,
    evaluate,
    layer_sparsity,
    layer_table,
    measure_latency,
    model_size_bytes,
    model_summary,
)


def quantize_dynamic(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic as qd

    return qd(model, {nn.Linear}, dtype=torch.qint8)


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) + x


class TinyNet(nn.Module):
    """Conv(1→4, 3×3) on 8×8, a residual block, global pooling, Linear(4→3)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = Block(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block(self.stem(x)).mean(dim=(2, 3)))


def test_count_params_by_hand() -> None:
    net = TinyNet()
    stem = 1 * 4 * 9 + 4
    block = (4 * 4 * 9 + 4) + (4 + 4)  # conv + BN weight/bias (running stats are buffers)
    fc = 4 * 3 + 3
    assert count_params(net) == stem + block + fc
    assert count_nonzero(net) == count_params(net) - 4  # BatchNorm biases start at zero


def test_tied_weights_are_counted_once() -> None:
    a, b = nn.Linear(5, 5, bias=False), nn.Linear(5, 5, bias=False)
    b.weight = a.weight
    assert count_params(nn.Sequential(a, b)) == 25


def test_macs_of_linear_and_conv_by_formula() -> None:
    assert count_macs(nn.Linear(16, 8), (16,)) == 16 * 8
    conv = nn.Conv2d(3, 4, 3, padding=1)
    assert count_macs(conv, (3, 8, 8)) == 4 * 8 * 8 * (3 * 3 * 3)
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    assert count_macs(grouped, (4, 6, 6)) == 8 * 6 * 6 * (2 * 3 * 3)


def test_layer_table_per_layer_macs_shapes_and_annotations() -> None:
    net = TinyNet()
    net.block.conv.kdgui_removed_channels = [1, 3]
    net.fc.kdgui_rank = 2
    net.fc.kdgui_bits = 4
    rows = {row["name"]: row for row in layer_table(net, (1, 8, 8))}
    assert list(rows) == ["stem", "block.conv", "block.bn", "fc"]
    assert rows["stem"]["macs"] == 4 * 64 * 9
    assert rows["block.conv"]["macs"] == 4 * 64 * 36
    assert rows["fc"]["macs"] == 12
    assert rows["block.conv"]["out_shape"] == [1, 4, 8, 8]
    assert rows["fc"]["out_shape"] == [1, 3]
    assert rows["stem"]["params"] == 40 and rows["stem"]["type"] == "Conv2d"
    assert rows["block.conv"]["removed_channels"] == [1, 3]
    assert (rows["fc"]["rank"], rows["fc"]["bits"]) == (2, 4)
    assert rows["stem"]["rank"] is None and rows["stem"]["bits"] is None
    assert sum(r["macs"] for r in rows.values()) == count_macs(net, (1, 8, 8))


def test_sparsity_after_zeroing_half_a_layer_and_zip_size() -> None:
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    sparse = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():
        sparse[0].weight[:64].zero_()
    names, values = layer_sparsity(sparse)
    assert names == ["0", "2"]
    assert values[0] == pytest.approx(0.5) and values[1] == 0.0
    assert count_params(sparse) == count_params(dense)
    assert count_nonzero(sparse) == count_params(dense) - 64 * 128
    raw_dense, zip_dense = model_size_bytes(dense)
    raw_sparse, zip_sparse = model_size_bytes(sparse)
    assert raw_sparse == raw_dense  # zeros are still stored ...
    assert zip_sparse < 0.75 * zip_dense  # ... but they compress


def test_torch_prune_masks_count_as_zeros() -> None:
    from torch.nn.utils import prune

    layer = nn.Linear(10, 10)
    prune.l1_unstructured(layer, "weight", amount=0.3)
    assert count_params(layer) == 110  # weight_orig + bias; the mask is a buffer
    assert count_nonzero(layer) == 110 - 30
    assert layer_sparsity(layer)[1][0] == pytest.approx(0.3)


def test_quantized_mlp_unpacks_weights_and_counts_macs_by_formula() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    q = quantize_dynamic(mlp)
    assert count_params(q) == count_params(mlp) == 32 * 64 + 64 + 64 * 10 + 10
    assert count_macs(q, (32,)) == count_macs(mlp, (32,)) == 32 * 64 + 64 * 10
    assert model_size_bytes(q)[0] < model_size_bytes(mlp)[0]
    names, values = layer_sparsity(q)
    assert names == ["0", "2"] and values.shape == (2,)
    rows = layer_table(q, (32,))
    assert [r["name"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["bits"] == 8 and rows[0]["macs"] == 32 * 64 and rows[0]["params"] == 32 * 64 + 64
    summary = model_summary(q, (32,), latency=False)
    assert "quantized" in summary["macs_note"]


def test_untraceable_model_gives_minus_one_with_reason() -> None:
    summary = model_summary(nn.Linear(8, 2), (5,), latency=False)
    assert summary["macs"] == -1
    assert "forward pass" in summary["macs_note"]
    assert all(row["macs"] is None for row in summary["layers"])


def test_latency_positive_finite_and_capped() -> None:
    net = TinyNet()
    ms = measure_latency(net, (1, 8, 8))
    assert 0 < ms < 1000 and math.isfinite(ms)
    assert measure_latency(net, (1, 8, 8), batch_size=4, warmup=0, repeats=1) > 0

    calls: list[int] = []

    class Slow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(calls))
            time.sleep(0.05)
            return x

    ms = measure_latency(Slow(), (2,), warmup=5, repeats=50, max_seconds=0.3)
    # 55 passes uncapped; capped at 0.3 s of passes of at least 50 ms each: at most 7, however
    # slow the machine (a slower machine only makes fewer), and at least one timed pass
    assert 2 <= len(calls) <= 7, len(calls)
    assert ms >= 45


def test_measuring_leaves_the_model_unchanged() -> None:
    net = TinyNet().train()
    net.block.bn.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    summary = model_summary(net, (1, 8, 8))
    evaluate(net, TensorDataset(torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)))
    assert net.training and net.stem.training and not net.block.bn.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    json.dumps(summary)  # plain JSON-able data
    assert summary["params"] == count_params(net) and summary["macs"] == count_macs(net, (1, 8, 8))
    assert 0 < summary["latency_ms"] < 1000 and 0 < summary["latency_ms_b32"] < 1000
    # the sizes are the saved state_dict's, raw and zipped: at least 4 bytes per float weight
    assert (summary["size_bytes"], summary["zip_size_bytes"]) == model_size_bytes(net)
    assert summary["size_bytes"] >= 4 * summary["params"]


def _classifier() -> nn.Module:
    """Scores = the input itself: the prediction is the index of the largest input value."""
    net = nn.Linear(10, 10)
    with torch.no_grad():
        net.weight.copy_(torch.eye(10))
        net.bias.zero_()
    return net


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """10 samples; sample i peaks at class i and has its runner-up at class (i+1) % 10."""
    top = torch.arange(10)
    x = torch.zeros(10, 10)
    x[top, top] = 1.0
    x[top, (top + 1) % 10] = 0.5
    labels = top.clone()
    labels[:3] = (top[:3] + 1) % 10  # 3 wrong at top-1, right at top-2
    labels[3] = 8  # wrong at top-1 and at top-5: class 8 gets the lowest score of sample 3
    x[3, 8] = -1.0
    return x, labels, top


def test_evaluate_accuracy_top5_and_predictions() -> None:
    x, labels, top = _data()
    result = evaluate(_classifier(), TensorDataset(x, labels), batch_size=4)
    assert result["accuracy"] == pytest.approx(0.6)
    np.testing.assert_array_equal(result["predictions"], top.numpy())
    assert result["predictions"].dtype == np.int64
    assert result["top5"] == pytest.approx(0.9)
    assert result["n"] == 10 and result["agreement"] is None


def test_evaluate_paths_agree_and_agreement() -> None:
    x, labels, top = _data()
    ds = TensorDataset(x, labels)
    fast = evaluate(_classifier(), ds, batch_size=3)
    loader = evaluate(_classifier(), DataLoader(ds, batch_size=3))
    listed = evaluate(_classifier(), [(x[i : i + 1], labels[i : i + 1]) for i in range(10)])
    assert fast["accuracy"] == loader["accuracy"] == listed["accuracy"]
    subset = evaluate(_classifier(), Subset(ds, [4, 5, 0]))
    np.testing.assert_array_equal(subset["predictions"], [4, 5, 0])
    assert subset["accuracy"] == pytest.approx(2 / 3)
    teacher = top.numpy().copy()
    teacher[:2] = 9
    assert evaluate(_classifier(), ds, teacher_preds=teacher)["agreement"] == pytest.approx(0.8)
    assert agreement([1, 2, 3, 4], torch.tensor([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError):
        agreement([1, 2], [1, 2, 3])


def test_evaluate_few_classes_has_no_top5_and_empty_data_is_a_user_error() -> None:
    net = nn.Linear(3, 3)
    result = evaluate(net, TensorDataset(torch.randn(6, 3), torch.zeros(6, dtype=torch.long)))
    assert result["top5"] is None
    with pytest.raises(DataError):
        evaluate(net, TensorDataset(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)))
