"""Reading and writing experiment configs (YAML or JSON), with errors a person can act on.

YAML is read with a ``yaml.SafeLoader`` only: a config file can never import or call code. Reading
is strict, because a lenient reader silently runs something other than what the file says: a key
given twice, a document nested thousands deep, a file of many megabytes or a "billion laughs" of
aliases are each refused with one line. Errors name the file, the field path, the value and the
allowed range.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kdgui.core.config import SCHEMA_VERSION, ExperimentConfig
from kdgui.core.errors import ConfigError, printable
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


#: Largest config file read: a real one (even with a drawn student) is a few kilobytes.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Deepest nesting of lists and mappings: the schema itself is 5 levels deep.
MAX_DEPTH = 64
#: Most values in one config, counting each repeated YAML alias (refuses a "billion laughs").
MAX_VALUES = 100_000
#: Longest string value (paths included; run names have their own, shorter limit).
MAX_STRING = 4096


def _friendly_msg(err: Any) -> str:
    kind = err.get("type", "")
    if kind in ("finite_number",):
        return "must be a number (not NaN or infinity)"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type") and isinstance(
        err.get("input"), str
    ):
        return "must be a number"
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def format_validation_error(
    exc: ValidationError, source: str | None = None, labels: Mapping[str, str] | None = None
) -> ConfigError:
    """Turn pydantic's error into a :class:`ConfigError` naming field, value and range.

    ``labels`` maps a dotted key to the flag typed for it (``distill.alpha`` → ``--alpha``).
    """
    err = exc.errors()[0]
    path = ".".join(map(str, loc := tuple(err.get("loc", ())))) or "config"
    kind = err.get("type", "")
    label = (labels or {}).get(path)
    if kind == "extra_forbidden":
        allowed = _allowed_text(ExperimentConfig, loc)
        what = f"unknown key '{path}'"
        fix = f"Remove it or fix its spelling ({allowed})." if allowed else "Remove it."
        return ConfigError(what, fix, source=source)
    value = err.get("input")
    msg = _friendly_msg(err)
    allowed = _allowed_text(ExperimentConfig, tuple(p for p in loc if not isinstance(p, int)))
    shown = printable(repr(value), 60)
    if label is not None:
        what = f"{label} {shown} is invalid: {msg}"
        source = None
    elif not loc:  # a rule across sections: its message names the fields and the remedy
        return ConfigError(msg, source=None if source == "--set" else source)
    elif isinstance(value, dict):  # e.g. one of the terms of --term: named by that flag
        flag = (labels or {}).get(path.rstrip("0123456789").rstrip("."))
        what, source = (f"{flag}: {msg}", None) if flag else (f"{path}: {msg}", source)
    else:
        what = f"{path} = {shown} is invalid: {msg}"
    if allowed:
        fix = f"Use a value with {allowed}."
    elif "(known: " in msg:
        fix = "Use one of the known names."
    elif path.startswith("compression"):
        fix = "See 'kdgui methods' for the methods and their parameters."
    else:
        fix = "Fix the value (see 'kdgui config --example')."
    return ConfigError(what, fix, source=source)


def check_limits(data: Any, source: str | None = None) -> None:
    """Refuse documents too deep, too large or with too long strings, before validation.
    Iterative (no recursion), so a 5000-deep list or a self-referencing YAML alias gives this
    one clear error rather than a RecursionError or an endless expansion."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"the config holds more than {MAX_VALUES:,} values (repeated YAML aliases?)",
                "Write the values out plainly.", source=source,
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"the config is too deeply nested (more than {MAX_DEPTH} levels)",
                "A config is a few levels of sections; check the brackets.", source=source,
            )
        if isinstance(node, str):
            if len(node) > MAX_STRING:
                raise ConfigError(
                    f"a text value is {len(node):,} characters long (at most {MAX_STRING:,})",
                    "Shorten it; names and paths are much shorter than that.", source=source,
                )
        elif isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((item, depth + 1) for item in node)


