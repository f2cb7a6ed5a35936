"""Command-line flags generated from the config schema's own declarations.

The distillation and training sections' scalar fields become flags (``--alpha``, ``--temperature``,
``--epochs``, ``--lr``, ...) with their help text and range, so a new config field is a new flag
without touching the CLI. Each flag only overrides the config when given.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kdgui.core.config import DistillConfig, ExperimentConfig, TrainingConfig
from kdgui.core.config_io import apply_overrides
from kdgui.core.params import ParamSpec, describe

GENERATED_SECTIONS: dict[str, type] = {"distill": DistillConfig, "training": TrainingConfig}


#: Extra spellings of generated flags (torchrun's word for training.processes).
FLAG_ALIASES: dict[str, tuple[str, ...]] = {"processes": ("--nproc",)}


def _flag_name(spec: ParamSpec) -> str:
    return "--" + spec.name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add hand-named data/model flags and generated distill/training flags."""
    group = parser.add_argument_group("data and models")
    group.add_argument("--name", help="a name for the run (its folder's name too)")
    group.add_argument("--data", metavar="SPEC", help="dataset spec: digits, mnist:ROOT, "
                       "fashionmnist:ROOT, cifar10:ROOT, folder:PATH, ...")
    group.add_argument("--download", action="store_true", default=None,
                       help="download a torchvision dataset if missing (needs network)")
    group.add_argument("--teacher", metavar="PATH", help="teacher model file (or 'demo')")
    group.add_argument("--arch", metavar="ARCH", help="teacher architecture for a state_dict: "
                       "torchvision:NAME, path/to/model.py:Class or preset:NAME")
    group.add_argument("--num-classes", type=int, metavar="N", help="classes of --arch")
    group.add_argument("--trust", action="store_true", default=None,
                       help="allow loading a pickled module (can run code: trusted files only)")
    group.add_argument("--student", metavar="PRESET", help="student preset (see 'kdgui presets')")
    group.add_argument("--width", type=float, metavar="W", help="student width multiplier")
    group.add_argument("--derive", action="store_true", default=None,
                       help="derive the student from the teacher's family")
    for section, model in GENERATED_SECTIONS.items():
        grp = parser.add_argument_group(f"{section} (from the config schema)")
        for spec in describe(model):
            if spec.kind not in ("float", "int", "bool", "choice"):
                continue
            help_text = spec.help + (f" [{spec.range_text()}]" if spec.range_text() else "")
            kwargs: dict[str, Any] = {"dest": f"cfg__{section}__{spec.name}", "default": None,
                                      "help": help_text.replace("%", "%%")}
            if spec.kind == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            elif spec.kind == "choice" and spec.extra.get("more_choices"):  # checked by the config
                kwargs["metavar"] = spec.name.upper()
            elif spec.kind == "choice":
                kwargs["choices"] = list(spec.choices)
            else:
                kwargs["type"] = float if spec.kind == "float" else int
                kwargs["metavar"] = spec.name.upper()
            grp.add_argument(_flag_name(spec), *FLAG_ALIASES.get(spec.name, ()), **kwargs)
    grp = parser.add_argument_group("distillation terms (replace the alpha/beta/gamma shorthand)")
    grp.add_argument("--term", action="append", default=None, metavar="LOSS[:KEY=VALUE,...]",
                     help="one weighted term of the loss, repeatable: a loss from 'kdgui methods' "
                     "with weight=, label=, pairs=TEACHER>STUDENT+... and the loss's own "
                     "parameters, e.g. --term hard --term dkd:weight=1,alpha=1,beta=8")
    grp = parser.add_argument_group(
        "compression of the distilled student (as in 'kdgui compress'; replaces the config's "
        "compression.steps)")
    grp.add_argument("--prune", metavar="unstructured:S|structured:R",
                     help="magnitude pruning to sparsity S, or remove a fraction R of channels")
    grp.add_argument("--gradual", action="store_true", default=None,
                     help="prune gradually during --finetune-epochs of fine-tuning")
    grp.add_argument("--finetune-epochs", type=int, metavar="N",
                     help="fine-tune N epochs after pruning / low-rank (QAT trains N epochs)")
    grp.add_argument("--lowrank", type=float, metavar="FRACTION",
                     help="low-rank factorisation keeping this fraction of each layer's rank")
    grp.add_argument("--lowrank-method", metavar="METHOD",
                     help="decomposer: svd (Linear layers, default) or conv (convolutions)")
    grp.add_argument("--lowrank-layers", metavar="NAMES",
                     help="comma-separated layer names to factorise (default: every eligible "
                     "layer but the output)")
    grp.add_argument("--quantize", metavar="METHOD",
                     help="dynamic-int8, static-int8, qat-int8, onnx-int8 or fake:BITS")
    parser.add_argument("--export", metavar="FORMATS",
                        help="export the final model: comma-separated state_dict, safetensors, "
                        "pt2, onnx, torchscript (config: export.formats)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set distill.feature.distance=l1")


