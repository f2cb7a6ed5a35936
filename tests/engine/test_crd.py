"""CRD (Tian et al. 2020) against its equations written here in numpy (float64), its memory bank
and negatives, what trains and what stays frozen, extreme inputs, and a run through the jobs
facade with ``terms: [hard, crd]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kdgui.core.components.distill import CRDParams
from kdgui.core.config import DistillConfig, demo_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import RunFinished, RunStarted, StepEvent
from kdgui.engine.distill import Distiller
from kdgui.engine.distill.crd import ContrastBank, CRDLoss

N_DATA, K, T, MOMENTUM = 10, 6, 0.07, 0.5

F_S = torch.tensor([[1.0, -0.5, 2.0], [0.2, 0.3, -1.0], [-1.5, 0.5, 0.5], [0.0, 2.0, 1.0]])
F_T = torch.tensor([[2.0, 0.5, -1.0, 0.0, 1.0], [0.5, -2.0, 1.0, 1.0, 0.0],
                    [1.0, 1.0, 1.0, -1.0, 0.5], [-2.0, 0.0, 0.5, 1.0, 1.5]])
INDEX = torch.tensor([3, 7, 0, 5])
ROWS = torch.tensor([[3, 1, 2, 9, 9, 4, 6], [7, 0, 8, 2, 5, 1, 3],
                     [0, 6, 6, 4, 1, 9, 2], [5, 2, 3, 8, 0, 7, 1]])


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def nce_by_hand(anchor: np.ndarray, memory: np.ndarray, rows: np.ndarray, z: float | None,
                n: int, t: float) -> tuple[float, float]:
    """Eq. (18) as in the authors' ContrastLoss: P = exp(<v, m>/t) / Z, noise K/N;
    -[Σ log P_pos/(P_pos + K/N) + Σ log (K/N)/(P_neg + K/N)] / B. Returns (loss, Z)."""
    k = rows.shape[1] - 1
    out = np.array([[np.exp(anchor[b] @ memory[j] / t) for j in rows[b]]
                    for b in range(len(rows))])
    if z is None:
        z = out.mean() * n
    p = out / z
    noise = k / n
    loss = -(np.log(p[:, 0] / (p[:, 0] + noise)).sum()
             + np.log(noise / (p[:, 1:] + noise)).sum()) / len(rows)
    return float(loss), float(z)


def _loss(params: CRDParams | None = None) -> CRDLoss:
    torch.manual_seed(0)
    loss = CRDLoss(params or CRDParams(feat_dim=4, nce_k=K, pool=False), [(3, 5)], N_DATA)
    loss.banks[0].draw = lambda index, labels: ROWS  # fixed negatives (the paper samples them)
    return loss


def test_crd_matches_the_papers_nce_and_memory_update_on_fixed_tensors() -> None:
    loss = _loss()
    bank = loss.banks[0]
    head_s, head_t = loss.adapters[0].linear, loss.adapters[1].linear
    w_s, b_s = head_s.weight.detach().double().numpy(), head_s.bias.detach().double().numpy()
    w_t, b_t = head_t.weight.detach().double().numpy(), head_t.bias.detach().double().numpy()
    m_s = bank.memory_student.double().numpy().copy()
    m_t = bank.memory_teacher.double().numpy().copy()
    v_s = normalize(F_S.double().numpy() @ w_s.T + b_s)
    v_t = normalize(F_T.double().numpy() @ w_t.T + b_t)
    rows, idx = ROWS.numpy(), INDEX.numpy()

    # student anchor against the teacher's bank, teacher anchor against the student's bank
    s_loss, z_s = nce_by_hand(v_s, m_t, rows, None, N_DATA, T)
    t_loss, z_t = nce_by_hand(v_t, m_s, rows, None, N_DATA, T)
    value = loss([F_S], [F_T], INDEX, torch.tensor([0, 1, 0, 1]))
    assert value.item() == pytest.approx(s_loss + t_loss, rel=1e-5)

    # the bank moved toward this batch's embeddings (momentum 0.5, then L2-normalised)
    m_s[idx] = normalize(MOMENTUM * m_s[idx] + (1 - MOMENTUM) * v_s)
    m_t[idx] = normalize(MOMENTUM * m_t[idx] + (1 - MOMENTUM) * v_t)
    np.testing.assert_allclose(bank.memory_student.numpy(), m_s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bank.memory_teacher.numpy(), m_t, rtol=1e-5, atol=1e-6)

    # the second batch keeps the first batch's normalisation constants Z
    s2, _ = nce_by_hand(v_s, m_t, rows, z_s, N_DATA, T)
    t2, _ = nce_by_hand(v_t, m_s, rows, z_t, N_DATA, T)
    assert loss([F_S], [F_T], INDEX).item() == pytest.approx(s2 + t2, rel=1e-5)

    # the bank is state (saved with the checkpoint), not something an optimizer trains
    state = loss.state_dict()
    assert {"banks.0.memory_student", "banks.0.memory_teacher", "banks.0.log_z"} <= set(state)
    assert sum(p.numel() for p in loss.parameters()) == (3 + 1) * 4 + (5 + 1) * 4


def test_both_ways_of_scoring_the_bank_agree_with_their_gradients() -> None:
    torch.manual_seed(0)
    memory = torch.randn(40, 8)
    v = torch.randn(3, 8, requires_grad=True)
    few, many = torch.randint(0, 40, (3, 5)), torch.randint(0, 40, (3, 30))
    by_hand = [torch.stack([memory[r] @ v[i] for i, r in enumerate(rows)]) for rows in (few, many)]
    for rows, expected in zip((few, many), by_hand, strict=True):  # gathered, then one product
        got = ContrastBank.scores(memory, rows, v)
        torch.testing.assert_close(got, expected)
        g1, = torch.autograd.grad(got.sum(), v)
        g2, = torch.autograd.grad(expected.sum(), v)
        torch.testing.assert_close(g1, g2)


def test_negatives_are_capped_at_the_data_and_avoid_the_anchors_class_once_seen() -> None:
    torch.manual_seed(0)
    loss = CRDLoss(CRDParams(), [(3, 5)], 50)
    bank = loss.banks[0]
    assert bank.k == 49 and CRDParams().nce_k == 16384  # the authors' 16384, capped at N - 1
    labels = torch.arange(50) % 5
    bank.labels[:] = labels  # as after one epoch
    index = torch.tensor([0, 1, 2, 3, 4, 10, 21, 33])
    rows = bank.draw(index, labels[index])
    assert rows.shape == (8, 50) and torch.equal(rows[:, 0], index)
    assert not bool((labels[rows[:, 1:]] == labels[index].view(-1, 1)).any())
    uniform = CRDLoss(CRDParams(negatives="uniform"), [(3, 5)], 50).banks[0]
    uniform.labels[:] = labels
    rows = uniform.draw(index, labels[index])
    assert bool((labels[rows[:, 1:]] == labels[index].view(-1, 1)).any())


def cnn(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 5))


def test_only_the_student_and_both_heads_learn_and_the_teacher_stays_frozen() -> None:
    torch.manual_seed(0)
    teacher, student = cnn(8), cnn(3)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = DistillConfig(terms=[{"name": "hard"}, {"name": "crd", "weight": 0.8}])
    d = Distiller(teacher, student, cfg, (1, 8, 8), num_samples=32)
    assert d.pairs["crd"] == [("4", "4")]  # the deepest stage ends: the penultimate features
    trainable = {id(p) for p in d.trainable_parameters()}
    assert all(id(p) in trainable for p in d.crd.adapters.parameters())
    assert d.describe()["adapter_parameters"] == (6 + 1) * 128 + (16 + 1) * 128
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 5, (32,))
    opt = torch.optim.SGD(list(d.trainable_parameters()), lr=0.05)
    heads = [p.detach().clone() for p in d.crd.adapters.parameters()]
    for step in range(4):
        idx = torch.arange(8 * step, 8 * step + 8)
        terms, _ = d(x[idx], y[idx], None, idx)
        opt.zero_grad()
        terms["total"].backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in d.crd.adapters.parameters())
        assert all(p.grad is not None for p in student.parameters())
        opt.step()
    assert set(terms) == {"hard", "crd", "total"} and terms["crd"].item() > 0
    assert all(not torch.equal(a, b) for a, b in zip(heads, d.crd.adapters.parameters(),
                                                      strict=True))
    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert bool((d.crd.banks[0].labels == y).all())  # every sample's class was seen


def test_crd_without_indices_or_without_the_data_size_is_a_clear_error() -> None:
    cfg = DistillConfig(terms=[{"name": "crd"}])
    with pytest.raises(ConfigError, match="training set's size"):
        Distiller(cnn(4), cnn(2), cfg, (1, 8, 8))
    d = Distiller(cnn(4), cnn(2), cfg, (1, 8, 8), num_samples=20)
    with pytest.raises(ConfigError, match="index in the training set"):
        d(torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))


def test_crd_stays_finite_under_extreme_fp16_features() -> None:
    loss = CRDLoss(CRDParams(), [(4, 8)], 64)
    s = (torch.sign(torch.randn(6, 4, 3, 3)) * 1e4).half().requires_grad_(True)
    t = (torch.sign(torch.randn(6, 8, 2, 2)) * 1e4).half()
    value = loss([s], [t], torch.arange(6), torch.arange(6) % 3)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()
    tiny = CRDLoss(CRDParams(nce_t=1e-3), [(4, 8)], 64)  # exp(<v, m>/t) would overflow
    assert torch.isfinite(tiny([s.detach()], [t], torch.arange(6)))


def test_hard_plus_crd_runs_through_the_jobs_facade_with_the_cache_asked_for(tmp_path) -> None:
    from kdgui.engine import jobs

    cfg = demo_config()
    cfg.training.epochs = 1
    cfg.training.log_every = 5
    cfg.training.cache_teacher = "on"
    cfg.data.limit = 400
    cfg.training.batch_size = 32
    cfg.distill = DistillConfig(terms=[{"name": "hard"}, {"name": "crd", "weight": 0.8}])
    events = list(jobs.run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.pairs["crd"] and not started.teacher_cached  # the teacher's features run
    assert any("cache_teacher is 'on', but the teacher runs every step: the terms crd" in
               getattr(e, "message", "") for e in events)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps and set(steps[0].losses) == {"hard", "crd", "total"}
    for s in steps:
        assert np.isfinite(s.losses["crd"]) and s.losses["crd"] > 0
        assert s.losses["total"] == pytest.approx(s.losses["hard"] + 0.8 * s.losses["crd"],
                                                  rel=1e-4)
    # heads and bank are saved with the checkpoint, as adapters are (a resumed run keeps them)
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=False)
    keys = set(state["distiller"])
    assert {"crd.adapters.0.linear.weight", "crd.banks.0.memory_teacher"} <= keys
