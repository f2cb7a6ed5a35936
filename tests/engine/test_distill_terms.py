"""The loss as a list of terms: config form and migration, a method declared only here, and each
method's value against a formula written independently from its paper (numpy, float64)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdgui.cli.main import main
from kdgui.core.components.distill import DISTParams, DKDParams, Input, LossParams, SoftParams
from kdgui.core.config import DistillConfig, demo_config
from kdgui.core.config_io import config_from_dict, load_config, save_config
from kdgui.core.distill_terms import formula
from kdgui.core.errors import ConfigError
from kdgui.core.events import RunFinished, StepEvent
from kdgui.core.params import param
from kdgui.core.registry import losses, register
from kdgui.engine.distill import Distiller
from kdgui.engine.distill.logit_methods import DISTLoss, DKDLoss
from kdgui.engine.distill.losses import SoftTargetLoss

# -- fixed tensors -------------------------------------------------------------------------------

Z_S = torch.tensor([[2.0, -1.0, 0.5, 0.0, 1.5],
                    [0.3, 0.2, -2.0, 1.0, 0.0],
                    [-1.0, 3.0, 0.0, 0.5, -0.5]])
Z_T = torch.tensor([[4.0, -2.0, 1.0, 0.5, 2.5],
                    [1.0, -0.5, -3.0, 2.5, 0.5],
                    [-2.0, 5.0, 1.0, 0.0, -1.0]])
Y = torch.tensor([0, 3, 1])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def dkd_by_hand(zs, zt, y, alpha, beta, T) -> float:
    """Zhao et al. 2022, eq. (1)-(7), sample by sample."""
    total = 0.0
    for s, t, k in zip(zs.astype(np.float64), zt.astype(np.float64), y, strict=True):
        ps, pt = softmax(s / T), softmax(t / T)
        bs, bt = np.array([ps[k], 1 - ps[k]]), np.array([pt[k], 1 - pt[k]])
        others = [j for j in range(len(s)) if j != k]
        ns, nt = ps[others] / (1 - ps[k]), pt[others] / (1 - pt[k])
        total += T * T * (alpha * kl(bt, bs) + beta * kl(nt, ns))
    return total / len(y)


def pearson(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """Σ(a−ā)(b−b̄) / (‖a−ā‖ ‖b−b̄‖ + eps); the authors' code adds eps = 1e-8."""
    a, b = a - a.mean(), b - b.mean()
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + eps))


def dist_by_hand(zs, zt, beta, gamma, T, eps=1e-8) -> float:
    """Huang et al. 2022, eq. (5)-(8)."""
    ys, yt = softmax(zs.astype(np.float64) / T), softmax(zt.astype(np.float64) / T)
    inter = 1 - np.mean([pearson(a, b, eps) for a, b in zip(ys, yt, strict=True)])
    intra = 1 - np.mean([pearson(a, b, eps) for a, b in zip(ys.T, yt.T, strict=True)])
    return T * T * (beta * inter + gamma * intra)


def kd_by_hand(zs, zt, T) -> float:
    ps, pt = softmax(zs.astype(np.float64) / T), softmax(zt.astype(np.float64) / T)
    return T * T * float(np.mean([kl(a, b) for a, b in zip(pt, ps, strict=True)]))


