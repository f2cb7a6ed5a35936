"""One process of a distributed run: the process group, DDP, and what the ranks agree on.

A run started by torchrun (``kdgui run CONFIG --nproc N``, or ``torchrun --nproc_per_node N -m
kdgui run CONFIG``) sees ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment;
:func:`setup` then joins the process group (gloo on the CPU, NCCL on CUDA) and returns a
:class:`World`, which the session and the training loop consult at a few points:

- the student (and the loss terms' trainable adapters) train under DistributedDataParallel
  (:meth:`World.wrap`); each rank keeps its own frozen, unwrapped teacher;
- each rank trains on its shard of every epoch's order (:func:`shard`, DistributedSampler's
  rule), with ``training.batch_size`` / N samples per batch: the batch size is the *global*
  batch, so a config means the same optimisation whatever the number of processes;
- the teacher-logit cache each rank fills from its shard is summed across ranks once
  (:meth:`World.share_cache`), after which every rank holds every sample's logits;
- losses and accuracy are summed across ranks (:meth:`World.sum`); stop and pause requests
  (rank 0's) and a non-finite loss on any rank reach every rank at the same batch
  (:meth:`World.agree`);
- rank 0 alone writes the run folder and sends events; the others are silent.

Every collective has the process group's timeout (``KDGUI_DIST_TIMEOUT_S``, default 600 s), so
a rank whose peer died does not wait forever (torchrun's agent normally ends them first).
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import ConfigError, RunStopped
from kdgui.core.events import Event, RunControl, StateEvent
from kdgui.engine.distributed.launch import CONTROL_FILE_ENV, env_rank, launched

#: Seconds a collective may wait for the other ranks before failing.
TIMEOUT_ENV = "KDGUI_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0


@dataclass
class World:
    """This process's place in the run and the process group's helpers."""

    rank: int
    local_rank: int
    size: int
    backend: str
    control_file: Path | None = None
    _control_seen: float = field(default=-1.0, repr=False)
    #: The (stop, pause) every rank agreed on last; a signal may change a rank's own control
    #: at any instant, so the loop decides on this, never on the live control.
    _agreed: tuple[bool, bool] | None = field(default=None, repr=False)
    _wrapped: list[Any] = field(default_factory=list, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where collectives' tensors live: NCCL reduces GPU tensors only."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else \
            torch.device("cpu")

    # -- data ---------------------------------------------------------------------------------
    def per_rank_batch(self, global_batch: int) -> int:
        """Samples per batch on each rank for a global ``training.batch_size``."""
        return max(1, math.ceil(global_batch / self.size))

    # -- models -------------------------------------------------------------------------------
    def wrap(self, distiller: Any) -> None:
        """Train ``distiller``'s student and trainable adapters under DDP; its teacher stays a
        plain frozen module. The distiller's own structure (and checkpoint keys) is unchanged:
        its forward calls the DDP wrapper instead of the student (see ``Distiller.route``)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        adapters = [m for m in distiller.children() if m is not distiller.student
                    and any(p.requires_grad for p in m.parameters())]
        holder = _Trainable(distiller.student, adapters)
        ids = [self.local_rank] if self.backend == "nccl" else None
        ddp = DDP(holder, device_ids=ids, broadcast_buffers=True)
        distiller.route(ddp)
        self._wrapped.append(distiller)

    def unwrap_all(self) -> None:
        for distiller in self._wrapped:
            distiller.route(None)
        self._wrapped.clear()

    # -- collectives --------------------------------------------------------------------------
    def sum(self, *values: float | torch.Tensor) -> list[float]:
        """``values`` summed over the ranks (one collective)."""
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def agree(self, control: RunControl, nonfinite: bool = False) -> bool:
        """Make every rank see rank 0's stop/pause requests (and the launcher's, through the
        control file) and whether any rank's loss is not finite; returns the latter."""
        import torch.distributed as dist

        if self.is_main:
            self._read_control_file(control)
        flags = torch.tensor(
            [float(control.stop_requested), float(control.paused), float(nonfinite)]
            if self.is_main else [0.0, 0.0, float(nonfinite)], device=self.device
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, paused, bad = (bool(v) for v in flags.tolist())
        self._agreed = (stop, paused)
        if stop:
            control.stop()
        elif paused:
            control.pause()
        else:
            control.resume()
        return bad

    def checkpoint(self, control: RunControl) -> Iterator[Event]:
        """The loop's between-batches check, the same on every rank. It decides on what the
        ranks agreed at the previous step (:meth:`any_nonfinite` agrees on the requests too, so
        a step costs one collective of ours besides DDP's); pause waits, polling rank 0's
        control so every collective stays well inside its timeout; stop raises."""
        if self._agreed is None:
            self.agree(control)
        assert self._agreed is not None
        stop, paused = self._agreed
        if paused and not stop:
            yield StateEvent(state="paused")
            while paused and not stop:
                time.sleep(0.2)
                self.agree(control)
                stop, paused = self._agreed
            if not stop:
                yield StateEvent(state="resumed")
        if stop:
            raise RunStopped("the user asked the run to stop")

    def any_nonfinite(self, control: RunControl, total: torch.Tensor) -> bool:
        return self.agree(control, nonfinite=not bool(torch.isfinite(total)))

    def share_cache(self, cache: Any) -> None:
        """Complete every rank's teacher-logit cache from the shards the ranks filled."""
        import torch.distributed as dist

        # Called at the end of every epoch; acts once, on every rank together (each filled its
        # shard of the same epoch, so together the shards cover every sample).
        if cache is None or getattr(cache, "shared", False) or cache.values is None:
            return
        values, filled = cache.values, cache._filled
        counts = filled.to(values.device, torch.float32)
        total = values * counts.view(-1, *([1] * (values.dim() - 1)))
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        have = counts > 0
        total[have] /= counts[have].view(-1, *([1] * (values.dim() - 1)))
        cache.values = total
        cache._filled = have.cpu()
        cache.complete = bool(have.all())
        cache.shared = True

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (plain, picklable data only)."""
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()

    def _read_control_file(self, control: RunControl) -> None:
        path = self.control_file
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime
            if mtime == self._control_seen:
                return
            self._control_seen = mtime
            command = path.read_text(encoding="utf-8").strip()
        except OSError:
            return
        if command in ("pause", "resume", "stop"):
            control.apply(command)


class _Trainable(nn.Module):
    """What DDP wraps: the student (whose forward it runs) and the trainable adapters (whose
    gradients it averages too; they run inside the loss, after the student)."""

    def __init__(self, student: nn.Module, adapters: list[nn.Module]) -> None:
        super().__init__()
        self.student = student
        self.adapters = nn.ModuleList(adapters)

    def forward(self, x: torch.Tensor) -> Any:
        return self.student(x)


def setup(device_preference: str) -> World | None:
    """Join the process group when torchrun started this process (else None: a plain run)."""
    if not launched():
        return None
    import torch.distributed as dist

    size = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_preference.startswith("cuda:"):
        raise ConfigError(f"training.device = '{device_preference}' names one GPU, but each of "
                          f"the {size} processes trains on a GPU of its own",
                          "Use training.device: cuda (or auto) with training.processes > 1.")
    cuda = torch.cuda.is_available() and device_preference in ("auto", "cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"process {local_rank} has no GPU of its own ({torch.cuda.device_count()} "
                "visible)", "Start at most one process per GPU (--nproc), or use "
                "training.device: cpu.")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    control = os.environ.get(CONTROL_FILE_ENV)
    return World(rank=rank, local_rank=local_rank, size=size, backend=backend,
                 control_file=Path(control) if control else None)


def teardown(world: World | None) -> None:
    """Leave the process group (every rank, once training is over or has failed)."""
    if world is None:
        return
    import torch.distributed as dist

    world.unwrap_all()
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(order: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Rank ``rank``'s part of one epoch's ``order``, by DistributedSampler's own rule: the order
    padded (from its start) to a multiple of ``size``, then every ``size``-th position from
    ``rank``. So the ranks' k-th batches together are exactly the one-process run's k-th batch."""
    from torch.utils.data import DistributedSampler

    positions = list(DistributedSampler(_Length(len(order)), num_replicas=size, rank=rank,
                                        shuffle=False))
    return order[torch.as_tensor(positions, dtype=torch.long)]


class _Length:
    """A stand-in dataset of ``n`` items: DistributedSampler only asks for the length."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def check_resume(state: dict[str, Any] | None, world: World | None) -> None:
    """A checkpoint written by N processes continues only with N processes."""
    if state is None:
        return
    saved = int(state.get("world_size", 1))
    now = world.size if world is not None else 1
    if saved != now:
        raise ConfigError(
            f"this run was trained by {saved} process{'es' if saved != 1 else ''} and is "
            f"being resumed by {now}",
            f"Resume it with the same number of processes: training.processes = {saved} "
            f"(kdgui run --resume RUN_DIR reads it from the run's config), or torchrun "
            f"--nproc_per_node {saved} -m kdgui run --resume RUN_DIR.",
        )


__all__ = ["CONTROL_FILE_ENV", "World", "check_resume", "env_rank", "launched", "setup", "shard",
           "teardown"]
