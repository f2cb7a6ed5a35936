"""Planning a sweep: which config key a shorthand means, and one validated config per value.

Split from :mod:`kdgui.engine.sweep` (see its docstring for the keys and shorthands): every value
is validated here, before the first run starts, so a bad one fails in seconds, not after hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kdgui.core.components.compression import STEP_KINDS, method_component
from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import config_from_dict, config_to_dict
from kdgui.core.errors import ConfigError
from kdgui.core.run_folders import safe_name

#: Plain aliases for config keys.
ALIASES: dict[str, str] = {
    "T": "distill.temperature",
    "temperature": "distill.temperature",
    "alpha": "distill.alpha",
    "width": "student.width",
    "epochs": "training.epochs",
    "lr": "training.lr",
}


@dataclass(frozen=True)
class CompressionKnob:
    """A shorthand for one parameter of a compression step."""

    kind: str
    methods: tuple[str, ...]  # methods that have the parameter; the first is added if missing
    param: str


COMPRESSION_KNOBS: dict[str, CompressionKnob] = {
    "prune.sparsity": CompressionKnob("prune", ("magnitude",), "sparsity"),
    "prune.ratio": CompressionKnob("prune", ("structured",), "ratio"),
    "quantize.bits": CompressionKnob("quantize", ("fake",), "bits"),
    "lowrank.rank_fraction": CompressionKnob("lowrank", ("svd", "conv"), "rank_fraction"),
    "lowrank.rank": CompressionKnob("lowrank", ("svd", "conv"), "rank"),
    "lowrank.energy": CompressionKnob("lowrank", ("svd", "conv"), "energy"),
}

#: Deep Compression's order, used to place a step a shorthand adds.
_STEP_ORDER = {"prune": 0, "lowrank": 1, "finetune": 1, "quantize": 2}

@dataclass
class SweepPlan:
    """A validated sweep: the key (as given and resolved), the values and one config each."""

    key: str
    target: str
    values: list[Any]
    labels: list[str]
    configs: list[ExperimentConfig]
    base: ExperimentConfig


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``"KEY=V1,V2,..."`` → ``(KEY, [V1, V2, ...])`` with YAML scalars (1 → int, 0.5 → float)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--vary '{text}' is not KEY=V1,V2,...",
                          "Write e.g. --vary distill.temperature=1,4,8.")
    values = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"--vary '{text}' has an empty value",
                              "Separate the values with single commas: 1,4,8.")
        try:
            values.append(yaml.safe_load(part))
        except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: 5000-digit numbers
            values.append(part)
    return key, values


def resolve_key(key: str) -> str:
    """The full key a shorthand stands for (compression shorthands are returned unchanged)."""
    return ALIASES.get(key, key)


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists; missing dict levels are created."""
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"'{key}': '{where}' is not an item of a list of {len(node)}",
                                  f"Use an index from 0 to {len(node) - 1}.")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"'{key}' does not name a config field ('{where}' is a value)",
                              "Check the key against 'kdgui config --example'.")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def _apply_knob(data: dict[str, Any], key: str, knob: CompressionKnob, value: Any) -> None:
    steps: list[dict[str, Any]] = data.setdefault("compression", {}).setdefault("steps", [])
    for step in steps:
        if step.get("kind") == knob.kind and step.get("method") in knob.methods:
            step.setdefault("params", {})[knob.param] = value
            return
    same_kind = [s.get("method") for s in steps if s.get("kind") == knob.kind]
    if same_kind:
        raise ConfigError(
            f"'{key}' needs a {knob.kind} step with method {' or '.join(knob.methods)}, but the "
            f"config's {knob.kind} step uses '{same_kind[0]}'",
            f"Change that step's method to {knob.methods[0]}, or vary "
            f"compression.steps.N.params.PARAM instead.",
        )
    new = {"kind": knob.kind, "method": knob.methods[0], "params": {knob.param: value},
           "name": knob.kind}
    rank = _STEP_ORDER[knob.kind]
    pos = next((i for i, s in enumerate(steps) if _STEP_ORDER.get(s.get("kind"), 1) > rank),
               len(steps))
    steps.insert(pos, new)


def vary_config(config: ExperimentConfig, key: str, value: Any) -> ExperimentConfig:
    """``config`` with ``key`` (a config key or a shorthand) set to ``value``, validated.

    Compression parameters are validated against their method's declaration here, so a bad
    value (sparsity 1.5, 1 bit) fails before the first run rather than in the fourth.
    """
    data = config_to_dict(config)
    knob = COMPRESSION_KNOBS.get(key)
    if knob is not None:
        _apply_knob(data, key, knob, value)
    else:
        _set_path(data, resolve_key(key), value)
    where = f"--vary {key}={value}"
    new = config_from_dict(data, source=where)
    for i, step in enumerate(new.compression.steps):
        if step.kind not in STEP_KINDS:
            continue
        component = method_component(step.kind, step.method)
        component.validate(step.params, where=f"{where}: compression.steps.{i} ({step.kind})")
    return new


def value_label(value: Any) -> str:
    """A short text for a value (``0.5``, ``8``, ``true``) as folder names and legends use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plan_sweep(config: ExperimentConfig, key: str, values: Sequence[Any]) -> SweepPlan:
    """Validate every value of the sweep now; raise a :class:`ConfigError` naming the bad one."""
    values = list(values)
    if not values:
        raise ConfigError(f"the sweep over '{key}' has no values", "Give at least one value.")
    labels = [value_label(v) for v in values]
    if len(set(labels)) != len(labels):
        dup = next(lbl for lbl in labels if labels.count(lbl) > 1)
        raise ConfigError(f"the sweep over '{key}' lists the value {dup} twice",
                          "Give each value once.")
    configs = [vary_config(config, key, v) for v in values]
    target = key if key in COMPRESSION_KNOBS else resolve_key(key)
    return SweepPlan(key=key, target=target, values=values, labels=labels, configs=configs,
                     base=config)


def run_folder_name(index: int, key: str, label: str) -> str:
    """``03_distill.temperature=8``: sortable, readable, safe on every file system."""
    text = f"{key}={label}"
    return f"{index:02d}_" + safe_name(text)
