"""Distributed runs under torchrun (gloo on the CPU): two processes train like one.

The equivalence holds to float rounding because ``training.batch_size`` is the global batch and
each rank's shard of an epoch's order is DistributedSampler's interleave of the one-process
order: rank r's k-th batch holds positions r, r+2, ... of the one-process k-th batch, and DDP
averages the two half-batch gradients into the full batch's. The student here has no
BatchNorm (whose statistics are per process under DDP) and no dropout, so the two runs compute
the same numbers up to summation order.

Tolerances (stated, measured about 40× below): step losses within 1e-5 relative, final weights
within 1e-5 absolute.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from kdgui.core.config import demo_config
from kdgui.core.events import EpochEvent, RunControl, RunFailed, RunFinished, StepEvent
from kdgui.engine import jobs
from kdgui.engine.distributed import launch, shard
from kdgui.engine.distributed.session_hooks import same_on_every_rank
from kdgui.engine.training import BatchSource

LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
EPOCHS = 3


def _config(processes: int = 1, epochs: int = EPOCHS):
    cfg = demo_config()
    cfg.student.preset = "mlp-tiny"  # no BatchNorm, no dropout: exact equivalence
    cfg.training.epochs = epochs
    cfg.training.log_every = 5
    cfg.training.processes = processes
    cfg.training.teacher_precision = "fp32"
    cfg.training.channels_last = "off"
    return cfg


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "student" / "student.safetensors"))


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same config trained in this process."""
    out = tmp_path_factory.mktemp("one") / "run"
    events = list(jobs.run(_config(1), out))
    assert isinstance(events[-1], RunFinished), events[-1]
    return out


def test_shards_of_two_ranks_make_the_one_process_batches() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(23.0).view(23, 1), torch.zeros(23))
    one = [idx.tolist() for _, _, idx in BatchSource(data, 6, shuffle=True, seed=3).epoch()]
    ranks = [[idx.tolist() for _, _, idx in BatchSource(data, 3, shuffle=True, seed=3, rank=r,
                                                        world_size=2).epoch()] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) == len(BatchSource(data, 3, True, 3, 0, 2))
    for k, batch in enumerate(one[:-1]):  # the last one-process batch is the padded one
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(batch)
    # DistributedSampler's padding: 23 samples → 12 per rank, the first sample repeated
    assert sum(len(b) for b in ranks[0]) == sum(len(b) for b in ranks[1]) == 12
    order = torch.tensor([5, 4, 3, 2, 1])
    assert shard(order, 0, 2).tolist() == [5, 3, 1] and shard(order, 1, 2).tolist() == [4, 2, 5]


def test_launch_uses_torchruns_agent_on_a_free_port(tmp_path: Path) -> None:
    command = launch.torchrun_command(2, ["run", "c.yaml"])
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=2" in command and command[-4:] == ["-m", "kdgui", "run", "c.yaml"]
    assert launch.wants_launch(_config(2)) and not launch.wants_launch(_config(1))
    assert launch._event('{"event": "log", "level": "info", "message": "x"}').message == "x"
    assert launch._event("a library's print") is None
    log = tmp_path / "stderr.log"
    log.write_text("W torchrun noise\nkdgui: error: data.spec 'x' is unknown. Use digits.\n")
    failed = launch._failure(2, log)
    assert not failed.internal and failed.error["what"].startswith("data.spec 'x' is unknown")
    log.write_text("Traceback ...\nRuntimeError: gloo broke\n")
    assert launch._failure(1, log).internal
    assert "gloo broke" in launch._failure(1, log).error["what"]


def test_automatic_fast_path_choices_are_fixed_for_every_rank() -> None:
    cfg = demo_config()
    fixed = same_on_every_rank(cfg).training
    assert (fixed.teacher_precision, fixed.channels_last, fixed.compile) == ("fp32", "off", "off")
    cfg.training.channels_last = "on"
    assert same_on_every_rank(cfg).training.channels_last == "on"  # explicit settings stay


