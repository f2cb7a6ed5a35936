"""The fast path: precision/layout chosen by measurement, within a KL bound, reported everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgui.core.config import TrainingConfig, demo_config
from kdgui.core.events import LogEvent, RunFinished, RunStarted
from kdgui.engine import fast_path
from kdgui.engine.fast_path import KL_BOUND, Variant, choose_teacher
from kdgui.engine.fast_student import choose_student
from kdgui.engine.session import run
from kdgui.engine.training import BatchSource, TeacherCache, teacher_outputs


def cnn(width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
    )  # fmt: skip


class FakeClock:
    """Time that advances only when a model runs: 1/64 s per fp32 pass, ``bf16_factor`` times
    that under bf16 autocast. Measurements become exact (binary fractions), so the choice depends
    only on the costs."""

    def __init__(self, bf16_factor: float) -> None:
        self.now = 0.0
        self.costs = {True: bf16_factor / 64, False: 1 / 64}

    def __call__(self) -> float:
        return self.now

    def charge(self) -> None:
        self.now += self.costs[torch.is_autocast_enabled("cpu")]


class Metered(nn.Module):
    """A plain CNN that charges the fake clock per forward pass; ``noise`` is added to its
    logits under autocast (a teacher whose low-precision soft targets drift)."""

    def __init__(self, clock: FakeClock, noise: float = 0.0) -> None:
        super().__init__()
        self.net = cnn()
        self.clock = clock
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.charge()
        out = self.net(x)
        if self.noise and torch.is_autocast_enabled("cpu"):
            out = out + self.noise * torch.randn_like(out.float())
        return out


def _batch() -> list[torch.Tensor]:
    return [torch.randn(16, 1, 12, 12, generator=torch.Generator().manual_seed(0))]


def _choose(monkeypatch: pytest.MonkeyPatch, bf16_factor: float, noise: float = 0.0):
    clock = FakeClock(bf16_factor)
    monkeypatch.setattr(fast_path, "clock", clock)
    teacher = Metered(clock, noise).eval()
    cfg = TrainingConfig(teacher_precision="auto", channels_last="off")
    return choose_teacher(teacher, _batch(), cfg, torch.device("cpu"))


def test_the_chooser_keeps_fp32_when_bf16_is_slower_and_bf16_when_it_is_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, slow_bf16 = _choose(monkeypatch, bf16_factor=2.0)
    assert slow_bf16.variant == Variant("fp32")
    assert slow_bf16.timings_ms == {"fp32": 15.625, "bf16": 31.25}
    runner, fast_bf16 = _choose(monkeypatch, bf16_factor=0.5)
    assert fast_bf16.variant == Variant("bf16")
    assert isinstance(runner, fast_path.FastForward) and runner.variant == Variant("bf16")
    plain = fast_bf16.as_dict()
    assert plain["label"] == "bf16" and "fastest of 2" in fast_bf16.reason
    assert plain["candidates"]["fp32"] == {"ms": 15.625, "kl": 0.0, "refused": ""}


def test_a_candidate_whose_soft_targets_drift_beyond_the_bound_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner, choice = _choose(monkeypatch, bf16_factor=0.1, noise=5.0)  # faster, but wrong
    assert choice.variant == Variant("fp32")
    assert choice.kl["bf16"] > KL_BOUND
    assert choice.refused["bf16"].startswith("KL ")
    assert "bf16" not in choice.timings_ms
    assert "bf16 refused: KL" in choice.sentence()
    assert not isinstance(runner, fast_path.FastForward)


def test_real_bf16_soft_targets_stay_within_the_bound() -> None:
    torch.manual_seed(0)
    teacher = cnn(16).eval()
    x = _batch()[0]
    with torch.inference_mode():
        ref = teacher(x)
        out = fast_path.apply_variant(teacher, Variant("bf16", True), torch.device("cpu"))(x)
    assert out.dtype == torch.float32
    assert fast_path.soft_kl(ref, out) <= KL_BOUND


def test_channels_last_keeps_the_outputs_and_puts_the_layout_back() -> None:
    torch.manual_seed(0)
    model = cnn().eval()
    x = _batch()[0]
    with torch.inference_mode():
        ref = model(x)
        runner = fast_path.apply_variant(model, Variant("fp32", True), torch.device("cpu"))
        out = runner(x)
    conv = model[3]  # 8 -> 8 channels (a 1-channel weight is both layouts at once)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    params = list(model.parameters())
    assert fast_path.set_channels_last(model, False) is True
    assert all(p.is_contiguous() for p in model.parameters())
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]  # optimizer-safe


def test_the_student_is_timed_on_a_copy_and_keeps_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    student = cnn().train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    rng = torch.get_rng_state()
    choice = choose_student(student, _batch()[0], TrainingConfig(), torch.device("cpu"))
    assert choice.variant.precision == "fp32"
    assert set(choice.timings_ms) | set(choice.refused) == {"fp32", "fp32+channels_last"}
    for k, v in student.state_dict().items():  # batch-norm statistics untouched
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_torchscript_teacher_runs_as_loaded(tmp_path: Path) -> None:
    from kdgui.engine.models.frozen import load_torchscript

    path = tmp_path / "teacher.pt"
    torch.jit.trace(cnn().eval(), _batch()[0]).save(str(path))
    teacher = load_torchscript(path)
    runner, choice = choose_teacher(teacher, _batch(), TrainingConfig(), torch.device("cpu"))
    assert runner is teacher and choice.variant == Variant()
    assert "torchscript" in choice.reason and not choice.timings_ms


def test_the_lazy_teacher_cache_equals_a_full_pass() -> None:
    torch.manual_seed(0)
    teacher = cnn().eval()
    data = torch.utils.data.TensorDataset(torch.randn(50, 1, 12, 12), torch.randint(0, 10, (50,)))
    source = BatchSource(data, 16, shuffle=True, seed=3)
    cache = TeacherCache(len(data))
    for x, _, idx in source.epoch():
        assert not cache.complete
        with torch.no_grad():
            cache.lookup(idx, lambda x=x: teacher(x))
    assert cache.complete and cache.values is not None
    torch.testing.assert_close(cache.values, teacher_outputs(teacher, source, torch.device("cpu")))


def test_a_short_run_does_not_spend_longer_measuring_than_it_can_save(tmp_path: Path) -> None:
    _, summary = _demo(tmp_path)  # 240 samples: the cached teacher runs 4 batches in all
    teacher = summary["fast_path"]["teacher"]
    assert teacher["label"] == "fp32" and not teacher["candidates"]
    assert teacher["reason"].startswith("it runs only 4 batches in this run")


def _demo(tmp_path: Path, **training) -> tuple[list, dict]:
    cfg = demo_config()
    cfg.data.limit = 300
    cfg.training.epochs = 1
    for k, v in training.items():
        setattr(cfg.training, k, v)
    events = list(run(cfg, runs_root=tmp_path))
    assert isinstance(events[-1], RunFinished), events[-1]
    summary = json.loads((Path(events[-1].run_dir) / "summary.json").read_text())
    return events, summary


def test_run_started_log_and_summary_carry_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kdgui.engine.session import fast

    monkeypatch.setattr(fast, "MIN_TEACHER_BATCHES", 0)  # this short run measures all the same
    events, summary = _demo(tmp_path)
    started = next(e for e in events if isinstance(e, RunStarted))
    teacher = started.fast_path["teacher"]
    cands = teacher["candidates"]
    assert set(cands) == {"fp32", "bf16", "fp32+channels_last", "bf16+channels_last"}
    timed = {k: c["ms"] for k, c in cands.items() if not c["refused"]}
    assert timed[teacher["label"]] == min(timed.values())
    assert all(c["refused"] or c["kl"] <= KL_BOUND for c in cands.values())
    assert summary["fast_path"] == json.loads(json.dumps(started.fast_path))
    assert summary["teacher"]["latency_variant"] == teacher["label"]
    assert summary["student"]["latency_variant"] == started.fast_path["student"]["label"]
    logs = [e.message for e in events if isinstance(e, LogEvent)]
    assert any(m.startswith(f"teacher runs in {teacher['label']}: ") for m in logs)


def test_a_failing_torch_compile_falls_back_with_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    events, summary = _demo(tmp_path, compile="on", teacher_precision="fp32",
                            channels_last="off")
    warnings = [e.message for e in events if isinstance(e, LogEvent) and e.level == "warning"]
    for who in ("teacher", "student"):
        assert (f"{who}: torch.compile failed (RuntimeError: no C++ compiler found); running "
                "without it (set training.compile: off to skip the attempt)") in warnings
        assert summary["fast_path"][who]["compiled"] is False
    assert summary["fast_path"]["teacher"]["reason"] == "set in the config"
    assert summary["completed"] is True


def test_a_term_list_with_a_feature_loss_keeps_the_teacher_as_loaded(tmp_path: Path) -> None:
    """The chooser reads what the loss list needs, not the shorthand's alpha/beta/gamma (which
    stay at their defaults when ``distill.terms`` is given)."""
    from kdgui.core.distill_terms import TermConfig

    cfg = demo_config()
    cfg.data.limit = 300
    cfg.training.epochs = 1
    cfg.distill.terms = [TermConfig(name="hard", weight=0.5),
                         TermConfig(name="attention", weight=0.5)]
    events = list(run(cfg, runs_root=tmp_path))
    assert isinstance(events[-1], RunFinished), events[-1]
    summary = json.loads((Path(events[-1].run_dir) / "summary.json").read_text())
    teacher = summary["fast_path"]["teacher"]
    assert teacher["label"] == "fp32", teacher
    assert "feature" in teacher["reason"], teacher["reason"]


@pytest.mark.parametrize(("one", "two", "expected"), [
    (1 / 64, 1 / 32, 1),        # one thread twice as fast (a busy machine): 1
    (1 / 32, 1 / 64, 2),        # two threads faster (idle): the default stays
    (1 / 64, 1 / 64 * 1.05, 1),  # a tie: the extra thread does not earn its place
    (1 / 64 * 1.1, 1 / 64, 1),   # two threads faster, but within THREADS_GAIN (the demo): one
    (1 / 64 * 1.5, 1 / 64, 2),   # two threads clearly faster (the MNIST pair): the default
    (1 / 64, 1.0, 1),           # far slower: decided after one pass each
])
def test_the_thread_count_is_chosen_by_timing_whole_steps(
    monkeypatch: pytest.MonkeyPatch, one: float, two: float, expected: int
) -> None:
    from kdgui.engine import fast_student

    now = [0.0]
    passes: list[int] = []
    monkeypatch.setattr(fast_path, "clock", lambda: now[0])

    def step() -> None:
        passes.append(torch.get_num_threads())
        now[0] += one if torch.get_num_threads() == 1 else two

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads, ms = fast_student.choose_threads(step, torch.device("cpu"), TrainingConfig())
        assert torch.get_num_threads() == 2  # only the caller applies the choice
        assert fast_student.choose_threads(step, torch.device("cpu"),
                                           TrainingConfig(num_threads=2)) == (2, {})
    finally:
        torch.set_num_threads(before)
    assert threads == expected
    assert ms["1 thread"] == pytest.approx(one * 1000)
    assert ms["2 threads"] == pytest.approx(two * 1000)
    assert passes == ([1, 2] if two == 1.0 else [1, 2, 1, 2, 1])


@pytest.mark.parametrize("faster", [1, 2])
def test_the_run_applies_and_says_the_timed_thread_count(
    monkeypatch: pytest.MonkeyPatch, faster: int
) -> None:
    """On 2 cores the run (in the window as headless: one rule) times 1 thread against torch's
    default and trains on the faster; the window once held a core back for its UI without
    timing, and trained the MNIST pair at 0.60x headless instead of 0.9x."""
    from types import SimpleNamespace

    from kdgui.core.config import ExperimentConfig
    from kdgui.engine import fast_student
    from kdgui.engine.session import fast

    timed: list[int] = []

    def choose(step, device, cfg):
        timed.append(torch.get_num_threads())
        return faster, {"1 thread": 5.0, "2 threads": 9.0 if faster == 1 else 3.0}

    monkeypatch.setattr(fast_student, "choose_threads", choose)
    ctx = SimpleNamespace(device=torch.device("cpu"), config=ExperimentConfig(),
                          previous_threads=None)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        messages = fast._threads(ctx, None, nn.Linear(2, 2), torch.zeros(1, 2))  # type: ignore[arg-type]
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert timed == [2] and after == faster
    assert ctx.previous_threads == (2 if faster == 1 else None)
    said = "1 CPU thread" if faster == 1 else "2 CPU threads"
    assert messages == [("info", f"training runs on {said}: the faster whole step measured "
                         f"(auto; 1 thread 5.0 ms, 2 threads {9.0 if faster == 1 else 3.0} ms)")]


def test_a_burst_of_interference_in_one_pass_does_not_flip_the_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window paints its cleared plots while the run times its threads: one 2-thread pass
    took 10x as long, and the median of two passes then chose 1 thread for a model 2x faster on
    2 (the MNIST pair trained at 0.62x its headless speed). The fastest pass of each decides."""
    from kdgui.engine import fast_student

    now = [0.0]
    passes: list[int] = []
    monkeypatch.setattr(fast_path, "clock", lambda: now[0])

    def step() -> None:
        passes.append(torch.get_num_threads())
        two_threads = torch.get_num_threads() == 2
        burst = two_threads and passes.count(2) == 1  # the first 2-thread pass is disturbed
        now[0] += (10 / 128 if burst else 1 / 128) if two_threads else 1 / 64

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads, ms = fast_student.choose_threads(step, torch.device("cpu"), TrainingConfig())
    finally:
        torch.set_num_threads(before)
    assert passes == [1, 2, 1, 2, 1]
    assert threads == 2 and ms["2 threads"] == pytest.approx(1000 / 128)
