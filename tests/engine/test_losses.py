"""The distillation losses against independent numpy computations and stored expected values.

The numpy references below are written out from the papers' formulas with explicit sums, not
from the torch code. ``fixtures/loss_values.json`` holds fixed inputs and the values these
references gave for them; regenerate it with ``python tests/engine/test_losses.py`` only when a
loss's definition changes on purpose.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from kdgui.core.components.distill import (
    AttentionParams,
    FeatureParams,
    HardParams,
    SoftParams,
)
from kdgui.core.errors import ConfigError
from kdgui.core.registry import losses
from kdgui.engine.distill.losses import (
    AttentionTransferLoss,
    FeatureHintLoss,
    HardLoss,
    SoftTargetLoss,
    hint_adapter,
    softmax_at_temperature,
)

FIXTURE = Path(__file__).parent / "fixtures" / "loss_values.json"

# --- independent references (numpy, explicit sums) ---------------------------------------------


def ref_log_softmax(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    for n in range(z.shape[0]):
        m = max(z[n])
        lse = m + math.log(sum(math.exp(v - m) for v in z[n]))
        out[n] = [v - lse for v in z[n]]
    return out


def ref_cross_entropy(z: np.ndarray, y: np.ndarray, eps: float = 0.0) -> float:
    logp = ref_log_softmax(z)
    k = z.shape[1]
    per_sample = [
        -(1 - eps) * logp[n, y[n]] - eps / k * sum(logp[n, j] for j in range(k))
        for n in range(z.shape[0])
    ]
    return float(np.mean(per_sample))


def ref_soft(zs: np.ndarray, zt: np.ndarray, t: float) -> float:
    """T² · mean_n sum_k p_t log(p_t / p_s)."""
    log_ps, log_pt = ref_log_softmax(zs / t), ref_log_softmax(zt / t)
    kl = [
        sum(math.exp(log_pt[n, k]) * (log_pt[n, k] - log_ps[n, k]) for k in range(zs.shape[1]))
        for n in range(zs.shape[0])
    ]
    return float(t * t * np.mean(kl))


def ref_distance(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    d = (a - b).ravel()
    if kind == "mse":
        return float(np.mean(d * d))
    if kind == "l1":
        return float(np.mean(np.abs(d)))
    return float(np.mean([0.5 * v * v if abs(v) < 1 else abs(v) - 0.5 for v in d]))


def ref_block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Average pooling by an integer factor over the last two axes."""
    h, w = x.shape[-2] // f, x.shape[-1] // f
    return x.reshape(*x.shape[:-2], h, f, w, f).mean(axis=(-3, -1))


def ref_attention(s: np.ndarray, t: np.ndarray, p: float) -> float:
    """mean_n ||Q_s/||Q_s|| - Q_t/||Q_t|| ||_2 with Q = mean_c |A_c|^p; larger map pooled down."""
    qs = np.mean(np.abs(s) ** p, axis=1)
    qt = np.mean(np.abs(t) ** p, axis=1)
    if qs.shape[-1] > qt.shape[-1]:
        qs = ref_block_mean(qs, qs.shape[-1] // qt.shape[-1])
    elif qt.shape[-1] > qs.shape[-1]:
        qt = ref_block_mean(qt, qt.shape[-1] // qs.shape[-1])
    dists = []
    for n in range(s.shape[0]):
        a, b = qs[n].ravel(), qt[n].ravel()
        a = a / math.sqrt(sum(v * v for v in a))
        b = b / math.sqrt(sum(v * v for v in b))
        dists.append(math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b, strict=True))))
    return float(np.mean(dists))


def T(a: Any) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float32)


# --- soft targets --------------------------------------------------------------------------------


def test_softmax_at_temperature_matches_hand_sum_and_is_stable() -> None:
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    p = softmax_at_temperature(z, 2.0)
    e = np.exp(np.array([0.5, 1.0, 1.5]))
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-12)
    huge = softmax_at_temperature(np.array([1e4, 0.0, -1e4]), 0.5)
    assert np.all(np.isfinite(huge)) and huge[0] == pytest.approx(1.0)
    flat = softmax_at_temperature(np.array([5.0, 0.0, -5.0]), 1e6)
    np.testing.assert_allclose(flat, [1 / 3] * 3, atol=1e-5)
    with pytest.raises(ConfigError):
        softmax_at_temperature(z, 0.0)


