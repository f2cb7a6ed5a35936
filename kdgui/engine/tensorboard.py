"""TensorBoard scalars of a run, written from its events (``training.tensorboard: true``).

People keep their experiments side by side in TensorBoard; a KD Studio run joins them when asked.
The writer only *observes* the run's events, like the window and the CLI do, so the training loop
knows nothing of it: each loss term and the learning rate per logged step, accuracies and the
teacher agreement per epoch, and each measured stage's size, latency and accuracy, under
``RUN/tensorboard``. Without the ``tensorboard`` package the run goes on and says, once, that no
logs were written and how to get them.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from kdgui.core.events import (
    EpochEvent,
    Event,
    LogEvent,
    RunFinished,
    RunStarted,
    StageEvent,
    StepEvent,
)

#: Folder of the logs inside the run folder (``tensorboard --logdir runs`` finds every run).
LOG_DIR = "tensorboard"
MISSING = ("TensorBoard logs were not written: the tensorboard package is not installed "
           "(pip install tensorboard, or pip install 'kdgui[tensorboard]'); the run goes on "
           "without them")
#: Stage metrics worth a scalar (x axis: the stage's position, teacher = 0).
STAGE_KEYS = ("accuracy", "params", "nonzero_params", "size_bytes", "zip_size_bytes", "macs",
              "latency_ms")


class TensorBoardWriter:
    """Turns run events into TensorBoard scalars; one writer per run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard

        self.path = Path(run_dir) / LOG_DIR
        self._writer: Any = SummaryWriter(log_dir=str(self.path))
        self._stages = 0

    def write(self, ev: Event) -> None:
        w = self._writer
        if w is None:
            return
        if isinstance(ev, StepEvent):
            if ev.stage == "distill":
                for term, value in ev.losses.items():
                    if value is not None:
                        w.add_scalar(f"loss/{term}", float(value), ev.step)
                w.add_scalar("train/lr", float(ev.lr), ev.step)
                w.add_scalar("train/samples_per_s", float(ev.samples_per_s), ev.step)
        elif isinstance(ev, EpochEvent):
            prefix = "accuracy" if ev.stage == "distill" else f"{ev.stage}/accuracy"
            w.add_scalar(f"{prefix}/train", float(ev.train_accuracy), ev.step)
            w.add_scalar(f"{prefix}/validation", float(ev.val_accuracy), ev.step)
            w.add_scalar(f"{prefix}/agreement_with_teacher", float(ev.agreement), ev.step)
        elif isinstance(ev, StageEvent):
            for key in STAGE_KEYS:
                value = ev.metrics.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                    w.add_scalar(f"stages/{key}", float(value), self._stages)
            w.add_text("stages/names", f"{self._stages}: {ev.name}", self._stages)
            self._stages += 1
        elif isinstance(ev, RunFinished):
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def with_tensorboard(run: Generator[Event, Any, Any]) -> Generator[Event, Any, Any]:
    """``run``'s events, unchanged (commands sent in reach ``run``), written to TensorBoard as
    they pass; its return value is ``run``'s."""
    writer: TensorBoardWriter | None = None
    warned = False
    sent: Any = None
    try:
        while True:
            try:
                ev = run.send(sent)
            except StopIteration as stop:
                return stop.value
            extra: Event | None = None
            if isinstance(ev, RunStarted) and writer is None and not warned:
                try:
                    writer = TensorBoardWriter(ev.run_dir)
                except ImportError:
                    warned = True
                    extra = LogEvent(level="warning", message=MISSING)
            if writer is not None:
                writer.write(ev)
            sent = yield ev
            if extra is not None:
                later = yield extra
                sent = sent if sent is not None else later
    finally:
        if writer is not None:
            writer.close()
        run.close()


__all__ = ["LOG_DIR", "TensorBoardWriter", "with_tensorboard"]