def apply_config_flags(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    """Return ``config`` with the flags that were given applied (and validated)."""
    overrides: list[str] = []
    labels: dict[str, str] = {}  # config key -> the flag that set it, for error messages

    def put(key: str, value: Any, flag: str) -> None:
        if value is not None:
            overrides.append(f"{key}={_yaml_scalar(value)}")
            labels[key] = flag

    put("name", args.name, "--name")
    if args.export is not None:
        formats = [f.strip() for f in args.export.split(",") if f.strip()]
        overrides.append("export.formats=[" + ", ".join(_yaml_scalar(f) for f in formats) + "]")
        labels["export.formats"] = "--export"
    put("data.spec", args.data, "--data")
    put("data.download", args.download, "--download")
    if args.teacher is not None:
        put("teacher.path", args.teacher, "--teacher")
    put("teacher.arch", args.arch, "--arch")
    put("teacher.num_classes", args.num_classes, "--num-classes")
    put("teacher.trust", args.trust, "--trust")
    if args.student is not None:
        put("student.preset", args.student, "--student")
    put("student.width", args.width, "--width")
    put("student.derive_from_teacher", args.derive, "--derive")
    if getattr(args, "term", None):  # first: a shorthand flag given too is then an error
        terms = [parse_term(text) for text in args.term]
        overrides.append("distill=" + json.dumps({"terms": terms}))
        labels["distill.terms"] = "--term"
    for key, value in vars(args).items():
        if key.startswith("cfg__") and value is not None:
            _, section, name = key.split("__", 2)
            put(f"{section}.{name}", value, "--" + name.replace("_", "-"))
    steps = _compression_steps(args)
    if steps is not None:
        overrides.append("compression.steps=" + json.dumps(steps))
        labels["compression.steps"] = "--prune/--lowrank/--quantize"
    overrides.extend(args.set)
    for item in args.set:  # a later --set of the same key is what the error is about
        labels.pop(item.partition("=")[0].strip(), None)
    return apply_overrides(config, overrides, labels) if overrides else config


def parse_term(text: str) -> dict[str, Any]:
    """``dkd:weight=1,beta=8`` as ``{name: dkd, weight: 1, params: {beta: 8}}`` (validated with
    the config: an unknown loss or parameter is the config's one-line error)."""
    from kdgui.core.config_io import _parse_scalar
    from kdgui.core.errors import ConfigError

    name, _, rest = text.strip().partition(":")
    term: dict[str, Any] = {"name": name.strip(), "params": {}}
    for item in (p for p in rest.split(",") if p.strip()):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--term {text}: '{item}' is not KEY=VALUE",
                              "Write e.g. --term dkd:weight=1,beta=8.")
        if key == "pairs":
            term["pairs"] = [p.split(">", 1) for p in raw.split("+") if p.strip()]
            if any(len(p) != 2 for p in term["pairs"]):
                raise ConfigError(f"--term {text}: pairs must be TEACHER>STUDENT joined by '+'",
                                  "Write e.g. pairs=layer2>features.4+layer3>features.7.")
        elif key in ("weight", "label"):
            term[key] = _parse_scalar(raw.strip()) if key == "weight" else raw.strip()
        else:
            term["params"][key] = _parse_scalar(raw.strip())
    return term


def _compression_steps(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The compression flags as ``compression.steps`` (None when none was given)."""
    given = {k: getattr(args, k) for k in ("prune", "gradual", "finetune_epochs", "quantize",
                                           "lowrank", "lowrank_method", "lowrank_layers")
             if getattr(args, k, None) is not None}
    if not given:
        return None
    from kdgui.engine.jobs import compression_steps

    return [s.model_dump(mode="json") for s in compression_steps(**given)]


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