@pytest.mark.parametrize("t", [1.0, 2.5, 8.0])
def test_soft_target_loss_matches_explicit_kl(t: float) -> None:
    rng = np.random.default_rng(1)
    zs, zt = rng.normal(size=(5, 7)) * 3, rng.normal(size=(5, 7)) * 3
    got = SoftTargetLoss(SoftParams(temperature=t))(T(zs), T(zt))
    assert got.item() == pytest.approx(ref_soft(zs, zt, t), rel=1e-5)


def test_soft_target_loss_is_t_squared_times_the_kl_and_keeps_gradients_at_scale() -> None:
    rng = np.random.default_rng(2)
    zs, zt = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    for t in (2.0, 5.0):
        loss = SoftTargetLoss(SoftParams(temperature=t))(T(zs), T(zt)).item()
        # T² times the KL of the softened distributions, summed by hand.
        p_t, p_s = softmax_at_temperature(zt, t), softmax_at_temperature(zs, t)
        kl = np.sum(p_t * np.log(p_t / p_s)) / zs.shape[0]
        assert loss == pytest.approx(t * t * kl, rel=1e-5)
    # Hinton's reason for T²: at high T the gradient wrt the logits stops shrinking as 1/T².
    grads = []
    for t in (10.0, 20.0):
        s = T(zs).requires_grad_(True)
        SoftTargetLoss(SoftParams(temperature=t))(s, T(zt)).backward()
        grads.append(s.grad.norm().item())
    assert grads[1] == pytest.approx(grads[0], rel=0.05)
    assert grads[0] > 1e-3


def test_soft_target_loss_is_zero_for_equal_logits_and_sends_no_grad_to_teacher() -> None:
    z = torch.randn(3, 5)
    loss = SoftTargetLoss()(z.clone(), z.clone())
    assert abs(loss.item()) < 1e-6
    s, t = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    SoftTargetLoss()(s, t).backward()
    assert s.grad is not None and t.grad is None


# --- hard labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_hard_loss_matches_hand_cross_entropy(eps: float) -> None:
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, size=6)
    got = HardLoss(HardParams(label_smoothing=eps))(T(z), torch.tensor(y))
    assert got.item() == pytest.approx(ref_cross_entropy(z, y, eps), rel=1e-5)


# --- feature hints -------------------------------------------------------------------------------


def test_hint_adapter_shapes() -> None:
    assert isinstance(hint_adapter((8, 5, 5), (8, 3, 3)), nn.Identity)
    conv = hint_adapter((4, 5, 5), (16, 5, 5))
    assert isinstance(conv, nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (4, 16, (1, 1))
    lin = hint_adapter((8,), (32,))
    assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (8, 32)
    with pytest.raises(ConfigError, match="cannot map"):
        hint_adapter((8,), (8, 4, 4))


@pytest.mark.parametrize("distance", ["mse", "l1", "smooth_l1"])
def test_feature_hint_loss_matches_reference_and_is_zero_for_equal_maps(distance: str) -> None:
    rng = np.random.default_rng(4)
    s, t = rng.normal(size=(2, 3, 4, 4)) * 2, rng.normal(size=(2, 3, 4, 4)) * 2
    loss = FeatureHintLoss(FeatureParams(distance=distance))
    assert loss([T(s)], [T(t)]).item() == pytest.approx(ref_distance(s, t, distance), rel=1e-5)
    assert loss([T(t)], [T(t)]).item() == 0.0
    # Two pairs: the mean of the per-pair distances.
    two = loss([T(s), T(t)], [T(t), T(s) * 0]).item()
    expected = (ref_distance(s, t, distance) + ref_distance(t, 0 * s, distance)) / 2
    assert two == pytest.approx(expected, rel=1e-5)


def test_feature_hint_loss_pools_a_larger_student_map_to_the_teacher_size() -> None:
    rng = np.random.default_rng(5)
    s, t = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 3, 4, 4))
    got = FeatureHintLoss()([T(s)], [T(t)]).item()
    assert got == pytest.approx(ref_distance(ref_block_mean(s, 2), t, "mse"), rel=1e-5)
    # A smaller student map is interpolated up; a constant map stays constant.
    up = FeatureHintLoss()([torch.full((1, 3, 2, 2), 1.5)], [torch.full((1, 3, 6, 6), 1.5)])
    assert up.item() == pytest.approx(0.0, abs=1e-7)


