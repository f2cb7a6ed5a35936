"""The experiment config: one schema for the window, the CLI, the Python API and config files.

Every field declares its default, range and help text once; validation errors name the field,
the value and the allowed range (see :mod:`kdgui.core.config_io`). ``schema_version`` lets later
releases migrate old files instead of misreading them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from kdgui.core.components.compression import STEP_KINDS, method_traits
from kdgui.core.components.distill import reads
from kdgui.core.components.export import format_names
from kdgui.core.data_spec import (
    check_class_ids,
    class_ids_from_text,
    known_kinds_text,
    parse_data_spec,
)
from kdgui.core.devices import DEVICE_KINDS, NUMBERED_DEVICE, check_device

# The distillation section lives with its terms; re-exported here, where every section is.
from kdgui.core.distill_terms import DistillConfig as DistillConfig
from kdgui.core.distill_terms import TermConfig as TermConfig
from kdgui.core.errors import DataError
from kdgui.core.params import Params, describe, param
from kdgui.core.presets import PRESETS
from kdgui.core.registry import REGISTRIES
from kdgui.core.student_spec import StudentSpec

#: 2 added ``distill.terms``; a schema-1 file is read unchanged (its alpha/beta/gamma are the
#: shorthand) and migrated with a note (:func:`kdgui.core.distill_terms.migration_note`).
SCHEMA_VERSION = 2
#: Longest run name: it becomes part of a folder name and of every report's title.
MAX_NAME = 200
#: Largest seed: numpy's generators take seeds below 2**32 (torch's would overflow far later).
MAX_SEED = 2**32 - 1


class Section(Params):
    """Base of every config section: unknown keys are errors, assignments are validated, and
    numbers are read strictly (see :class:`kdgui.core.params.Params`).

    Everything a run would reject on its own (an unknown preset, dataset kind, method or method
    parameter) is rejected here, by the schema, so ``kdgui config --check``, ``kdgui run`` and the
    window all refuse the same configs before any folder is written.
    """


def _known(names: Any) -> str:
    return ", ".join(sorted(names)) or "none"


class DataConfig(Section):
    """Which dataset, and how it is split into training and held-out validation data."""

    spec: str = param(
        "digits",
        "Dataset: 'digits' (embedded, offline), 'mnist:ROOT', 'fashionmnist:ROOT', "
        "'kmnist:ROOT', 'cifar10:ROOT', 'cifar100:ROOT', 'svhn:ROOT' or 'folder:PATH'.",
    )
    download: bool = param(False, "Download a torchvision dataset if it is missing (needs network).")
    val_fraction: float = param(
        0.2, "Fraction of the data held out for validation.", gt=0.0, lt=1.0, step=0.05
    )
    split: Literal["random", "ordered"] = param(
        "random", "'random' shuffles with split_seed; 'ordered' keeps the last part for validation."
    )
    split_seed: int = param(0, "Seed of the train/validation split.", ge=0, le=MAX_SEED)
    limit: int | None = param(None, "Use only the first N samples (quick experiments).", ge=1)
    image_size: int | None = param(None, "Resize images to this size (square).", ge=4, le=1024)
    augment: bool = param(
        False, "Random crops and flips for training. Turns teacher-output caching off."
    )
    normalize: bool = param(True, "Normalize inputs with the dataset's mean and std.")
    # Transfer-set options (issue 17; applied in kdgui.engine.data.transfer). Validation data
    # always keeps every class and its labels: it measures what the student learnt.
    exclude_classes: list[int] = Field(
        default_factory=list, description="Class ids removed from the training (transfer) set "
        "only, as in Hinton et al.'s missing-digit experiment; validation keeps them.")
    ignore_labels: bool = param(
        False, "Treat the training set as unlabelled (label -1): only the teacher's outputs "
        "teach, except for data.labelled_count kept labels.")
    labelled_count: int | None = param(
        None, "Keep labels on only this many training samples (chosen with split_seed); the "
        "others become unlabelled (-1) and skip the hard loss.", ge=0)

    @field_validator("exclude_classes", mode="before")
    @classmethod
    def _class_ids_text(cls, value: Any) -> Any:
        return class_ids_from_text(value)

    @field_validator("exclude_classes")
    @classmethod
    def _class_ids(cls, value: list[int]) -> list[int]:
        return check_class_ids(value)

    @field_validator("spec")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        try:
            parse_data_spec(value)
        except DataError as exc:
            hint = exc.fix.partition(". For ")[2]  # "a folder of class subfolders write ..."
            more = f"; for {hint.rstrip('.')}" if hint else ""
            raise ValueError(f"{exc.what} (known: {known_kinds_text()}){more}") from None
        return value


class ModelRef(Section):
    """Where a model comes from: a file, an architecture, or both (state_dict + architecture)."""

    path: str | None = param(
        None,
        "Model file: TorchScript (.pt/.ts), torch.export (.pt2), a state_dict (.pt/.pth/"
        ".safetensors, needs arch) or 'demo' for the bundled demo teacher.",
    )
    arch: str | None = param(
        None,
        "Architecture: 'torchvision:NAME', 'path/to/model.py:ClassName' or 'preset:NAME'.",
    )
    num_classes: int | None = param(None, "Classes the architecture outputs.", ge=1)
    arch_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the architecture."
    )
    trust: bool = param(
        False,
        "Allow loading a pickled nn.Module, which can run arbitrary code. Only for files you trust.",
    )
    pretrained: bool = param(
        False, "Download pretrained torchvision weights from the hub (needs network)."
    )
    train_epochs: int = param(
        0, "Train this model from scratch for N epochs first when it has no weights.", ge=0, le=1000
    )
    # The first training's optimizer and schedule; momentum, weight decay, batch size, seed and
    # device come from 'training'. The defaults (Adam, 1e-3, no schedule) are what it used before
    # these fields existed, so older configs train the same teacher.
    train_optimizer: Literal["sgd", "adam", "adamw"] = param(
        "adam", "Optimizer of that first training (other settings come from 'training')."
    )
    train_lr: float = param(1e-3, "Learning rate of that first training.", gt=0.0, le=1e4)
    train_schedule: Literal["none", "cosine", "step", "multistep"] = param(
        "none", "Learning-rate schedule of that first training."
    )

    @field_validator("arch")
    @classmethod
    def _known_preset_arch(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("preset:"):
            name = value.partition(":")[2]
            if name not in PRESETS:
                raise ValueError(f"unknown preset '{name}' (known: {_known(PRESETS)})")
        return value


class StudentConfig(Section):
    """The student: a preset, an architecture reference, a drawn spec, or derived from the teacher."""

    preset: str | None = param("cnn-small", "Student preset (see 'kdgui presets').")
    width: float = param(
        1.0, "Width multiplier for the preset or derived student.", gt=0.0, le=4.0, step=0.125
    )
    derive_from_teacher: bool = param(
        False, "Derive the student from the teacher's family (narrower, fewer blocks)."
    )
    depth: float = param(
        1.0, "Fraction of the teacher's blocks kept when deriving.", gt=0.0, le=1.0, step=0.25
    )
    spec: StudentSpec | None = Field(
        None, description="A drawn student (list of layers); overrides the preset."
    )
    model: ModelRef | None = Field(
        None, description="A student from a file or architecture reference instead of a preset."
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown student preset '{value}' (known: {_known(PRESETS)})")
        return value


class TrainingConfig(Section):
    """How the student is trained."""

    epochs: int = param(8, "Training epochs.", ge=1, le=10000)
    batch_size: int = param(64, "Samples per batch.", ge=1, le=65536)
    optimizer: Literal["sgd", "adam", "adamw"] = param("adam", "Optimizer.")
    lr: float = param(3e-3, "Learning rate (values above 1 rarely train).", gt=0.0, le=1e4)
    momentum: float = param(0.9, "SGD momentum.", ge=0.0, lt=1.0, step=0.05)
    weight_decay: float = param(0.0, "Weight decay (L2).", ge=0.0, le=1.0)
    schedule: Literal["none", "cosine", "step", "multistep"] = param(
        "cosine", "Learning-rate schedule ('multistep': times lr_decay at each lr_milestones).")
    lr_milestones: list[float] = Field(
        default_factory=lambda: [0.625, 0.75, 0.875],
        description="Where schedule 'multistep' lowers the rate, as fractions of the training "
        "(the default is epochs 150, 180 and 210 of 240: the CIFAR schedule of CRD, DKD, DIST).")
    lr_decay: float = param(
        0.1, "Factor applied to the rate at each milestone of schedule 'multistep'.", gt=0.0,
        le=1.0, step=0.05)
    seed: int = param(0, "Random seed for initialisation and batch order.", ge=0, le=MAX_SEED)
    device: Annotated[str, BeforeValidator(check_device)] = param(
        "auto", "Where to train: 'auto' picks CUDA, then MPS, then CPU; 'cuda:N' GPU number N.",
        choices=DEVICE_KINDS, more_choices=NUMBERED_DEVICE, choices_from="devices")
    amp: bool = param(False, "Mixed precision (CUDA only; ignored elsewhere).")
    cache_teacher: Literal["auto", "on", "off"] = param(
        "auto",
        "Compute each sample's teacher outputs once and reuse them. 'auto' caches when "
        "augmentation is off and no feature or attention loss needs teacher feature maps.",
    )
    teacher_precision: Literal["auto", "fp32", "bf16", "fp16"] = param(
        "auto", "Precision of the frozen teacher's forward pass. 'auto' times fp32 and bf16 on "
        "this device at run start and keeps the fastest whose soft targets stay within a KL of "
        "1e-4 of fp32's (plain PyTorch teachers only; TorchScript/.pt2/ONNX run as loaded)."
    )
    student_precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "Arithmetic of the student's training step; weights stay fp32. 'auto' keeps fp32 "
        "(bf16 autocast was slower for small students on CPUs); 'bf16' uses autocast."
    )
    channels_last: Literal["auto", "on", "off"] = param(
        "auto", "Memory layout of convolution weights and inputs for teacher and student. "
        "'auto' measures both layouts at run start and keeps the faster."
    )
    compile: Literal["off", "auto", "on"] = param(
        "off", "torch.compile teacher and student ('auto' keeps it only where measured faster). "
        "Compiling takes a while at run start; a failure falls back to eager mode."
    )
    log_every: int = param(10, "Send a step event every N steps.", ge=1, le=100000)
    tensorboard: bool = param(
        False, "Also write the run's scalars for TensorBoard in RUN/tensorboard (needs the "
        "tensorboard package: pip install tensorboard)."
    )
    num_threads: int | None = param(
        None, "CPU threads for torch (default: torch's choice).", ge=1, le=4096
    )
    processes: int = param(
        1, "Training processes on this machine: 1 trains in this process; N > 1 runs N under "
        "torchrun with DistributedDataParallel (gloo on CPU, NCCL with one GPU each). "
        "batch_size stays the global batch (batch_size / N per process).", ge=1, le=256
    )

    @field_validator("lr_milestones")
    @classmethod
    def _milestones_inside_the_run(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < f < 1.0 for f in value):
            raise ValueError(f"milestones are fractions of the training between 0 and 1 "
                             f"(got {value}; epoch 150 of 240 is 0.625)")
        return sorted(value)


class CompressionStep(Section):
    """One step of a compression pipeline: a registered method and its parameters."""

    kind: Literal["prune", "quantize", "lowrank", "finetune"] = param(
        "prune", "What the step does."
    )
    method: str = param("magnitude", "The registered method (see 'kdgui methods').")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's parameters.")
    finetune_epochs: int = param(0, "Fine-tune for N epochs after the step.", ge=0, le=1000)
    name: str | None = param(
        None, "A label for reports; defaults to kind:method.", max_length=MAX_NAME
    )

    @model_validator(mode="after")
    def _known_method_and_params(self) -> CompressionStep:
        """The method exists for this kind and its parameters are valid, checked now rather
        than after training, when the pipeline reaches the step."""
        if self.kind == "finetune":
            if self.finetune_epochs < 1:
                raise ValueError("a finetune step needs finetune_epochs ≥ 1")
            return self
        registry = REGISTRIES[STEP_KINDS[self.kind]]
        if self.method not in registry:
            raise ValueError(
                f"unknown {self.kind} method '{self.method}' (known: {_known(registry.names())})"
            )
        component = registry.get(self.method)
        try:
            component.params.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(_param_error(exc, self.kind, self.method, component.params)) from None
        return self


def _param_error(exc: ValidationError, kind: str, method: str, model: type[Params]) -> str:
    """One sentence naming the bad parameter of a step's method, with what is allowed."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    where = f"{kind} method '{method}'"
    if err.get("type") == "extra_forbidden":
        return f"unknown parameter '{loc}' of {where} (known: {_known(model.model_fields)})"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    spec = next((s for s in describe(model) if s.name == loc), None)
    allowed = f" (allowed: {spec.range_text()})" if spec is not None and spec.range_text() else ""
    value = repr(err.get("input"))[:60]
    subject = f"parameter '{loc}' of {where} = {value}" if loc else where
    return f"{subject} is invalid: {msg}{allowed}"


