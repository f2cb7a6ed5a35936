"""A distillation run as a generator of plain events.

``run(config)`` tells the whole story of an experiment: prepare (data, teacher, student,
compatibility — all checked before anything is written), distill epoch by epoch, measure teacher
and student, apply the compression pipeline, export, and write ``summary.json``. Every step
yields plain events (numbers and numpy arrays). The CLI prints them, the window plots them from
a worker thread, and ``metrics.jsonl`` stores them.

Control: pass a :class:`~kdgui.core.events.RunControl` (the window does, from another thread) or
``send("pause" | "resume" | "stop")`` into the generator. The engine checks after every batch, so
stop and pause take effect within one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.config import DistillConfig, ExperimentConfig
from kdgui.core.errors import KDError, TrainingDiverged, UserError
from kdgui.core.events import (
    ArtifactEvent,
    EpochEvent,
    Event,
    LogEvent,
    RunControl,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
)
from kdgui.engine.device import pick_device, seed_everything
from kdgui.engine.rundir import RunDir, default_run_dir
from kdgui.engine.training import BatchSource, make_optimizer, make_scheduler, teacher_outputs

RunGenerator = Generator[Event, "str | None", "dict[str, Any] | None"]


@dataclass
class Prepared:
    """Everything a run needs, loaded and checked, before any file is written."""

    teacher: nn.Module
    student: nn.Module
    train: Dataset | DataLoader
    val: Dataset | DataLoader
    input_shape: tuple[int, int, int]
    num_classes: int
    data_info: dict[str, Any] = field(default_factory=dict)
    teacher_info: dict[str, Any] = field(default_factory=dict)
    student_info: dict[str, Any] = field(default_factory=dict)
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None


def prepare(config: ExperimentConfig) -> Prepared:
    """Load data, teacher and student from the config and check they fit together."""
    from kdgui.engine.data import load_data
    from kdgui.engine.models import check_compatibility, load_model, make_student

    bundle = load_data(config.data)
    teacher_ref = config.teacher
    if teacher_ref.path is None and teacher_ref.num_classes is None and teacher_ref.arch:
        teacher_ref = teacher_ref.model_copy(update={"num_classes": bundle.num_classes})
    loaded = load_model(
        teacher_ref, input_shape=bundle.input_shape, num_classes=bundle.num_classes
    )
    teacher = loaded.module
    student, student_info = make_student(
        config.student, teacher, bundle.input_shape, bundle.num_classes
    )
    check_compatibility(
        teacher, student, bundle.input_shape, bundle.num_classes, bundle.input_shape[0]
    )
    teacher_info = {
        "format": loaded.format,
        "source": loaded.source,
        **{k: v for k, v in loaded.metadata.items() if isinstance(v, (str, int, float, bool))},
    }
    return Prepared(
        teacher=teacher,
        student=student,
        train=bundle.train,
        val=bundle.val,
        input_shape=tuple(bundle.input_shape),  # type: ignore[arg-type]
        num_classes=bundle.num_classes,
        data_info=bundle.describe(),
        teacher_info=teacher_info,
        student_info=student_info,
        augment=bundle.augment,
    )


def run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path = "runs",
) -> RunGenerator:
    """Run the experiment described by ``config``; yields events, returns the summary dict.

    Bad input (a missing dataset, a corrupt model file, mismatched shapes) is reported as a
    single :class:`RunFailed` event before any run folder is created.
    """
    config = config.model_copy(deep=True)
    # Seeded before the student is built, so its initial weights follow training.seed too.
    seed_everything(config.training.seed)
    try:
        prepared = prepare(config)
    except UserError as exc:
        yield RunFailed(run_dir="", error=exc.to_dict())
        return None
    return (
        yield from run_prepared(
            prepared, config, out_dir, control=control, resume=resume, runs_root=runs_root
        )
    )


def run_prepared(
    prepared: Prepared,
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path = "runs",
) -> RunGenerator:
    """Run on already-loaded models and data (the Python API's entry point)."""
    control = control or RunControl()
    try:
        if resume:
            if out_dir is None:
                raise UserError("resuming needs the run folder", "Pass --resume RUN_DIR.")
            run_dir = RunDir.open_existing(out_dir)
        else:
            run_dir = RunDir.create(out_dir or default_run_dir(config.name, runs_root), config)
    except UserError as exc:
        yield RunFailed(run_dir=str(out_dir or ""), error=exc.to_dict())
        return None

    session = _Session(prepared, config, run_dir, control, resume)
    try:
        # One place logs every event and applies commands sent into the generator; the
        # session's own code (and the compression pipeline's) only yields.
        events = session.events()
        try:
            event = next(events)
            while True:
                run_dir.log_event(event)
                control.apply((yield event))
                event = next(events)
        except StopIteration as stop:
            return stop.value
    except UserError as exc:
        failed = RunFailed(run_dir=str(run_dir.path), error=exc.to_dict(), step=session.step)
        run_dir.log_event(failed)
        yield failed
        return None
    except Exception as exc:  # an internal error: report it as an event, keep the traceback
        import traceback

        failed = RunFailed(
            run_dir=str(run_dir.path),
            error={
                "type": type(exc).__name__,
                "what": f"internal error: {exc}",
                "fix": "Please report this with the run folder's metrics.jsonl.",
                "source": "",
                "message": f"internal error: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            },
            step=session.step,
            internal=True,
        )
        run_dir.log_event(failed)
        yield failed
        return None
    finally:
        run_dir.close()
        if session.previous_threads is not None:
            torch.set_num_threads(session.previous_threads)


class _Stopped(KDError):
    """Internal signal: the user asked the run to stop."""


class _Session:
    """The state of one run; :meth:`events` is the generator the front ends consume."""

    def __init__(
        self,
        prepared: Prepared,
        config: ExperimentConfig,
        run_dir: RunDir,
        control: RunControl,
        resume: bool,
    ) -> None:
        self.p = prepared
        self.cfg = config
        self.tcfg = config.training
        self.run_dir = run_dir
        self.control = control
        self.resume = resume
        self.step = 0
        self.device = pick_device(self.tcfg.device)
        self.amp = bool(self.tcfg.amp and self.device.type == "cuda")
        self.stopped = False
        self.previous_threads: int | None = None
        self.trained_teacher = False
        self.teacher_eval: dict[str, Any] | None = None
        self._teacher_logits: torch.Tensor | None = None

    # -- plumbing -------------------------------------------------------------------------
    def _emit(self, event: Event) -> Iterator[Event]:
        """Yield one event (logging and commands are handled by :func:`run_prepared`)."""
        yield event

    def _checkpoint_control(self) -> Iterator[Event]:
        """Between batches: honour pause (blocking here, in the engine's thread) and stop."""
        if self.control.paused and not self.control.stop_requested:
            yield from self._emit(StateEvent(state="paused"))
            self.control.wait_while_paused()
            if not self.control.stop_requested:
                yield from self._emit(StateEvent(state="resumed"))
        if self.control.stop_requested:
            raise _Stopped()

    # -- the story of a run ----------------------------------------------------------------
    def events(self) -> Generator[Event, str | None, dict[str, Any]]:
        from kdgui.engine.distill import Distiller
        from kdgui.engine.metrics import evaluate

        seed_everything(self.tcfg.seed)
        if self.tcfg.num_threads:
            # Process-wide in torch: remembered so the run can put it back when it ends.
            self.previous_threads = torch.get_num_threads()
            torch.set_num_threads(self.tcfg.num_threads)
        teacher = self.p.teacher.to(self.device).eval()
        if self._teacher_needs_training():
            state = self.run_dir.load_checkpoint() if self.resume else None
            if state is not None and "teacher" in state:
                teacher.load_state_dict(state["teacher"])
            else:
                yield from self._train_teacher(teacher)
            self.trained_teacher = True
            teacher.eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        student = self.p.student.to(self.device)
        distiller = Distiller(
            teacher, student, self.cfg.distill, self.p.input_shape, device=self.device
        ).to(self.device)

        train_src = BatchSource(
            self.p.train, self.tcfg.batch_size, shuffle=True, seed=self.tcfg.seed
        )
        use_cache = self._use_teacher_cache(distiller, train_src)
        epochs = self.tcfg.epochs
        steps_per_epoch = len(train_src)
        total_steps = epochs * steps_per_epoch
        optimizer = make_optimizer(distiller.trainable_parameters(), self.tcfg)
        scheduler = make_scheduler(optimizer, self.tcfg, total_steps)
        scaler = torch.amp.GradScaler("cuda") if self.amp else None

        start_epoch = 0
        if self.resume:
            state = self.run_dir.load_checkpoint()
            if state is not None:
                distiller.load_state_dict(state["distiller"])
                optimizer.load_state_dict(state["optimizer"])
                if scheduler is not None and state.get("scheduler"):
                    scheduler.load_state_dict(state["scheduler"])
                train_src.set_generator_state(state["batch_rng"])
                torch.set_rng_state(state["torch_rng"])
                start_epoch = int(state["epoch"]) + 1
                self.step = int(state["step"])

        teacher_eval = self.teacher_eval = evaluate(teacher, self.p.val, device=self.device)
        teacher_acc = float(teacher_eval["accuracy"])
        cache = self._teacher_cache(teacher, train_src) if use_cache else None

        yield from self._emit(
            RunStarted(
                run_dir=str(self.run_dir.path),
                config=self.cfg.model_dump(mode="json"),
                data=self.p.data_info,
                teacher={**self.p.teacher_info, "params": _count(teacher),
                         "val_accuracy": teacher_acc},
                student={**self.p.student_info, "params": _count(student)},
                pairs={k: [list(p) for p in v] for k, v in distiller.pairs.items()},
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                device=str(self.device),
                teacher_cached=cache is not None,
                resumed_from_epoch=start_epoch,
            )
        )
        if start_epoch >= epochs:
            yield from self._emit(LogEvent(level="info", message="all epochs already done"))

        try:
            for epoch in range(start_epoch, epochs):

                def save(epoch: int = epoch) -> None:
                    # Saved before the epoch's event is yielded: an epoch a front end has
                    # seen is an epoch a resumed run will not repeat.
                    self.run_dir.save_checkpoint(
                        {
                            "distiller": distiller.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict() if scheduler is not None else {},
                            "batch_rng": train_src.generator_state(),
                            "torch_rng": torch.get_rng_state(),
                            "epoch": epoch,
                            "step": self.step,
                            **({"teacher": teacher.state_dict()} if self.trained_teacher else {}),
                        }
                    )

                yield from self._train_epoch(
                    distiller, optimizer, scheduler, scaler, train_src, cache,
                    epoch=epoch, total_steps=total_steps, teacher_eval=teacher_eval,
                    teacher_acc=teacher_acc, stage="distill", on_epoch_end=save,
                )
        except _Stopped:
            self.stopped = True
            yield from self._emit(StateEvent(state="stopped"))

        summary = yield from self._finish(teacher, student, teacher_eval, distiller)
        return summary

    def _teacher_needs_training(self) -> bool:
        ref = self.cfg.teacher
        return ref.train_epochs > 0 and ref.path is None and not ref.pretrained

    def _train_teacher(self, teacher: nn.Module) -> Generator[Event, str | None, None]:
        """Train an architecture-only teacher with hard labels first (``teacher.train_epochs``).

        Lets a class start from nothing but a dataset: the teacher's epochs appear in the
        same plots, tagged ``stage="teacher"``. A stop request ends this phase early; the
        distillation loop then stops at its first batch.
        """
        import torch.nn.functional as F

        from kdgui.engine.metrics import evaluate

        for param in teacher.parameters():
            param.requires_grad_(True)
        source = BatchSource(self.p.train, self.tcfg.batch_size, shuffle=True,
                             seed=self.tcfg.seed + 7)
        optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
        epochs = self.cfg.teacher.train_epochs
        try:
            for epoch in range(epochs):
                teacher.train()
                started = time.perf_counter()
                seen = 0
                correct = torch.zeros((), dtype=torch.long, device=self.device)
                loss_sum = torch.zeros((), device=self.device)
                for x, y, _ in source.epoch():
                    yield from self._checkpoint_control()
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                    if self.p.augment is not None:
                        x = self.p.augment(x)
                    logits = teacher(x)
                    loss = F.cross_entropy(logits, y)
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"the teacher's loss became {loss.item()} in its epoch {epoch + 1}",
                            "Check the data for NaN values, or give the teacher a weights file.",
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    n = int(y.shape[0])
                    seen += n
                    correct += (logits.detach().argmax(1) == y).sum()
                    loss_sum += loss.detach().float() * n
                result = evaluate(teacher, self.p.val, device=self.device)
                yield from self._emit(EpochEvent(
                    epoch=epoch + 1, step=self.step, train_loss=float(loss_sum) / max(seen, 1),
                    train_accuracy=int(correct) / max(seen, 1),
                    val_accuracy=float(result["accuracy"]), teacher_accuracy=None,
                    agreement=1.0, layer_names=[], sparsity=np.zeros(0, dtype=np.float32),
                    duration_s=time.perf_counter() - started, stage="teacher",
                ))
        except _Stopped:
            pass

    def _teacher_cache(self, teacher: nn.Module, source: BatchSource) -> torch.Tensor:
        """Every training sample's teacher logits, computed once per run (distillation and
        each compression step's fine-tuning share them: same teacher, same samples)."""
        if self._teacher_logits is None:
            self._teacher_logits = teacher_outputs(teacher, source, self.device)
        return self._teacher_logits

    def _use_teacher_cache(self, distiller: Any, source: BatchSource) -> bool:
        # "on" and "auto" both cache whenever caching is correct: without augmentation, with
        # indexable data, and when no loss needs the teacher's feature maps.
        return (
            self.tcfg.cache_teacher != "off"
            and source.indexable
            and not distiller.needs_teacher_features
            and not self.cfg.data.augment
        )

    def _train_epoch(
        self,
        distiller: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        source: BatchSource,
        cache: torch.Tensor | None,
        *,
        epoch: int,
        total_steps: int,
        teacher_eval: dict[str, Any],
        teacher_acc: float,
        stage: str,
        on_step: Callable[[int], None] | None = None,
        step_offset: int = 0,
        on_epoch_end: Callable[[], None] | None = None,
    ) -> Generator[Event, str | None, None]:
        from kdgui.engine.metrics import agreement, evaluate, layer_sparsity

        distiller.train()
        distiller.teacher.eval()
        started = time.perf_counter()
        window_start, window_samples = started, 0
        seen = window_steps = 0
        # Running sums stay on the device as tensors: reading them (a sync on a GPU) happens
        # only when an event is sent, not at every step.
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        for epoch_steps, (x, y, idx) in enumerate(source.epoch(), start=1):
            yield from self._checkpoint_control()
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.p.augment is not None:
                x = self.p.augment(x)
            t_logits = cache[idx.to(cache.device)] if cache is not None and idx is not None else None
            with torch.autocast(self.device.type, enabled=self.amp):
                losses, logits = distiller(x, y, t_logits)
            total = losses["total"]
            if not torch.isfinite(total):
                raise TrainingDiverged(
                    f"the loss became {total.item()} at step {self.step + 1} (epoch {epoch + 1}); "
                    "terms: " + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items()),
                    "The learning rate is probably too high (training.lr = "
                    f"{self.tcfg.lr:g}); lower it by 10×, or check the data for NaN values.",
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(total).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                total.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            self.step += 1
            if on_step is not None:
                on_step(self.step - step_offset)
            n = int(y.shape[0])
            seen += n
            window_samples += n
            window_steps += 1
            correct += (logits.detach().argmax(1) == y).sum()
            loss_sum += total.detach().float() * n
            for k, v in losses.items():
                sums[k] = sums[k] + v.detach().float() if k in sums else v.detach().float()
            if self.step % self.tcfg.log_every == 0:
                names, sparsity = layer_sparsity(distiller.student)
                now = time.perf_counter()
                rate = window_samples / max(now - window_start, 1e-9)
                window_start, window_samples = now, 0
                done = (self.step - step_offset) / max(total_steps, 1)
                per_step = (now - started) / epoch_steps
                remaining = max(total_steps - (self.step - step_offset), 0) * per_step
                yield from self._emit(
                    StepEvent(
                        step=self.step,
                        epoch=epoch + 1,
                        losses={k: float(v) / window_steps for k, v in sums.items()},
                        lr=float(optimizer.param_groups[0]["lr"]),
                        samples_per_s=rate,
                        progress=min(done, 1.0),
                        eta_s=remaining,
                        layer_names=list(names),
                        sparsity=np.asarray(sparsity, dtype=np.float32),
                        stage=stage,
                    )
                )
                sums, window_steps = {}, 0
        student_eval = evaluate(distiller.student, self.p.val, device=self.device)
        names, sparsity = layer_sparsity(distiller.student)
        if on_epoch_end is not None:
            on_epoch_end()
        yield from self._emit(
            EpochEvent(
                epoch=epoch + 1,
                step=self.step,
                train_loss=float(loss_sum) / max(seen, 1),
                train_accuracy=int(correct) / max(seen, 1),
                val_accuracy=float(student_eval["accuracy"]),
                teacher_accuracy=teacher_acc,
                agreement=float(
                    agreement(student_eval["predictions"], teacher_eval["predictions"])
                ),
                layer_names=list(names),
                sparsity=np.asarray(sparsity, dtype=np.float32),
                duration_s=time.perf_counter() - started,
                stage=stage,
            )
        )

    # -- after training -------------------------------------------------------------------------
    def _measure(self, name: str, model: nn.Module, val_eval: dict[str, Any] | None = None
                 ) -> Generator[Event, str | None, dict[str, Any]]:
        from kdgui.engine.metrics import evaluate, model_summary

        model = model.eval()
        summary = model_summary(model, self.p.input_shape, device=self.device)
        if val_eval is None:
            val_eval = evaluate(model, self.p.val, device=self.device)
        layers = summary.pop("layers", [])
        metrics = {"name": name, "accuracy": float(val_eval["accuracy"]), **summary}
        if val_eval.get("top5") is not None:
            metrics["top5"] = float(val_eval["top5"])
        yield from self._emit(StageEvent(name=name, metrics=metrics, layers=layers))
        return metrics

    def _finish(
        self,
        teacher: nn.Module,
        student: nn.Module,
        teacher_eval: dict[str, Any],
        distiller: Any,
    ) -> Generator[Event, str | None, dict[str, Any]]:
        from kdgui.engine.metrics import agreement, evaluate

        teacher_metrics = yield from self._measure("teacher", teacher, teacher_eval)
        student_eval = evaluate(student, self.p.val, device=self.device)
        student_metrics = yield from self._measure("student", student, student_eval)
        student_metrics["agreement"] = float(
            agreement(student_eval["predictions"], teacher_eval["predictions"])
        )
        final_model = student
        stages: list[dict[str, Any]] = []
        if self.cfg.compression.steps and not self.stopped:
            final_model, stages = yield from self._compress(student, teacher)
        # student/ holds the distilled student (its spec matches its weights); compressed models
        # are saved per stage by the pipeline, and the final one is exported.
        yield from self._save_student(student)
        exports = []
        if self.cfg.export.formats and not self.stopped:
            exports = yield from self._export(final_model)
        summary = {
            "schema_version": 1,
            "name": self.cfg.name,
            "completed": not self.stopped,
            "stopped": self.stopped,
            "steps": self.step,
            "device": str(self.device),
            "data": self.p.data_info,
            "pairs": {k: [list(p) for p in v] for k, v in distiller.pairs.items()},
            "teacher": teacher_metrics,
            "student": student_metrics,
            "compression_ratio": teacher_metrics["params"] / max(student_metrics["params"], 1),
            "accuracy_gap": teacher_metrics["accuracy"] - student_metrics["accuracy"],
            "stages": stages,
            "exports": exports,
        }
        path = self.run_dir.write_summary(summary)
        yield from self._emit(ArtifactEvent(what="summary", path=str(path)))
        yield from self._emit(
            RunFinished(run_dir=str(self.run_dir.path), summary=summary, stopped=self.stopped)
        )
        return summary

    def _save_student(self, model: nn.Module) -> Generator[Event, str | None, None]:
        from kdgui.engine.export import export_model

        target = self.run_dir.path / "student" / "student.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(1, *self.p.input_shape, device=self.device)
        try:
            result = export_model(
                model, "safetensors", target, example, metadata=self._metadata(), verify=False
            )
        except UserError as exc:  # e.g. a quantized model safetensors cannot hold
            yield from self._emit(LogEvent(level="warning", message=exc.one_line()))
            return
        yield from self._emit(ArtifactEvent(what="student", path=str(result.path)))

    def _metadata(self) -> dict[str, Any]:
        return {
            "kdgui_config": self.cfg.model_dump(mode="json"),
            "input_shape": list(self.p.input_shape),
            "num_classes": self.p.num_classes,
            "class_names": self.p.data_info.get("class_names", []),
            "mean": self.p.data_info.get("mean"),
            "std": self.p.data_info.get("std"),
        }

    def _export(self, model: nn.Module) -> Generator[Event, str | None, list[dict[str, Any]]]:
        from kdgui.engine.export import export_model

        out = []
        example = _example_batch(self.p.val, self.device)
        suffix = {"state_dict": ".pt", "safetensors": ".safetensors", "pt2": ".pt2",
                  "onnx": ".onnx", "torchscript": ".torchscript.pt"}
        for fmt in self.cfg.export.formats:
            path = self.run_dir.path / "export" / f"model{suffix[fmt]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                result = export_model(
                    model, fmt, path, example, metadata=self._metadata(),
                    verify=self.cfg.export.verify,
                )
            except UserError as exc:
                out.append({"format": fmt, "ok": False, "error": exc.one_line()})
                yield from self._emit(LogEvent(level="error", message=exc.one_line()))
                continue
            record = {"format": fmt, "ok": True, **_plain_result(result)}
            out.append(record)
            yield from self._emit(ArtifactEvent(what=f"export:{fmt}", path=str(result.path),
                                                details=record))
        return out

    def _compress(
        self, student: nn.Module, teacher: nn.Module
    ) -> Generator[Event, str | None, tuple[nn.Module, list[dict[str, Any]]]]:
        from kdgui.engine.compress import CompressionContext
        from kdgui.engine.compress.pipeline import run_pipeline

        session = self

        def finetune(
            model: nn.Module, epochs: int, on_step: Callable[[int], None] | None = None
        ) -> Generator[Event, str | None, None]:
            yield from session._finetune(model, teacher, epochs, on_step)

        ctx = CompressionContext(
            input_shape=self.p.input_shape,
            example_input=_example_batch(self.p.val, self.device),
            calibration=self.p.train,
            validation=self.p.val,
            device=str(self.device),
            finetune=finetune,
            steps_per_epoch=len(BatchSource(self.p.train, self.tcfg.batch_size, shuffle=False)),
        )
        pipeline = run_pipeline(
            student, self.cfg.compression.steps, ctx, self.run_dir.path / "stages"
        )
        model, stages = yield from pipeline
        return model, stages

    def _finetune(
        self,
        model: nn.Module,
        teacher: nn.Module,
        epochs: int,
        on_step: Callable[[int], None] | None,
    ) -> Generator[Event, str | None, None]:
        """Fine-tune a compressed student with the run's soft+hard distillation loss."""
        from kdgui.engine.distill import Distiller

        dcfg = DistillConfig(
            alpha=self.cfg.distill.alpha, temperature=self.cfg.distill.temperature,
            label_smoothing=self.cfg.distill.label_smoothing,
        )
        distiller = Distiller(teacher, model, dcfg, self.p.input_shape, device=self.device)
        source = BatchSource(self.p.train, self.tcfg.batch_size, shuffle=True,
                             seed=self.tcfg.seed + 1)
        cache = self._teacher_cache(teacher, source) if self._use_teacher_cache(
            distiller, source) else None
        tcfg = self.tcfg.model_copy(update={"lr": self.tcfg.lr * 0.3})
        optimizer = make_optimizer(distiller.trainable_parameters(), tcfg)
        total = epochs * len(source)
        scheduler = make_scheduler(optimizer, tcfg, total)
        teacher_eval = self.teacher_eval
        assert teacher_eval is not None  # measured before distillation
        offset = self.step
        for epoch in range(epochs):
            yield from self._train_epoch(
                distiller, optimizer, scheduler, None, source, cache, epoch=epoch,
                total_steps=total, teacher_eval=teacher_eval,
                teacher_acc=float(teacher_eval["accuracy"]), stage="finetune",
                on_step=on_step, step_offset=offset,
            )


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _example_batch(data: Dataset | DataLoader, device: torch.device, n: int = 8) -> torch.Tensor:
    tensors = getattr(data, "tensors", None)
    if tensors is not None:
        return tensors[0][:n].to(device)
    if isinstance(data, DataLoader):
        return next(iter(data))[0][:n].to(device)
    return torch.stack([data[i][0] for i in range(min(n, len(data)))]).to(device)  # type: ignore[arg-type]


def _plain_result(result: Any) -> dict[str, Any]:
    out = {}
    for key in ("path", "size_bytes", "verified", "max_abs_diff", "tolerance",
                "ort_latency_ms", "warnings", "extra_files"):
        value = getattr(result, key, None)
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


__all__ = ["Prepared", "prepare", "run", "run_prepared"]