def test_feature_hint_adapters_are_learned_and_zero_when_identity() -> None:
    loss = FeatureHintLoss.for_shapes(FeatureParams(), [((2, 4, 4), (3, 4, 4))])
    (adapter,) = loss.adapters
    assert isinstance(adapter, nn.Conv2d)
    # An adapter that copies channel 0 to all three teacher channels: an exact match is 0.
    with torch.no_grad():
        adapter.weight.zero_()
        adapter.weight[:, 0] = 1.0
        adapter.bias.zero_()
    s = torch.randn(2, 2, 4, 4, requires_grad=True)
    t = s.detach()[:, :1].expand(2, 3, 4, 4).clone().requires_grad_(True)
    assert loss([s], [t]).item() == 0.0
    out = loss([s], [t + 1])
    assert out.item() == pytest.approx(1.0)  # the mean squared distance of a unit offset
    out.backward()
    assert adapter.weight.grad is not None and s.grad is not None
    assert t.grad is None  # the teacher side is detached
    assert {id(p) for p in loss.parameters()} == {id(adapter.weight), id(adapter.bias)}


def test_feature_hint_loss_on_vectors_uses_a_linear_adapter() -> None:
    loss = FeatureHintLoss.for_shapes(FeatureParams(), [((4,), (6,))])
    (adapter,) = loss.adapters
    assert isinstance(adapter, nn.Linear) and (adapter.in_features, adapter.out_features) == (4, 6)
    s, t = torch.randn(3, 4), torch.randn(3, 6)
    out = loss([s], [t])
    assert out.shape == ()
    assert out.item() == pytest.approx(nn.functional.mse_loss(adapter(s), t).item(), rel=1e-6)


# --- attention transfer --------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_loss_matches_reference(p: float) -> None:
    rng = np.random.default_rng(6)
    s, t = rng.normal(size=(3, 4, 5, 5)), rng.normal(size=(3, 7, 5, 5))
    got = AttentionTransferLoss(AttentionParams(p=p))([T(s)], [T(t)]).item()
    assert got == pytest.approx(ref_attention(s, t, p), rel=1e-5)


def test_attention_loss_zero_when_equal_positive_otherwise_and_scale_free() -> None:
    f = torch.randn(2, 4, 6, 6)
    loss = AttentionTransferLoss()
    assert loss([f], [f.clone()]).item() == 0.0
    # Q is normalised per sample: scaling the student's activations changes nothing.
    assert loss([f * 3.0], [f]).item() == pytest.approx(0.0, abs=1e-6)
    g = torch.randn(2, 4, 6, 6)
    expected = ref_attention(g.numpy(), f.numpy(), AttentionParams().p)
    assert loss([g], [f]).item() == pytest.approx(expected, rel=1e-5) and expected > 0.1
    # Different channel counts are fine: Q averages over channels.
    assert loss([f[:, :2]], [torch.cat([f[:, :2], f[:, :2]], dim=1)]).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_attention_loss_pools_the_larger_map_and_backpropagates_to_student_only() -> None:
    rng = np.random.default_rng(7)
    s, t = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 5, 4, 4))
    ts = T(s).requires_grad_(True)
    tt = T(t).requires_grad_(True)
    out = AttentionTransferLoss()([ts], [tt])
    assert out.item() == pytest.approx(ref_attention(s, t, 2.0), rel=1e-5)
    out.backward()
    assert ts.grad is not None and torch.isfinite(ts.grad).all() and tt.grad is None
    # Equal maps give a finite (zero) gradient, not NaN, despite the norm's kink at 0.
    f = torch.randn(2, 3, 4, 4, requires_grad=True)
    AttentionTransferLoss()([f], [f.detach()]).backward()
    assert torch.equal(f.grad, torch.zeros_like(f))


