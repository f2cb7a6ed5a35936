"""ViT hidden-state / attention-map hints (TinyBERT's losses and layer mapping, MiniLM's attention
KL) against the equations written here in numpy, token-grid and class/distillation-token
mismatches, the attention maps read by the taps, what trains, extreme inputs, and tiny ViT
teacher → student runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset
from torchvision.models import VisionTransformer

from kdgui.core.components.distill import ViTHintParams
from kdgui.core.config import DistillConfig
from kdgui.core.errors import ConfigError
from kdgui.core.events import RunFinished, StepEvent
from kdgui.engine.distill import Distiller
from kdgui.engine.distill.taps import FeatureTap
from kdgui.engine.distill.vit_hints import TokenLayout, ViTHintLoss, map_blocks


def vit(patch: int, layers: int, heads: int, width: int, classes: int = 5) -> VisionTransformer:
    return VisionTransformer(image_size=32, patch_size=patch, num_layers=layers, num_heads=heads,
                             hidden_dim=width, mlp_dim=2 * width, num_classes=classes)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl_rows(p: np.ndarray, q: np.ndarray) -> float:
    """mean over every leading index of Σ_k p log(p/q) (MiniLM's attention transfer)."""
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


def _loss(params: ViTHintParams, widths, layouts) -> ViTHintLoss:
    torch.manual_seed(0)
    return ViTHintLoss(params, [("t", "s")], widths, layouts)


def test_equal_grids_match_tinybert_hidden_mse_and_the_attention_kl() -> None:
    rng = np.random.default_rng(0)
    layout = TokenLayout(1, (2, 2))
    h_s, h_t = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 4))
    a_s, a_t = softmax(rng.normal(size=(2, 2, 5, 5))), softmax(rng.normal(size=(2, 2, 5, 5)))
    loss = _loss(ViTHintParams(hidden_weight=0.5, attention_weight=2.0), [(3, 4)],
                 [(layout, layout)])
    w = loss.adapters[0].weight.detach().double().numpy()
    b = loss.adapters[0].bias.detach().double().numpy()
    hidden = np.mean((h_s @ w.T + b - h_t) ** 2)  # TinyBERT eq. (8): MSE(H_s W_h, H_t)
    value = loss([torch.tensor(h_s, dtype=torch.float32), torch.tensor(a_s, dtype=torch.float32)],
                 [torch.tensor(h_t, dtype=torch.float32), torch.tensor(a_t, dtype=torch.float32)])
    assert value.item() == pytest.approx(0.5 * hidden + 2.0 * kl_rows(a_t, a_s), rel=1e-5)


def _pool2(x: np.ndarray) -> np.ndarray:
    """(..., 16) tokens of a 4×4 grid → (..., 4) means of its 2×2 blocks, row-major."""
    g = x.reshape(*x.shape[:-1], 2, 2, 2, 2)  # (..., bi, i, bj, j)
    return g.mean(axis=(-3, -1)).reshape(*x.shape[:-1], 4)