def zscore(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    return (z - z.mean(axis=1, keepdims=True)) / (z.std(axis=1, ddof=1, keepdims=True) + 1e-7)


# -- each method's value -------------------------------------------------------------------------

def test_dkd_matches_the_papers_formula() -> None:
    loss = DKDLoss(DKDParams(alpha=1.0, beta=8.0, temperature=4.0))
    expected = dkd_by_hand(Z_S.numpy(), Z_T.numpy(), Y.numpy(), 1.0, 8.0, 4.0)
    assert loss(Z_S, Z_T, Y).item() == pytest.approx(expected, rel=1e-5)


def test_dkd_with_beta_one_minus_the_teachers_target_probability_is_kd() -> None:
    """The paper's eq. (7): KD = TCKD + (1 - p_t^target) NCKD, per sample."""
    s, t, y = Z_S[:1], Z_T[:1], Y[:1]
    p_target = torch.softmax(t / 2.0, 1)[0, 0].item()
    dkd = DKDLoss(DKDParams(alpha=1.0, beta=1.0 - p_target, temperature=2.0, warmup_epochs=0))
    kd = SoftTargetLoss(SoftParams(temperature=2.0))
    assert dkd(s, t, y).item() == pytest.approx(kd(s, t).item(), rel=1e-5)


def test_dkd_warm_up_is_linear_over_the_first_epochs() -> None:
    loss = DKDLoss(DKDParams(warmup_epochs=20))
    full = loss(Z_S, Z_T, Y).item()  # never told an epoch: no warm-up
    for epoch, factor in ((0, 1 / 20), (9, 10 / 20), (19, 1.0), (50, 1.0)):
        loss.set_epoch(epoch)
        assert loss(Z_S, Z_T, Y).item() == pytest.approx(factor * full, rel=1e-6)


def test_dist_matches_the_papers_formula() -> None:
    for beta, gamma, T in ((1.0, 1.0, 1.0), (2.0, 2.0, 4.0), (1.0, 0.0, 1.0)):
        loss = DISTLoss(DISTParams(beta=beta, gamma=gamma, temperature=T))
        expected = dist_by_hand(Z_S.numpy(), Z_T.numpy(), beta, gamma, T)
        assert loss(Z_S, Z_T).item() == pytest.approx(expected, rel=1e-6, abs=1e-8)
        # The eps is the authors' guard against a zero norm, not a change of the value:
        # without it (numpy's own correlation) the loss moves in the fifth digit at most.
        ys, yt = softmax(Z_S.numpy() / T), softmax(Z_T.numpy() / T)
        plain = T * T * (beta * (1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ys, yt, strict=True)]))
                         + gamma * (1 - np.mean([np.corrcoef(a, b)[0, 1]
                                                 for a, b in zip(ys.T, yt.T, strict=True)])))
        assert expected == pytest.approx(plain, rel=1e-4)


def test_logit_standardization_is_kd_dkd_and_dist_on_z_scored_logits() -> None:
    zs, zt = zscore(Z_S.numpy()), zscore(Z_T.numpy())
    soft = SoftTargetLoss(SoftParams(temperature=2.0, standardize=True))
    assert soft(Z_S, Z_T).item() == pytest.approx(kd_by_hand(zs, zt, 2.0), rel=1e-5)
    dkd = DKDLoss(DKDParams(temperature=2.0, standardize=True))
    assert dkd(Z_S, Z_T, Y).item() == pytest.approx(
        dkd_by_hand(zs, zt, Y.numpy(), 1.0, 8.0, 2.0), rel=1e-5)
    dist = DISTLoss(DISTParams(temperature=2.0, standardize=True))
    assert dist(Z_S, Z_T).item() == pytest.approx(dist_by_hand(zs, zt, 1.0, 1.0, 2.0), rel=1e-5)
    # Standardized losses ignore the logits' scale and shift; the plain one does not.
    assert soft(3 * Z_S + 1, Z_T).item() == pytest.approx(soft(Z_S, Z_T).item(), rel=1e-4)
    assert SoftTargetLoss(SoftParams(temperature=2.0))(3 * Z_S + 1, Z_T).item() != pytest.approx(
        SoftTargetLoss(SoftParams(temperature=2.0))(Z_S, Z_T).item(), rel=1e-2)


