"""Low-rank units: truncated SVD of Linear layers, SVD and Tucker-2 of convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdgui.core.components.compression import ConvLowRankParams, LowRankParams
from kdgui.core.errors import CompressionError
from kdgui.engine.compress import CompressionContext, apply_unit
from kdgui.engine.compress.lowrank import conv, svd


def ctx() -> CompressionContext:
    return CompressionContext(input_shape=(3, 8, 8))


def run_all(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def low_rank_linear(out: int, inp: int, rank: int) -> nn.Linear:
    gen = torch.Generator().manual_seed(0)
    layer = nn.Linear(inp, out)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out, rank, generator=gen) @ torch.randn(rank, inp,
                                                                              generator=gen))
    return layer


def test_full_rank_svd_is_exact_and_truncation_is_optimal() -> None:
    layer = nn.Linear(20, 12)
    x = torch.randn(5, 20)
    pair = svd.factorize_linear(layer, 12, "fc")
    assert torch.allclose(pair(x), layer(x), atol=1e-5)
    assert pair.kdgui_rank == 12
    exact = svd.factorize_linear(low_rank_linear(12, 20, 3), 3, "fc")
    assert torch.allclose(exact[1].weight @ exact[0].weight, low_rank_linear(12, 20, 3).weight,
                          atol=1e-4)


@pytest.mark.parametrize("rank", [0, -1, 13])
def test_rank_zero_or_above_limit_names_layer_and_limit(rank: int) -> None:
    with pytest.raises(CompressionError, match=r"layer 'fc'.*limit: min\(out, in\) = 12"):
        svd.factorize_linear(nn.Linear(20, 12), rank, "fc")


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 64),
                         nn.ReLU(), nn.Linear(64, 4))


def test_svd_unit_replaces_hidden_layers_and_keeps_output() -> None:
    m, c = model(), CompressionContext(input_shape=(3, 4, 4))
    out = svd.apply(m, LowRankParams(rank_fraction=0.25), c)
    assert isinstance(out[1], nn.Sequential) and out[1].kdgui_rank == 12
    assert isinstance(out[3], nn.Sequential) and out[3].kdgui_rank == 16
    assert isinstance(out[5], nn.Linear)  # the output layer is kept
    assert out(torch.randn(2, 3, 4, 4)).shape == (2, 4)
    assert any("'1' rank 12/48" in n.message and "→" in n.message for n in c.notes)


def test_svd_rank_above_a_layers_limit_via_the_unit() -> None:
    with pytest.raises(CompressionError, match=r"layer '1'.*= 48"):
        svd.apply(model(), LowRankParams(rank=60), ctx())
    with pytest.raises(CompressionError, match="rank"):
        run_all(apply_unit("lowrank", "svd", model(), {"rank": 0}, ctx()))


def test_energy_rank_keeps_the_energy() -> None:
    m = nn.Sequential(low_rank_linear(32, 40, 4), nn.Linear(32, 2))
    out = svd.apply(m, LowRankParams(energy=0.999, skip_if_no_saving=False), ctx())
    assert out[0].kdgui_rank == 4


def test_no_saving_layers_are_left_whole() -> None:
    m = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    c = ctx()
    out = svd.apply(m, LowRankParams(rank_fraction=0.9), c)
    assert isinstance(out[0], nn.Linear)
    assert any("left whole" in n.message for n in c.notes)


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1, groups=32),
                         nn.Flatten(), nn.Linear(32 * 16, 4))


@pytest.mark.parametrize("method", ["svd", "tucker2"])
def test_full_rank_conv_decomposition_is_exact(method: str) -> None:
    layer = nn.Conv2d(6, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 6, 9, 9)
    new = conv.svd_conv(layer, 8, "c") if method == "svd" else conv.tucker2_conv(layer, 8, 6, "c")
    assert torch.allclose(new(x), layer(x), atol=1e-4)


@pytest.mark.parametrize("method", ["svd", "tucker2"])
def test_conv_unit_decomposes_and_skips_depthwise(method: str) -> None:
    m, c = cnn(), ctx()
    out = conv.apply(m, ConvLowRankParams(decomposition=method, rank_fraction=0.25), c)
    assert out(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert isinstance(out[2], nn.Sequential) and out[2].kdgui_rank
    assert isinstance(out[4], nn.Conv2d)  # depthwise left alone
    assert sum(p.numel() for p in out.parameters()) < sum(p.numel() for p in cnn().parameters())


def test_conv_rank_above_limit() -> None:
    with pytest.raises(CompressionError, match=r"layer 'c'.*limit"):
        conv.svd_conv(nn.Conv2d(2, 8, 1), 5, "c")
    with pytest.raises(CompressionError, match="no layer named"):
        conv.apply(cnn(), ConvLowRankParams(layers=["nope"]), ctx())


def test_layer_table_shows_the_rank_on_both_halves_of_a_factorised_layer() -> None:
    from kdgui.core.components.compression import LowRankParams
    from kdgui.engine.compress import CompressionContext
    from kdgui.engine.compress.lowrank import svd as svd_unit
    from kdgui.engine.metrics import layer_table

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    out = svd_unit.apply(model, LowRankParams(rank=4), CompressionContext(input_shape=(1, 8, 8)))
    ranks = {row["name"]: row["rank"] for row in layer_table(out, (1, 8, 8))}
    factorised = [name for name, rank in ranks.items() if rank == 4]
    assert len(factorised) == 2, ranks