def test_a_finer_student_grid_and_a_deit_teacher_compare_class_tokens_and_pooled_patches():
    """Student: class token + 4×4 patches (patch 8 at 32 px); teacher: class + distillation
    token + 2×2 patches (patch 16). The distillation token has no counterpart and is dropped."""
    rng = np.random.default_rng(1)
    s_layout, t_layout = TokenLayout(1, (4, 4)), TokenLayout(2, (2, 2))
    h_s, h_t = rng.normal(size=(2, 17, 6)), rng.normal(size=(2, 6, 6))
    a_s, a_t = softmax(rng.normal(size=(2, 3, 17, 17))), softmax(rng.normal(size=(2, 2, 6, 6)))
    loss = _loss(ViTHintParams(), [(6, 6)], [(s_layout, t_layout)])  # equal widths: identity

    # hidden: student class token vs teacher class token, student patches 2×2-averaged
    s_tok = np.concatenate([h_s[:, :1], np.swapaxes(_pool2(np.swapaxes(h_s[:, 1:], 1, 2)), 1, 2)],
                           axis=1)
    t_tok = np.concatenate([h_t[:, :1], h_t[:, 2:]], axis=1)
    hidden = np.mean((s_tok - t_tok) ** 2)

    # attention: heads differ (3 vs 2), so each side is head-averaged; then on the common
    # tokens (class + 2×2 patches): keys pooled and rows renormalised, then queries pooled
    def common(a: np.ndarray, prefix: int, pool: bool) -> np.ndarray:
        a = a.mean(axis=1, keepdims=True)
        keys = a[..., prefix:]
        keys = _pool2(keys) if pool else keys
        a = np.concatenate([a[..., :1], keys], axis=-1)
        a = a / a.sum(axis=-1, keepdims=True)
        rows = np.swapaxes(a, -1, -2)
        queries = _pool2(rows[..., prefix:]) if pool else rows[..., prefix:]
        return np.swapaxes(np.concatenate([rows[..., :1], queries], axis=-1), -1, -2)

    q_s, q_t = common(a_s, 1, True), common(a_t, 2, False)
    assert np.allclose(q_s.sum(-1), 1) and np.allclose(q_t.sum(-1), 1)
    value = loss([torch.tensor(h_s, dtype=torch.float32), torch.tensor(a_s, dtype=torch.float32)],
                 [torch.tensor(h_t, dtype=torch.float32), torch.tensor(a_t, dtype=torch.float32)])
    assert value.item() == pytest.approx(hidden + kl_rows(q_t, q_s), rel=1e-5)


def test_blocks_map_uniformly_by_depth_as_tinybert_does() -> None:
    teacher = [f"t{i}" for i in range(12)]
    student = [f"s{i}" for i in range(4)]
    # g(m) = m · N/M = 3m (1-based): teacher blocks 3, 6, 9, 12
    assert map_blocks(teacher, student, "uniform") == [
        ("t2", "s0"), ("t5", "s1"), ("t8", "s2"), ("t11", "s3")]
    assert map_blocks(teacher[:3], [f"s{i}" for i in range(6)], "uniform") == [
        ("t0", "s1"), ("t1", "s3"), ("t2", "s5")]  # a deeper student: the roles swap
    assert map_blocks(teacher, student, "last") == [("t11", "s3")]


def test_the_taps_read_the_attention_maps_the_blocks_compute() -> None:
    torch.manual_seed(0)
    model = vit(8, 2, 4, 32).eval()
    x = torch.randn(2, 3, 32, 32)
    block = model.encoder.layers.encoder_layer_1
    with FeatureTap(model, ["encoder.layers.encoder_layer_1@attention"]) as tap, \
            torch.no_grad():
        model(x)
        got = tap.outputs["encoder.layers.encoder_layer_1@attention"]
        seen: dict[str, torch.Tensor] = {}
        handle = block.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
        model(x)
        handle.remove()
        _, expected = block.self_attention(*(block.ln_1(seen["x"]),) * 3, need_weights=True,
                                           average_attn_weights=False)
    assert got.shape == (2, 4, 17, 17)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_timm_deit_attention_maps_and_a_deit_teacher_for_a_torchvision_student() -> None:
    timm = pytest.importorskip("timm")
    from timm.models.deit import VisionTransformerDistilled

    torch.manual_seed(0)
    teacher = VisionTransformerDistilled(img_size=32, patch_size=8, embed_dim=48, depth=3,
                                         num_heads=3, num_classes=5).eval()
    attn = teacher.blocks[1].attn
    attn.fused_attn = False  # then timm materialises the maps: what its own dropout receives
    seen: dict[str, torch.Tensor] = {}
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: seen.update(a=i[0]))
    x = torch.randn(2, 3, 32, 32)
    with FeatureTap(teacher, ["blocks.1@attention"]) as tap, torch.no_grad():
        teacher(x)
        torch.testing.assert_close(tap.outputs["blocks.1@attention"], seen["a"], rtol=1e-5,
                                   atol=1e-6)
    handle.remove()
    assert timm.__version__

    student = vit(16, 2, 2, 32)
    d = Distiller(teacher, student, DistillConfig(terms=[{"name": "vit_hidden"}]), (3, 32, 32))
    assert d.pairs["vit_hidden"] == [("blocks.0", "encoder.layers.encoder_layer_0"),
                                     ("blocks.2", "encoder.layers.encoder_layer_1")]
    assert d.vit_hidden.layouts[0] == (TokenLayout(1, (2, 2)), TokenLayout(2, (4, 4)))
    terms, _ = d(x, torch.zeros(2, dtype=torch.long))
    terms["total"].backward()
    assert torch.isfinite(terms["vit_hidden"]) and terms["vit_hidden"].item() > 0