def test_pair_count_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="as many"):
        AttentionTransferLoss()([torch.randn(1, 2, 3, 3)], [])
    with pytest.raises(ValueError, match="as many"):
        FeatureHintLoss()([], [])


# --- registry and stored values --------------------------------------------------------------


def test_registered_losses_resolve_to_these_classes() -> None:
    expected = {
        "hard": HardLoss,
        "soft": SoftTargetLoss,
        "feature": FeatureHintLoss,
        "attention": AttentionTransferLoss,
    }
    for name, cls in expected.items():
        component = losses.get(name)
        assert component.load() is cls
        assert isinstance(cls(component.params()), nn.Module)


def _fixture_inputs() -> dict[str, Any]:
    rng = np.random.default_rng(2015)

    def r(*shape: int, scale: float = 1.0) -> list:
        return np.round(rng.normal(size=shape) * scale, 3).tolist()

    return {
        "student_logits": r(3, 4, scale=2.0),
        "teacher_logits": r(3, 4, scale=3.0),
        "labels": [0, 3, 1],
        "student_map": r(2, 3, 4, 4),
        "teacher_map": r(2, 3, 4, 4),
        "teacher_small_map": r(2, 5, 2, 2),
    }


def _fixture_expected(inp: dict[str, Any]) -> dict[str, float]:
    zs, zt = np.array(inp["student_logits"]), np.array(inp["teacher_logits"])
    y = np.array(inp["labels"])
    s, t, t2 = (np.array(inp[k]) for k in ("student_map", "teacher_map", "teacher_small_map"))
    out = {
        "hard": ref_cross_entropy(zs, y),
        "hard_ls0.1": ref_cross_entropy(zs, y, 0.1),
        "soft_T1": ref_soft(zs, zt, 1.0),
        "soft_T4": ref_soft(zs, zt, 4.0),
        "attention_p2": ref_attention(s, t, 2.0),
        "attention_p2_pooled": ref_attention(s, t2, 2.0),
    }
    for d in ("mse", "l1", "smooth_l1"):
        out[f"feature_{d}"] = ref_distance(s, t, d)
    return out


def test_losses_match_stored_expected_values() -> None:
    data = json.loads(FIXTURE.read_text())
    inp, exp = data["inputs"], data["expected"]
    # The references still give the stored values (guards the references themselves).
    for key, value in _fixture_expected(inp).items():
        assert value == pytest.approx(exp[key], rel=1e-9), key
    zs, zt = T(inp["student_logits"]), T(inp["teacher_logits"])
    y = torch.tensor(inp["labels"])
    s, t, t2 = T(inp["student_map"]), T(inp["teacher_map"]), T(inp["teacher_small_map"])
    got = {
        "hard": HardLoss()(zs, y),
        "hard_ls0.1": HardLoss(HardParams(label_smoothing=0.1))(zs, y),
        "soft_T1": SoftTargetLoss(SoftParams(temperature=1.0))(zs, zt),
        "soft_T4": SoftTargetLoss(SoftParams(temperature=4.0))(zs, zt),
        "attention_p2": AttentionTransferLoss()([s], [t]),
        "attention_p2_pooled": AttentionTransferLoss()([s], [t2]),
    }
    for d in ("mse", "l1", "smooth_l1"):
        got[f"feature_{d}"] = FeatureHintLoss(FeatureParams(distance=d))([s], [t])
    assert set(got) == set(exp)
    for key, value in got.items():
        assert value.item() == pytest.approx(exp[key], rel=1e-5), key


if __name__ == "__main__":  # regenerate the fixture from the numpy references
    inputs = _fixture_inputs()
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    rows = [f'  "{k}": {json.dumps(v)}' for k, v in inputs.items()]
    expected = json.dumps(_fixture_expected(inputs), indent=1).replace("\n", "\n ")
    FIXTURE.write_text(
        '{\n "inputs": {\n' + ",\n".join(rows) + '\n },\n "expected": ' + expected + "\n}\n"
    )
    print(f"wrote {FIXTURE}")