def test_two_processes_train_like_one_and_resume_after_a_stop(
    one_process: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two"
    control = RunControl()
    first: list = []
    for event in jobs.run(_config(2), out, control=control):
        first.append(event)
        if isinstance(event, EpochEvent):
            control.stop()  # rank 0 reads it between batches; every rank stops at that batch
    assert isinstance(first[-1], RunFinished) and first[-1].stopped, first[-1]
    assert json.loads((out / "summary.json").read_text())["stopped"] is True

    # Resuming with another number of processes is refused, with the number to use.
    failed = list(jobs.run(_config(1), out, resume=True))[-1]
    assert isinstance(failed, RunFailed)
    assert "trained by 2 processes" in failed.error["what"], failed.error
    assert "training.processes = 2" in failed.error["fix"]

    resumed = list(jobs.run(_config(2), out, resume=True))
    assert isinstance(resumed[-1], RunFinished) and not resumed[-1].stopped, resumed[-1]
    assert any(isinstance(e, StepEvent) for e in resumed)

    # One run folder, written by rank 0 alone: one summary, one line per epoch, no strays.
    assert [p.name for p in tmp_path.iterdir()] == ["two"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())
    lines, reference = _lines(out), _lines(one_process)
    assert [d["epoch"] for d in lines if d["event"] == "epoch"] == list(range(1, EPOCHS + 1))
    assert sum(d["event"] == "started" for d in lines) == 1

    # The same losses after every logged step, and the same weights at the end.
    steps = [(d["step"], d["losses"]["total"]) for d in lines if d["event"] == "step"]
    ref_steps = [(d["step"], d["losses"]["total"]) for d in reference if d["event"] == "step"]
    assert [s for s, _ in steps] == [s for s, _ in ref_steps]
    for (_, two), (_, one) in zip(steps, ref_steps, strict=True):
        assert two == pytest.approx(one, rel=LOSS_RTOL)
    a, b = _weights(out), _weights(one_process)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < WEIGHT_ATOL, worst
    acc = json.loads((out / "summary.json").read_text())["student"]["accuracy"]
    ref_acc = json.loads((one_process / "summary.json").read_text())["student"]["accuracy"]
    assert acc == pytest.approx(ref_acc, abs=1 / 359 + 1e-9)  # at most one validation sample


def test_an_error_on_rank_0_ends_every_process_with_its_one_line(one_process: Path) -> None:
    # The folder already holds a run: rank 0 refuses to write into it, tells rank 1, and both
    # end (no process is left waiting in a collective); the front end gets rank 0's error.
    started = time.monotonic()
    events = list(jobs.run(_config(2), one_process))
    assert [e.kind for e in events] == ["failed"], events
    assert "already holds a run" in events[0].error["what"]
    assert not events[0].internal
    assert time.monotonic() - started < 300


def test_modules_in_a_script_cannot_start_processes() -> None:
    from kdgui.core.errors import ConfigError

    with pytest.raises(ConfigError, match="torchrun"):
        jobs.distill_modules(torch.nn.Linear(4, 2), torch.nn.Linear(4, 2),
                             torch.utils.data.TensorDataset(torch.zeros(4, 1, 2, 2),
                                                            torch.zeros(4, dtype=torch.long)),
                             None, training={"processes": 2})


def test_world_agrees_on_the_launchers_stop_and_completes_the_cache(tmp_path: Path) -> None:
    """The collectives on a one-process gloo group (no launch): the control file's stop reaches
    the loop's checkpoint, and the cache is completed from what the ranks filled."""
    import torch.distributed as dist

    from kdgui.core.errors import RunStopped
    from kdgui.engine.distributed.world import World
    from kdgui.engine.training import TeacherCache

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        world = World(rank=0, local_rank=0, size=1, backend="gloo",
                      control_file=tmp_path / "control")
        control = RunControl()
        assert list(world.checkpoint(control)) == [] and not control.stop_requested
        assert world.sum(1.5, torch.tensor(2), 3) == [1.5, 2.0, 3.0]
        cache = TeacherCache(4)
        cache.lookup(torch.tensor([2, 0]), lambda: torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        world.share_cache(cache)
        assert cache.shared and not cache.complete  # samples 1 and 3 were nobody's
        assert cache.values[2].tolist() == [1.0, 2.0] and cache.values[0].tolist() == [3.0, 4.0]
        (tmp_path / "control").write_text("stop")
        assert list(world.checkpoint(control)) == []  # decided on the last step's agreement
        assert not world.any_nonfinite(control, torch.tensor(1.0))  # a step agrees: reads it
        with pytest.raises(RunStopped):
            list(world.checkpoint(control))
        assert world.any_nonfinite(control, torch.tensor(float("nan")))
    finally:
        dist.destroy_process_group()