METHODS = {
    "dkd": lambda: (DKDLoss(DKDParams(warmup_epochs=0)), True),
    "dkd-ls": lambda: (DKDLoss(DKDParams(warmup_epochs=0, standardize=True)), True),
    "dist": lambda: (DISTLoss(DISTParams(temperature=4.0)), False),
    "soft-ls": lambda: (SoftTargetLoss(SoftParams(standardize=True)), False),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_gradients_match_finite_differences_and_never_reach_the_teacher(method) -> None:
    loss, needs_y = METHODS[method]()
    zs = Z_S.double().clone().requires_grad_(True)
    zt = Z_T.clone().requires_grad_(True)
    args = (Y,) if needs_y else ()
    value = loss(zs.float(), zt, *args)
    value.backward()
    assert zt.grad is None  # the teacher's logits are detached
    grad = zs.grad.numpy()
    assert np.abs(grad).max() > 1e-4  # the student does learn something here
    h = 1e-2
    for i, j in ((0, 0), (1, 3), (2, 4)):
        up, down = Z_S.clone(), Z_S.clone()
        up[i, j] += h
        down[i, j] -= h
        numeric = (loss(up, Z_T, *args).item() - loss(down, Z_T, *args).item()) / (2 * h)
        assert grad[i, j] == pytest.approx(numeric, rel=2e-2, abs=2e-4)
    # A student that equals its teacher is at the minimum: no loss (up to DIST's 1e-8 guard in
    # the correlation), no gradient.
    same = Z_T.clone().requires_grad_(True)
    at_min = loss(same, Z_T, *args)
    at_min.backward()
    assert at_min.item() == pytest.approx(0.0, abs=1e-4)
    assert same.grad.abs().max().item() < 1e-4


@pytest.mark.parametrize("method", sorted(METHODS))
def test_extreme_fp16_logits_give_finite_values_and_gradients(method) -> None:
    loss, needs_y = METHODS[method]()
    zs = (torch.sign(Z_S) * 1e4).half().requires_grad_(True)
    zt = (-torch.sign(Z_T) * 1e4).half()
    value = loss(zs, zt, *((Y,) if needs_y else ()))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(zs.grad).all()


# -- the config: terms, shorthand, migration -----------------------------------------------------

def test_shorthand_means_four_terms_with_the_hard_weight_as_the_rest() -> None:
    cfg = DistillConfig(alpha=0.5, beta=0.2, temperature=2.0, label_smoothing=0.1)
    terms = {t.key: t for t in cfg.resolved_terms()}
    assert list(terms) == ["hard", "soft", "feature", "attention"]
    assert terms["hard"].weight == pytest.approx(0.3)
    assert terms["hard"].params == {"label_smoothing": 0.1}
    assert terms["soft"].weight == 0.5 and terms["soft"].params == {"temperature": 2.0}
    assert [t.key for t in cfg.active_terms()] == ["hard", "soft", "feature"]
    assert formula(cfg.resolved_terms()) == "L = 0.30·L_hard + 0.50·L_soft + 0.20·L_feature"


@pytest.mark.parametrize(("terms", "words"), [
    ([{"name": "dkdd"}], ["unknown loss 'dkdd'", "dkd"]),
    ([{"name": "dkd", "params": {"betta": 8}}], ["unknown parameter 'betta' of loss 'dkd'"]),
    ([{"name": "dkd", "params": {"beta": -1}}], ["parameter 'beta' of loss 'dkd'", "≥ 0"]),
    ([{"name": "dist", "pairs": [["a", "b"]]}], ["loss 'dist' reads no feature maps"]),
    ([{"name": "soft"}, {"name": "soft"}], ["two terms are called 'soft'", "label"]),
    ([], ["distill.terms is empty"]),
])
def test_bad_terms_are_one_clear_line_before_any_work(terms, words) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"schema_version": 2, "distill": {"terms": terms}})
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    for word in words:
        assert word in text


def test_terms_and_a_changed_shorthand_field_are_refused_together() -> None:
    with pytest.raises(ConfigError, match=r"distill\.terms and the shorthand distill\.alpha"):
        config_from_dict({"distill": {"alpha": 0.3, "terms": [{"name": "hard"}]}})


def test_a_term_list_saves_and_loads_without_the_unused_shorthand(tmp_path) -> None:
    cfg = demo_config()
    cfg.distill = DistillConfig(terms=[
        {"name": "hard", "weight": 1.0},
        {"name": "dkd", "weight": 1.0, "params": {"alpha": 1, "beta": 8, "standardize": True}},
        {"name": "soft", "weight": 0.5, "label": "kd-t2", "params": {"temperature": 2}},
    ])
    path = tmp_path / "terms.yaml"
    save_config(cfg, path)
    text = path.read_text()
    assert "alpha: 0.7" not in text and "schema_version: 2" in text
    back = load_config(path)
    assert [t.key for t in back.distill.resolved_terms()] == ["hard", "dkd", "kd-t2"]
    assert back.distill.needs("labels") and back.distill.needs("logits")
    assert not back.distill.needs("features")