def config_from_dict(
    data: dict[str, Any], source: str | None = None, labels: Mapping[str, str] | None = None
) -> ExperimentConfig:
    """Validate a plain dict as an :class:`ExperimentConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(
            "the config is not a mapping of sections", "Start from 'kdgui config --example'.",
            source=source,
        )
    check_limits(data, source)
    version = data.get("schema_version", 1)
    if version not in (1, SCHEMA_VERSION) or isinstance(version, bool):
        raise ConfigError(
            f"schema_version {printable(repr(version), 40)} is not supported by this version of "
            "KD Studio",
            f"Use schema_version: {SCHEMA_VERSION}, or upgrade KD Studio.", source=source,
        )
    if version == 1:  # read unchanged: see kdgui.core.distill_terms.migration_note
        data = {**data, "schema_version": SCHEMA_VERSION}
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source, labels) from None


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__(key)
        self.key = key
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the last
    one silently, so ``epochs: 1`` then ``epochs: 5`` would run 5)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the constructor reports it
                continue
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _json_line_of_second(text: str, key: str) -> int | None:
    matches = list(re.finditer(re.escape(json.dumps(key)) + r"\s*:", text))
    if len(matches) < 2:
        return None
    return text.count("\n", 0, matches[1].start()) + 1


def _parse(text: str, is_json: bool) -> Any:
    """Parse JSON or YAML text; duplicate keys raise :class:`_DuplicateKey`."""
    if is_json:
        def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise _DuplicateKey(key, _json_line_of_second(text, key))
                out[key] = value
            return out

        return json.loads(text, object_pairs_hook=unique)
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no tags that run code


def parse_config_text(text: str, *, is_json: bool, source: str | None = None) -> Any:
    """The data of a config document, or a :class:`ConfigError` saying what is wrong where."""
    fmt = "JSON" if is_json else "YAML"
    try:
        data = _parse(text, is_json)
    except _DuplicateKey as dup:
        at = f" (line {dup.line})" if dup.line else ""
        raise ConfigError(
            f"the key '{printable(str(dup.key), 60)}' is given twice in one section{at}",
            "Keep one of them: a config must say each value once.", source=source,
        ) from None
    except RecursionError:
        raise ConfigError(
            "the config is too deeply nested to read",
            "A config is a few levels of sections; check the brackets.", source=source,
        ) from None
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(
            f"the file is not valid {fmt}: {printable(' '.join(str(exc).split()), 200)}",
            "Fix the syntax at the position shown.", source=source,
        ) from None
    return data


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Load a YAML or JSON config file."""
    p = Path(path)
    src = str(p)
    if p.is_dir():
        raise ConfigError(f"config path '{p}' is a directory, not a file",
                          "Give the YAML or JSON file inside it.")
    if not p.exists():
        raise ConfigError(f"config file '{p}' does not exist", "Check the path.")
    if not p.is_file():
        raise ConfigError(f"config path '{p}' is not a regular file",
                          "Give a YAML or JSON file.")
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{p}': {exc.strerror or exc}",
                          "Check the file's permissions.") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the config file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            "A config is a few kilobytes; check that this is the right file.", source=src,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the file is not UTF-8 text (byte {exc.start})",
            "Save it as UTF-8, or check that this is the config and not a binary file.",
            source=src,
        ) from None
    data = parse_config_text(text, is_json=p.suffix.lower() == ".json", source=src)
    if data is None:
        raise ConfigError("the config file is empty", "Start from 'kdgui config --example'.",
                          source=src)
    return config_from_dict(data, source=src)


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


def _parse_scalar(text: str) -> Any:  # a --set value, as YAML when it parses
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):  # ValueError: a 5000-digit number
        return text


def apply_overrides(
    config: ExperimentConfig, overrides: list[str], labels: Mapping[str, str] | None = None
) -> ExperimentConfig:
    """Apply ``section.key=value`` overrides (as from ``--set``) and re-validate.

    ``labels`` maps a key to the flag the user typed for it (``distill.alpha`` → ``--alpha``),
    so a bad value is reported under that flag's name.
    """
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{printable(item, 80)}' is not KEY=VALUE",
                              "Write e.g. distill.alpha=0.5.")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"'{printable(key, 80)}' does not name a config field",
                                  "Check the key.")
        node[parts[-1]] = _parse_scalar(raw)
    return config_from_dict(data, source="--set", labels=labels)


def example_yaml() -> str:
    """An annotated example config, generated from the schema's own help texts."""
    lines = [
        f"# KD Studio experiment config (schema_version {SCHEMA_VERSION}).",
        "# Loss: L = (1 - alpha - beta - gamma) L_hard + alpha L_soft + beta L_feat + gamma L_att",
        "# with L_soft = T^2 KL(softmax(z_t/T) || softmax(z_s/T)); or any list of weighted terms:",
        "# distill: {terms: [{name: hard, weight: 1}, {name: dkd, weight: 1, params: {beta: 8}}]}",
        "# (the losses and their params: 'kdgui methods').",
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