def test_only_the_student_and_adapters_learn_and_extreme_fp16_tokens_stay_finite() -> None:
    torch.manual_seed(0)
    teacher, student = vit(8, 4, 4, 48), vit(16, 2, 2, 32)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    d = Distiller(teacher, student, DistillConfig(terms=[{"name": "vit_hidden"}]), (3, 32, 32))
    assert d.pairs["vit_hidden"] == [("encoder.layers.encoder_layer_1",
                                      "encoder.layers.encoder_layer_0"),
                                     ("encoder.layers.encoder_layer_3",
                                      "encoder.layers.encoder_layer_1")]
    terms, _ = d(torch.randn(4, 3, 32, 32) * 1e4, None)
    terms["total"].backward()
    assert torch.isfinite(terms["total"])
    assert all(p.grad is not None for p in d.vit_hidden.adapters.parameters())
    qkv = student.encoder.layers.encoder_layer_0.self_attention.in_proj_weight
    assert qkv.grad is not None and bool(qkv.grad.abs().sum() > 0)  # the attention KL trains q, k
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())

    loss = _loss(ViTHintParams(), [(6, 8)], [(TokenLayout(1, (4, 4)), TokenLayout(1, (2, 2)))])
    h_s = (torch.sign(torch.randn(2, 17, 6)) * 1e4).half().requires_grad_(True)
    h_t = (torch.sign(torch.randn(2, 5, 8)) * 1e4).half()
    a_s = torch.softmax(torch.randn(2, 2, 17, 17) * 1e4, -1).half().requires_grad_(True)
    a_t = torch.softmax(torch.randn(2, 2, 5, 5) * 1e4, -1).half()
    value = loss([h_s, a_s], [h_t, a_t])
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(h_s.grad).all()
    assert torch.isfinite(a_s.grad).all()


def test_pairs_that_are_not_transformer_blocks_are_a_clear_error() -> None:
    teacher, student = vit(8, 2, 2, 32), vit(16, 2, 2, 32)
    cfg = DistillConfig(terms=[{"name": "vit_hidden", "pairs": [["heads", "encoder.ln"]]}])
    with pytest.raises(ConfigError, match=r"not a transformer block.*encoder_layer_0"):
        Distiller(teacher, student, cfg, (3, 32, 32))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                              torch.nn.LazyLinear(5))
    cnn(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="no transformer blocks"):
        Distiller(teacher, cnn, DistillConfig(terms=[{"name": "vit_hidden"}]), (3, 32, 32))


def test_a_tiny_vit_teacher_to_student_run_completes_through_the_jobs_facade(tmp_path) -> None:
    from kdgui.engine import jobs

    torch.manual_seed(0)
    x, y = torch.randn(48, 3, 32, 32), torch.randint(0, 5, (48,))
    teacher, student = vit(8, 4, 4, 48), vit(16, 2, 2, 32)
    events = list(jobs.distill_modules(
        teacher, student, TensorDataset(x[:40], y[:40]), TensorDataset(x[40:], y[40:]),
        distill={"terms": [{"name": "hard"}, {"name": "vit_hidden", "weight": 0.5}]},
        training={"epochs": 1, "batch_size": 8, "log_every": 1, "device": "cpu",
                  "teacher_precision": "fp32", "channels_last": "off"},
        out_dir=tmp_path / "vit"))
    assert isinstance(events[-1], RunFinished), events[-1]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps) == 5 and set(steps[0].losses) == {"hard", "vit_hidden", "total"}
    assert all(np.isfinite(s.losses["vit_hidden"]) and s.losses["vit_hidden"] > 0
               for s in steps)
