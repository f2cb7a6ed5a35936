"""Reading and writing experiment configs (YAML or JSON), with errors a person can act on.

YAML is read with ``yaml.safe_load`` only: a config file can never import or call code. Errors
name the file, the field path, the value and the allowed range.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import ConfigError
from kdgui.core.params import describe


def _allowed_text(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The allowed range or keys of the field at ``loc`` in ``model``, for error messages."""
    current: Any = model
    for i, part in enumerate(loc):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return ""
        fields = current.model_fields
        if part not in fields:
            return "known keys: " + ", ".join(fields) if i == len(loc) - 1 else ""
        if i == len(loc) - 1:
            spec = next(s for s in describe(current) if s.name == part)
            return f"allowed: {spec.range_text()}" if spec.range_text() else ""
        annotation = fields[part].annotation
        args = getattr(annotation, "__args__", ())
        current = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return ""


def format_validation_error(exc: ValidationError, source: str | None = None) -> ConfigError:
    """Turn pydantic's error into a :class:`ConfigError` naming field, value and range."""
    err = exc.errors()[0]
    loc = tuple(p for p in err.get("loc", ()) if not isinstance(p, int) or True)
    path = ".".join(str(p) for p in loc) or "config"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_text(ExperimentConfig, loc)
        what = f"unknown key '{path}'"
        fix = f"Remove it or fix its spelling ({allowed})." if allowed else "Remove it."
        return ConfigError(what, fix, source=source)
    value = err.get("input")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    allowed = _allowed_text(ExperimentConfig, tuple(p for p in loc if not isinstance(p, int)))
    what = f"{path} = {value!r} is invalid: {msg}" if not isinstance(value, dict) else (
        f"{path} is invalid: {msg}"
    )
    fix = f"Use a value with {allowed}." if allowed else "Fix the value (see 'kdgui config --example')."
    return ConfigError(what, fix, source=source)


def config_from_dict(data: dict[str, Any], source: str | None = None) -> ExperimentConfig:
    """Validate a plain dict as an :class:`ExperimentConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(
            "the config is not a mapping of sections", "Start from 'kdgui config --example'.",
            source=source,
        )
    version = data.get("schema_version", 1)
    if version != 1:
        raise ConfigError(
            f"schema_version {version!r} is not supported by this version of KD Studio",
            "Use schema_version: 1, or upgrade KD Studio.", source=source,
        )
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Load a YAML or JSON config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist", "Check the path.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{p}': {exc}", "Check the file.") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"the file is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
            f"{' '.join(str(exc).split())}",
            "Fix the syntax at the position shown.", source=str(p),
        ) from None
    if data is None:
        raise ConfigError("the config file is empty", "Start from 'kdgui config --example'.",
                          source=str(p))
    return config_from_dict(data, source=str(p))


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def dump_config(config: ExperimentConfig, fmt: str = "yaml") -> str:
    data = config_to_dict(config)
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see
    a half-written file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; keep the usual permissions
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_config(config: ExperimentConfig, path: str | os.PathLike[str]) -> None:
    """Save as YAML, or JSON when the name ends in .json; atomic."""
    fmt = "json" if str(path).lower().endswith(".json") else "yaml"
    try:
        atomic_write_text(path, dump_config(config, fmt))
    except OSError as exc:
        raise ConfigError(
            f"cannot write '{path}': {exc.strerror or exc}", "Choose a folder you can write to."
        ) from None


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``section.key=value`` overrides (as from ``--set``) and re-validate."""
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not KEY=VALUE", "Write e.g. distill.alpha=0.5.")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' does not name a config field", "Check the key.")
        node[parts[-1]] = _parse_scalar(raw)
    return config_from_dict(data, source="--set")


def example_yaml() -> str:
    """An annotated example config, generated from the schema's own help texts."""
    lines = [
        "# KD Studio experiment config (schema_version 1).",
        "# Loss: L = (1 - alpha - beta - gamma) L_hard + alpha L_soft + beta L_feat + gamma L_att",
        "# with L_soft = T^2 KL(softmax(z_t/T) || softmax(z_s/T)).",
    ]

    def emit(model: BaseModel, indent: int) -> None:
        pad = "  " * indent
        for spec in describe(type(model)):
            value = getattr(model, spec.name)
            comment = spec.help
            if spec.range_text():
                comment += f" [{spec.range_text()}]"
            if comment:
                lines.append(f"{pad}# {comment}")
            if isinstance(value, BaseModel):
                lines.append(f"{pad}{spec.name}:")
                emit(value, indent + 1)
            else:
                dumped = yaml.safe_dump({spec.name: _jsonable(value)}, default_flow_style=True,
                                        allow_unicode=True).strip()
                lines.append(f"{pad}{dumped[1:-1]}")

    example = ExperimentConfig(name="example")
    emit(example, 0)
    lines.append("# Example compression pipeline:")
    lines.append("# compression:")
    lines.append("#   steps:")
    lines.append("#   - {kind: prune, method: magnitude, params: {sparsity: 0.8}, finetune_epochs: 2}")
    lines.append("#   - {kind: quantize, method: dynamic-int8}")
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
