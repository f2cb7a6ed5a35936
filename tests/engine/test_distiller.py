"""The KD step: weighted terms, a frozen teacher, skipped terms, layer taps and pairing."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdgui.core.config import DistillConfig
from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.engine.distill.distiller import Distiller
from kdgui.engine.distill.pairing import auto_pairs, match_stages, stage_ends
from kdgui.engine.distill.taps import FeatureTap, candidate_layers

INPUT = (1, 12, 12)


def cnn(width: int, classes: int = 5) -> nn.Sequential:
    """Two stages (12×12, 6×6) and a head; stage ends are modules '5' and '9'."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),       # 0 1 2
        nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),       # 3 4 5
        nn.MaxPool2d(2),                                                   # 6
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(),  # 7 8 9
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, classes),  # 10 11 12
    )  # fmt: skip


class Counting(nn.Module):
    """Wraps a model and counts its forward passes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


@pytest.fixture
def models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return cnn(8), cnn(2)


def batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, *INPUT, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_total_is_the_weighted_sum_of_hand_computed_terms(models) -> None:
    teacher, student = models
    cfg = DistillConfig(alpha=0.6, temperature=3.0, label_smoothing=0.05)
    d = Distiller(teacher, student, cfg, INPUT)
    x, y = batch()
    terms, logits = d(x, y)
    assert set(terms) == {"hard", "soft", "feature", "attention", "total"}
    assert all(v.dim() == 0 for v in terms.values())
    with torch.no_grad():
        zt, zs = teacher(x), student(x)
    t = 3.0
    hard = F.cross_entropy(zs, y, label_smoothing=0.05)
    p_t = torch.softmax(zt / t, 1)
    soft = t * t * (p_t * (p_t.log() - torch.log_softmax(zs / t, 1))).sum(1).mean()
    torch.testing.assert_close(logits.detach(), zs)
    torch.testing.assert_close(terms["hard"].detach(), hard)
    torch.testing.assert_close(terms["soft"].detach(), soft)
    torch.testing.assert_close(terms["total"].detach(), 0.4 * hard + 0.6 * soft)
    assert terms["feature"].item() == 0.0 and terms["attention"].item() == 0.0


def test_no_gradient_or_update_ever_reaches_the_teacher(models) -> None:
    teacher, student = models
    cfg = DistillConfig(alpha=0.4, beta=0.2, gamma=0.2)
    d = Distiller(teacher, student, cfg, INPUT)
    before = copy.deepcopy(teacher.state_dict())  # weights and BatchNorm running stats
    t_params = {id(p) for p in teacher.parameters()}
    assert not t_params & {id(p) for p in d.parameters()}
    assert not t_params & {id(p) for p in d.trainable_parameters()}
    assert not any(k.startswith(("teacher", "_teacher")) for k in d.state_dict())
    d.train()
    assert not teacher.training and student.training
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1, momentum=0.9)
    x, y = batch()
    for _ in range(2):
        terms, _ = d(x, y)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    # ... while the student and the adapters did learn.
    assert all(p.grad is not None for p in d.trainable_parameters())


def test_trainable_parameters_are_student_plus_adapters(models) -> None:
    teacher, student = models
    d = Distiller(teacher, student, DistillConfig(alpha=0.5, beta=0.3), INPUT)
    ids = [id(p) for p in d.trainable_parameters()]
    expected = [id(p) for p in student.parameters()] + [id(p) for p in d.feature.parameters()]
    assert ids == expected and len(set(ids)) == len(ids)
    assert set(ids) == {id(p) for p in d.parameters()}


def test_auto_pairing_of_different_widths_builds_adapters_of_the_right_shapes(models) -> None:
    teacher, student = models
    assert auto_pairs(teacher, student, INPUT, "feature") == [("5", "5"), ("9", "9")]
    d = Distiller(teacher, student, DistillConfig(alpha=0.5, beta=0.25, gamma=0.25), INPUT)
    assert d.pairs == {"feature": [("5", "5"), ("9", "9")], "attention": [("5", "5"), ("9", "9")]}
    convs = list(d.feature.adapters)
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (2, 8, (1, 1)),
        (4, 16, (1, 1)),
    ]
    terms, _ = d(*batch())
    assert terms["feature"].item() > 0 and terms["attention"].item() > 0


def test_feature_and_attention_terms_are_zero_when_student_equals_teacher(models) -> None:
    teacher, _ = models
    student = copy.deepcopy(teacher)
    d = Distiller(teacher, student, DistillConfig(alpha=0.2, beta=0.4, gamma=0.4), INPUT)
    assert all(isinstance(a, nn.Identity) for a in d.feature.adapters)
    d.eval()  # same BatchNorm behaviour on both sides
    terms, _ = d(*batch())
    assert terms["feature"].item() == 0.0
    assert terms["attention"].item() == 0.0
    assert abs(terms["soft"].item()) < 1e-6


def test_zero_weight_terms_are_neither_built_nor_computed(models, monkeypatch) -> None:
    teacher, student = models
    counted = Counting(teacher)
    d = Distiller(counted, student, DistillConfig(alpha=0.0), INPUT)
    assert d.soft is None and d.feature is None and d.attention is None and d.hard is not None
    assert not d.needs_teacher_features
    assert not any(m._forward_hooks for m in teacher.modules())  # no taps: lean step
    assert not any(m._forward_hooks for m in student.modules())
    monkeypatch.setattr(F, "kl_div", _fail)
    terms, _ = d(*batch())
    assert counted.calls == 0  # alpha = 0: the teacher is not needed at all
    assert terms["soft"].item() == 0.0 and terms["feature"].item() == 0.0
    torch.testing.assert_close(terms["total"], terms["hard"])

    # All weight on soft targets: no labels needed, no cross-entropy computed.
    monkeypatch.undo()
    monkeypatch.setattr(F, "cross_entropy", _fail)
    d = Distiller(teacher, student, DistillConfig(alpha=1.0), INPUT)
    assert d.hard is None
    terms, _ = d(batch()[0], None)
    assert terms["hard"].item() == 0.0 and terms["total"].item() > 0


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("a zero-weight term was computed")


def test_weights_that_sum_to_one_in_floating_point_skip_the_hard_term(models) -> None:
    teacher, student = models
    d = Distiller(teacher, student, DistillConfig(alpha=0.7, beta=0.2, gamma=0.1), INPUT)
    assert d.hard is None
    terms, _ = d(batch()[0], None)
    assert terms["hard"].item() == 0.0


def test_cached_teacher_logits_skip_the_teacher_and_give_the_same_loss(models) -> None:
    teacher, student = models
    counted = Counting(teacher)
    d = Distiller(counted, student, DistillConfig(alpha=0.7), INPUT)
    d.eval()
    x, y = batch()
    online, _ = d(x, y)
    assert counted.calls == 1
    cached_logits = d.teacher_logits(x)
    assert counted.calls == 2 and not cached_logits.requires_grad
    cached, _ = d(x, y, teacher_logits=cached_logits)
    assert counted.calls == 2
    torch.testing.assert_close(cached["total"], online["total"])


def test_teacher_runs_for_features_even_with_cached_logits(models) -> None:
    teacher, student = models
    counted = Counting(teacher)
    cfg = DistillConfig(alpha=0.5, gamma=0.3, attention={"pairs": [("inner.9", "9")]})
    d = Distiller(counted, student, cfg, INPUT)
    assert d.needs_teacher_features and d.pairs["attention"] == [("inner.9", "9")]
    counted.calls = 0  # forget the probe pass that found the layer shapes
    x, y = batch()
    terms, _ = d(x, y, teacher_logits=d.teacher_logits(x))
    assert counted.calls == 2 and terms["attention"].item() > 0
    # The taps are emptied after each step so no batch's activations linger.
    assert not d._t_tap.outputs and not d._s_tap.outputs


def test_a_bad_user_pair_names_the_candidate_layers(models) -> None:
    teacher, student = models
    cfg = DistillConfig(alpha=0.5, beta=0.3, feature={"pairs": [("layer9", "5")]})
    with pytest.raises(ConfigError) as err:
        Distiller(teacher, student, cfg, INPUT)
    assert "layer9" in err.value.what and "teacher" in err.value.what
    assert "5 (8, 12, 12)" in err.value.fix and "9 (16, 6, 6)" in err.value.fix

    cfg = DistillConfig(alpha=0.5, gamma=0.3, attention={"pairs": [("9", "12")]})
    with pytest.raises(ConfigError, match="not a feature map"):
        Distiller(teacher, student, cfg, INPUT)

    cfg = DistillConfig(alpha=0.5, beta=0.3, feature={"pairs": [("9", "12")]})
    with pytest.raises(ConfigError, match="cannot be compared"):
        Distiller(teacher, student, cfg, INPUT)


def test_user_pairs_on_vectors_and_mismatched_sizes_work(models) -> None:
    teacher, student = models
    cfg = DistillConfig(alpha=0.4, beta=0.3, feature={"pairs": [("11", "11"), ("5", "9")]})
    d = Distiller(teacher, student, cfg, INPUT)
    lin, conv = d.feature.adapters
    assert (lin.in_features, lin.out_features) == (4, 16)
    assert (conv.in_channels, conv.out_channels) == (4, 8)
    terms, _ = d(*batch())
    terms["total"].backward()
    assert conv.weight.grad is not None and lin.weight.grad is not None


def test_describe_is_plain_data_for_the_run_summary(models) -> None:
    teacher, student = models
    d = Distiller(teacher, student, DistillConfig(alpha=0.5, beta=0.3), INPUT)
    info = json.loads(json.dumps(d.describe()))
    assert info["pairs"] == {"feature": [["5", "5"], ["9", "9"]], "attention": []}
    assert info["weights"]["feature"] == 0.3
    assert info["adapter_parameters"] == (2 * 8 + 8) + (4 * 16 + 16)


def test_a_paired_layer_that_did_not_run_is_a_clear_error(models) -> None:
    teacher, _ = models

    class Skippy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = cnn(2)
            self.extra = nn.Conv2d(1, 2, 3, padding=1)
            self.skip = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.skip:
                self.extra(x)
            return self.body(x)

    student = Skippy()
    cfg = DistillConfig(alpha=0.5, gamma=0.3, attention={"pairs": [("5", "extra")]})
    d = Distiller(teacher, student, cfg, INPUT)
    student.skip = True
    with pytest.raises(CompatibilityError, match="'extra' produced no output"):
        d(*batch())
    assert not d._t_tap.outputs and not d._s_tap.outputs


def test_moving_the_distiller_moves_the_teacher_too(models) -> None:
    teacher, student = models
    d = Distiller(teacher, student, DistillConfig(alpha=0.5), INPUT).double()
    assert next(teacher.parameters()).dtype == torch.float64
    terms, _ = d(batch()[0].double(), batch()[1])
    assert terms["total"].dtype == torch.float64


def test_teacher_with_tuple_or_dict_output(models) -> None:
    teacher, student = models

    class DictOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = teacher

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.net(x)}

    d = Distiller(DictOut(), student, DistillConfig(alpha=0.5), INPUT)
    x, y = batch()
    torch.testing.assert_close(d.teacher_logits(x), teacher(x))
    assert torch.isfinite(d(x, y)[0]["total"])


def test_a_few_kd_steps_reduce_the_loss(models) -> None:
    teacher, student = models
    d = Distiller(teacher, student, DistillConfig(alpha=0.5, beta=0.2, gamma=0.1), INPUT)
    opt = torch.optim.Adam(d.trainable_parameters(), lr=1e-2)
    x, y = batch(16)
    first = None
    for _ in range(15):
        terms, _ = d(x, y)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = first if first is not None else terms["total"].item()
    assert terms["total"].item() < 0.8 * first


# --- taps and pairing ----------------------------------------------------------------------------


def test_feature_tap_collects_outputs_and_removes_its_hooks(models) -> None:
    teacher, _ = models
    with FeatureTap(teacher, ["5", "9"]) as tap:
        out = teacher(torch.randn(2, *INPUT))
        assert tap.outputs["5"].shape == (2, 8, 12, 12)
        assert tap.outputs["9"].shape == (2, 16, 6, 6)
        assert out.shape == (2, 5)
    assert not tap.outputs and not any(m._forward_hooks for m in teacher.modules())
    with pytest.raises(ConfigError, match="does not exist") as err:
        FeatureTap(teacher, ["nope"])
    assert "9" in err.value.fix


def test_candidate_layers_skip_vectors_1x1_maps_and_reused_modules() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 3, 3, padding=1)
            self.b = nn.Conv2d(3, 3, 3, stride=2, padding=1)
            self.act = nn.ReLU()  # used twice: no single output
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.a(x))
            x = self.act(self.b(x))
            return self.fc(self.pool(x).flatten(1))

    model = Shared().train()
    cands = candidate_layers(model, INPUT)
    assert cands == [("a", (3, 12, 12)), ("b", (3, 6, 6))]
    assert model.training  # the probe restores the mode


def test_stage_matching_by_size_then_from_the_deepest() -> None:
    t = [("t1", (8, 16, 16)), ("t2", (8, 16, 16)), ("t3", (16, 8, 8)), ("t4", (32, 4, 4))]
    s = [("s1", (4, 8, 8)), ("s2", (8, 4, 4))]
    assert stage_ends(t) == [("t2", (8, 16, 16)), ("t3", (16, 8, 8)), ("t4", (32, 4, 4))]
    assert match_stages(stage_ends(t), s) == [("t3", "s1"), ("t4", "s2")]
    other = [("s1", (4, 10, 10)), ("s2", (8, 5, 5))]
    assert match_stages(stage_ends(t), other) == [("t3", "s1"), ("t4", "s2")]
    assert match_stages([], other) == []