def test_a_schema_1_config_loads_unchanged_and_check_says_what_it_maps_to(tmp_path, capsys):
    path = tmp_path / "old.yaml"
    path.write_text("schema_version: 1\nname: old\ndistill:\n  alpha: 0.6\n  temperature: 2\n")
    cfg = load_config(path)
    assert cfg.schema_version == 2 and cfg.distill.alpha == 0.6
    assert [(t.key, round(t.weight, 6)) for t in cfg.distill.active_terms()] == [
        ("hard", 0.4), ("soft", 0.6)]
    assert main(["config", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "schema_version 1 → 2" in out
    assert "L = 0.40·L_hard + 0.60·L_soft" in out and "temperature=2.0" in out
    path.write_text("schema_version: 2\ndistill:\n  terms: [{name: hard}, {name: dist}]\n")
    assert main(["config", "--check", str(path)]) == 0
    assert "loss: L = 1.00·L_hard + 1.00·L_dist" in capsys.readouterr().out


# -- a method declared in this test only ---------------------------------------------------------

class ToyParams(LossParams):
    """A toy logit loss: ``scale · mean |z_s − z_t|``."""

    inputs: ClassVar[tuple[Input, ...]] = ("logits",)
    scale: float = param(1.0, "Multiplier of the L1 distance.", ge=0.0, le=10.0)


class ToyL1Loss(nn.Module):
    def __init__(self, params: ToyParams) -> None:
        super().__init__()
        self.scale = params.scale

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return self.scale * (student.float() - teacher.detach().float()).abs().mean()


@pytest.fixture
def toy_loss():
    """Declared here only: its module (this file), its declaration, and this test."""
    register("loss", "toy-l1", ToyParams, f"{__name__}:ToyL1Loss", "Toy L1",
             "Mean absolute logit difference (a test's own method).", "L = s·mean|z_s - z_t|")
    yield "toy-l1"
    losses._items.pop("toy-l1", None)  # leave the registry as the other tests expect it


def test_a_loss_declared_in_a_test_runs_a_distillation(toy_loss, tmp_path) -> None:
    from kdgui.engine.session import run

    bad = {"name": toy_loss, "params": {"scale": 11}}
    with pytest.raises(ConfigError, match="parameter 'scale' of loss 'toy-l1'"):
        config_from_dict({"distill": {"terms": [bad]}})
    cfg = demo_config()
    cfg.training.epochs = 1
    cfg.training.log_every = 5
    cfg.distill = DistillConfig(terms=[{"name": "hard", "weight": 1.0},
                                       {"name": toy_loss, "weight": 0.5, "params": {"scale": 2}}])
    events = list(run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert set(steps[0].losses) == {"hard", "toy-l1", "total"}
    for s in steps:  # the total is the weighted sum of exactly these terms
        assert s.losses["total"] == pytest.approx(
            s.losses["hard"] + 0.5 * s.losses["toy-l1"], rel=1e-4)
    assert steps[-1].losses["toy-l1"] < steps[0].losses["toy-l1"]
    assert "name: toy-l1" in (tmp_path / "r" / "config.yaml").read_text()


def test_the_distiller_builds_any_list_and_weights_each_term(toy_loss) -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    cfg = DistillConfig(terms=[
        {"name": "hard", "weight": 0.25},
        {"name": "dkd", "weight": 2.0, "params": {"warmup_epochs": 4}},
        {"name": "dist", "weight": 0.0},
        {"name": toy_loss, "weight": 3.0, "label": "toy"},
    ])
    d = Distiller(teacher, student, cfg, (1, 3, 4))
    assert d.dist is None and d.toy is not None  # weight 0: not built
    x, y = torch.randn(6, 1, 3, 4), torch.randint(0, 5, (6,))
    d.set_epoch(1)
    terms, zs = d(x, y)
    with torch.no_grad():
        zt = teacher(x)
    hard = F.cross_entropy(zs, y)
    dkd = 0.5 * dkd_by_hand(zs.detach().numpy(), zt.numpy(), y.numpy(), 1.0, 8.0, 4.0)
    toy = (zs - zt).abs().mean()
    assert list(terms) == ["hard", "dkd", "dist", "toy", "total"]
    assert terms["dist"].item() == 0.0
    assert terms["dkd"].item() == pytest.approx(dkd, rel=1e-5)
    assert terms["total"].item() == pytest.approx(
        0.25 * hard.item() + 2.0 * dkd + 3.0 * toy.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="reads labels"):
        d(x, None)


def test_fine_tuning_keeps_the_runs_logit_terms_and_drops_feature_terms() -> None:
    cfg = DistillConfig(terms=[{"name": "hard"}, {"name": "dkd", "params": {"beta": 4}},
                               {"name": "feature", "weight": 0.5}])
    assert [(t.name, t.params) for t in cfg.finetune_loss().terms] == [
        ("hard", {}), ("dkd", {"beta": 4})]
    only_features = DistillConfig(terms=[{"name": "attention"}])
    assert [t.name for t in only_features.finetune_loss().terms] == ["hard"]
    short = DistillConfig(alpha=0.4, beta=0.3, temperature=2.0).finetune_loss()
    assert (short.alpha, short.beta, short.temperature) == (0.4, 0.0, 2.0)


def test_dkd_splits_an_unlabelled_sample_at_the_teachers_class() -> None:
    loss = DKDLoss(DKDParams(warmup_epochs=0))
    unlabelled = torch.full_like(Y, -1)
    teacher_class = Z_T.argmax(dim=1)
    assert loss(Z_S, Z_T, unlabelled).item() == pytest.approx(
        loss(Z_S, Z_T, teacher_class).item(), rel=1e-6)


# -- relation methods (RKD, PKT, SP) -------------------------------------------------------------

E_S = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [2.0, 1.0, 1.0], [-1.0, 0.5, 0.5]])
E_T = torch.tensor([[2.0, 0.5, 1.0, 0.0], [0.0, -2.0, 1.0, 1.0], [3.0, 1.0, -1.0, 0.5],
                    [-2.0, 1.0, 0.0, 1.0]])


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def rkd_by_hand(s: np.ndarray, t: np.ndarray, w_d: float, w_a: float) -> float:
    """Park et al. 2019, eq. (3)-(5): distances over their mean (i ≠ j), angles at j."""
    n = len(s)

    def dist(e):
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
        return d / d[~np.eye(n, dtype=bool)].mean()

    def ang(e):
        out = []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    a, b = e[i] - e[j], e[k] - e[j]
                    na, nb = np.linalg.norm(a), np.linalg.norm(b)
                    out.append(0.0 if na == 0 or nb == 0 else a @ b / (na * nb))
        return np.array(out)

    ds, dt = dist(s.astype(np.float64)), dist(t.astype(np.float64))
    a_s, a_t = ang(s.astype(np.float64)), ang(t.astype(np.float64))
    distance = np.mean([huber(x) for x in (ds - dt).ravel()])
    angle = np.mean([huber(x) for x in (a_s - a_t).ravel()])
    return w_d * distance + w_a * angle


def test_rkd_pkt_and_sp_match_their_papers_formulas() -> None:
    from kdgui.core.components.distill import PKTParams, RKDParams, SPParams
    from kdgui.engine.distill.relation_methods import PKTLoss, RKDLoss, SPLoss

    s, t = E_S.numpy().astype(np.float64), E_T.numpy().astype(np.float64)
    rkd = RKDLoss(RKDParams())([E_S], [E_T]).item()
    assert rkd == pytest.approx(rkd_by_hand(s, t, 25.0, 50.0), rel=1e-5)

    def cond(e):  # PKT's p(j|i) from cosine similarities mapped to [0, 1]
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        k = (e @ e.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = cond(s), cond(t)
    pkt = np.mean([kl(a, b) for a, b in zip(p_t, p_s, strict=True)])
    assert PKTLoss(PKTParams())([E_S], [E_T]).item() == pytest.approx(pkt, rel=1e-4)

    def gram(e):
        g = e @ e.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    sp = np.sum((gram(t) - gram(s)) ** 2) / len(s) ** 2
    assert SPLoss(SPParams())([E_S], [E_T]).item() == pytest.approx(sp, rel=1e-5)


def test_three_terms_hard_dkd_rkd_on_cnns_train_and_only_the_student_learns() -> None:
    torch.manual_seed(0)

    def cnn(width: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 5))

    teacher, student = cnn(8), cnn(3)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = DistillConfig(terms=[{"name": "hard"}, {"name": "dkd", "params": {"warmup_epochs": 0}},
                               {"name": "rkd", "weight": 0.1, "pairs": [["4", "4"]]},
                               {"name": "sp", "weight": 100.0}])
    d = Distiller(teacher, student, cfg, (1, 8, 8))
    assert d.pairs["rkd"] == [("4", "4")] and d.pairs["sp"]  # sp: automatic stage pairs
    opt = torch.optim.SGD(list(d.trainable_parameters()), lr=0.05)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    first = None
    for _ in range(30):
        terms, _ = d(x, y)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = first if first is not None else terms["total"].item()
    assert set(terms) == {"hard", "dkd", "rkd", "sp", "total"}
    assert all(terms[k].item() > 0 for k in ("hard", "dkd", "rkd", "sp"))
    assert terms["total"].item() < 0.7 * first
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("name", ["rkd", "pkt", "sp"])
def test_relation_losses_stay_finite_under_extreme_fp16_features(name) -> None:
    component = losses.get(name)
    loss = component.load()(component.params())
    s = (torch.sign(torch.randn(6, 4, 3, 3)) * 1e4).half().requires_grad_(True)
    t = (torch.sign(torch.randn(6, 8, 2, 2)) * 1e4).half()
    value = loss([s], [t])
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()
