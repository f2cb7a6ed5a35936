"""Weight sharing (Deep Compression §3): k-means per layer, masks kept, centroids fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.errors import CompressionError, UserError
from kdgui.engine.compress.context import CompressionContext, apply_unit
from kdgui.engine.compress.finetune import make_finetune
from kdgui.engine.compress.share.kmeans import cluster_count, cluster_weights, kmeans_1d
from kdgui.engine.compress.share.shared import distinct_values, layer_bits


def _run(gen):
    if not hasattr(gen, "send"):
        return gen
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32),
                         nn.ReLU(), nn.Linear(32, 4))


def _data(n: int = 256) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=gen)
    return TensorDataset(x, (x[:, :4].argmax(1)))


def test_kmeans_finds_the_centres_of_well_separated_groups() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([-2.0, -0.5, 1.0, 3.0])
    values = np.concatenate([c + 0.01 * rng.standard_normal(200) for c in centres])
    found, assign = kmeans_1d(values, 4, init="linear")
    np.testing.assert_allclose(found, centres, atol=0.01)
    np.testing.assert_array_equal(assign, np.repeat(np.arange(4), 200))


def test_linear_init_spans_min_to_max_and_density_follows_quantiles() -> None:
    from kdgui.engine.compress.share.kmeans import initial_centroids

    values = np.array([-1.0, 0.1, 0.2, 0.3, 4.0])
    np.testing.assert_allclose(initial_centroids(values, 3, "linear"), [-1.0, 1.5, 4.0])
    assert np.all(np.diff(initial_centroids(values, 3, "density")) > 0)
    assert initial_centroids(values, 3, "density").max() < 4.0  # quantiles ignore the tail


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_bits_bound_the_number_of_shared_values_and_zeros_stay(bits: int) -> None:
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((40, 50)).astype(np.float32)
    w[rng.random(w.shape) < 0.7] = 0  # pruned
    clustering = cluster_weights(w, bits)
    shared = clustering.weights()
    assert clustering.clusters <= 2 ** bits
    assert np.unique(shared[shared != 0]).size == clustering.clusters
    np.testing.assert_array_equal(shared == 0, w == 0)  # masks kept
    np.testing.assert_array_equal(clustering.index == -1, w == 0)
    # every weight sits at its nearest centroid
    nz = w != 0
    nearest = clustering.centroids[np.abs(w[nz][:, None] - clustering.centroids).argmin(1)]
    np.testing.assert_allclose(shared[nz], nearest)


def test_cluster_count_never_exceeds_the_distinct_values() -> None:
    assert cluster_count(5, 1000) == 32 and cluster_count(8, 3) == 3
    with pytest.raises(ValueError):
        cluster_count(9, 1000)


def test_the_sharing_step_keeps_pruned_zeros_and_uses_the_conv_and_fc_bits() -> None:
    model = _mlp()
    ctx = CompressionContext(input_shape=(16,))
    model = _run(apply_unit("prune", "magnitude", model, {"sparsity": 0.6}, ctx))
    zeros = {n: (m.weight == 0).clone() for n, m in model.named_modules()
             if isinstance(m, nn.Linear)}
    model = _run(apply_unit("quantize", "kmeans", model, {"fc_bits": 3, "bits": {"5": 2}}, ctx))
    counts = distinct_values(model)
    assert counts["1"] <= 8 and counts["3"] <= 8 and counts["5"] <= 4
    for name, module in model.named_modules():
        if name in zeros:
            assert torch.equal(module.weight == 0, zeros[name])
    assert model.kdgui_prune_state == "masked"
    assert layer_bits("features.0", nn.Conv2d(1, 1, 3), ctx_params()) == 8


def ctx_params():
    from kdgui.core.components.compression import KmeansShareParams

    return KmeansShareParams()


def test_fine_tuning_trains_the_centroids_only_and_lowers_the_loss() -> None:
    """Every weight of a cluster moves together (the centroid gets the summed gradient), the
    zeros stay, the codebook size stays, and the loss on the training data falls."""
    data = _data()
    model = _mlp()
    ctx = CompressionContext(input_shape=(16,), calibration=data,
                             finetune=make_finetune(data, batch_size=32, lr=5e-3))
    model = _run(apply_unit("prune", "magnitude", model, {"sparsity": 0.5}, ctx))
    before = _run(apply_unit("quantize", "kmeans", _copy(model), {"fc_bits": 2}, ctx))
    ctx.epochs = 5
    after = _run(apply_unit("quantize", "kmeans", _copy(model), {"fc_bits": 2}, ctx))
    assert ctx.trained
    x, y = data.tensors
    loss = nn.functional.cross_entropy
    assert loss(after(x), y) < loss(before(x), y) - 0.01
    for (name, b), a in zip(before.named_modules(), after.modules(), strict=True):
        if isinstance(b, nn.Linear):
            wb, wa = b.weight.detach(), a.weight.detach()
            assert torch.equal(wb == 0, wa == 0), name
            # the same partition: weights equal before are equal after
            vb, va = torch.unique(wb[wb != 0]), torch.unique(wa[wa != 0])
            assert vb.numel() == va.numel() and not torch.equal(vb, va)
            for value in vb:
                assert torch.unique(wa[wb == value]).numel() == 1
    assert not any("parametrizations" in n for n, _ in after.named_parameters())


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def test_a_bits_pattern_matching_no_layer_is_one_clear_error() -> None:
    ctx = CompressionContext(input_shape=(16,))
    with pytest.raises(CompressionError, match="matches no Linear"):
        _run(apply_unit("quantize", "kmeans", _mlp(), {"bits": {"conv*": 4}}, ctx))
    with pytest.raises(UserError, match="bits"):
        _run(apply_unit("quantize", "kmeans", _mlp(), {"bits": {"1": 12}}, ctx))


def test_per_layer_bits_may_be_written_as_text_and_set_the_sweeps_bits() -> None:
    from kdgui.core.components.compression import KmeansShareParams, method_traits

    params = KmeansShareParams(bits="fc1=6, features.*=8")
    assert params.bits == {"fc1": 6, "features.*": 8}
    with pytest.raises(ValueError, match="PATTERN=BITS"):
        KmeansShareParams(bits="fc1:6")
    assert method_traits("quantize", "kmeans").stored_bits(KmeansShareParams(fc_bits=3)) == 3