class CompressionConfig(Section):
    """Ordered compression steps applied to the distilled student (empty: none)."""

    steps: list[CompressionStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _steps_in_a_possible_order(self) -> CompressionConfig:
        """What the pipeline would refuse after training, refused before it: a step after an
        int8 one, a step that trains inside itself without fine-tuning epochs, and fine-tuning
        an int8 model (rules from each method's declared traits)."""
        after_int8 = ""
        for i, step in enumerate(self.steps):
            label = f"step {i} ({step.name or f'{step.kind}:{step.method}'})"
            if after_int8:
                raise ValueError(
                    f"{label} comes after {after_int8}, an int8 step, which makes a model that "
                    "cannot be pruned, decomposed, quantized again or fine-tuned; put "
                    "quantization last"
                )
            if step.kind == "finetune":
                continue
            traits = method_traits(step.kind, step.method)
            params = REGISTRIES[STEP_KINDS[step.kind]].get(step.method).params.model_validate(
                step.params)
            trains = traits.trains(params)
            if trains and step.finetune_epochs < 1:
                raise ValueError(f"{label} trains during the step but has finetune_epochs = 0; "
                                 "set finetune_epochs ≥ 1")
            if traits.produces_int8 and not trains and step.finetune_epochs > 0:
                raise ValueError(f"{label} cannot fine-tune an int8 model (finetune_epochs = "
                                 f"{step.finetune_epochs}); set it to 0, or use qat-int8")
            if traits.produces_int8:
                after_int8 = label
        return self


class ExportConfig(Section):
    """Files written at the end of a run."""

    formats: list[str] = Field(
        default_factory=list,
        description="Export formats for the final model (the registered exporters: see "
        "'kdgui methods').",
    )
    verify: bool = param(True, "Reload each file and compare its outputs with PyTorch.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        """Names from the export format table (declared with the exporters), so a new exporter
        needs no change here."""
        known = format_names()
        unknown = [f for f in value if f not in known]
        if unknown:
            raise ValueError(f"unknown export format '{unknown[0]}' (known: {_known(known)})")
        return value


class ExperimentConfig(Section):
    """A whole experiment: data, teacher, student, distillation, training, compression, export."""

    schema_version: int = param(SCHEMA_VERSION, "Version of this file's schema.", ge=1, le=2)
    name: str = param("experiment", "A name for the run.", max_length=MAX_NAME)
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: ModelRef = Field(default_factory=lambda: ModelRef(path="demo"))
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="after")
    def _per_sample_state_in_one_process(self) -> ExperimentConfig:
        """CRD's memory bank would keep only rank 0's state under DDP (buffers are broadcast)."""
        n = self.training.processes
        for t in self.distill.active_terms() if n > 1 else ():
            if reads(REGISTRIES["loss"].get(t.name).params, "index"):
                raise ValueError(f"distill term '{t.name}' keeps state per training sample, which "
                                 f"a distributed run (training.processes = {n}) does not keep "
                                 "across processes: train it in one process (training.processes "
                                 "1, --nproc 1) or drop the term")
        return self


def demo_config() -> ExperimentConfig:
    """The embedded default: the bundled teacher distilled into a small CNN on scikit-learn digits."""
    return ExperimentConfig(name="demo")
