"""Save and load a :class:`StudentSpec` on its own, as YAML or JSON.

A drawn student is worth keeping apart from the experiment that first used it. Three layouts are
read, so any file that holds a spec opens in the editor: a bare spec (``{name, layers}``), the
wrapped form kdgui writes next to weights (``{format: kdgui-spec, spec: {...}}``, as in the demo
teacher's ``spec.json``) and a whole experiment config (its ``student.spec``). YAML goes through
``yaml.safe_load`` only, so a spec file can never run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import ConfigError
from kdgui.core.student_spec import StudentSpec

SPEC_FORMAT = "kdgui-spec"
SPEC_VERSION = 1


def spec_to_dict(spec: StudentSpec) -> dict[str, Any]:
    """The wrapped, versioned form written to files."""
    return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "spec": spec.model_dump(mode="json")}


def dump_spec(spec: StudentSpec, fmt: str = "yaml") -> str:
    data = spec_to_dict(spec)
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def save_spec(spec: StudentSpec, path: str | os.PathLike[str]) -> None:
    """Write YAML, or JSON when the name ends in ``.json``; atomic."""
    fmt = "json" if str(path).lower().endswith(".json") else "yaml"
    try:
        atomic_write_text(path, dump_spec(spec, fmt))
    except OSError as exc:
        raise ConfigError(f"cannot write '{path}': {exc.strerror or exc}",
                          "Choose a folder you can write to.") from None


def spec_from_data(data: Any, source: str = "student spec") -> StudentSpec:
    """The spec inside ``data`` (any of the three layouts); errors name the field."""
    if isinstance(data, dict) and data.get("format") == SPEC_FORMAT:
        data = data.get("spec")
    elif isinstance(data, dict) and isinstance(data.get("student"), dict):
        data = data["student"].get("spec")
        if data is None:
            raise ConfigError("this experiment config has no drawn student (student.spec)",
                              "Open a spec file, or a config whose student has a spec.",
                              source=source)
    if not isinstance(data, dict) or "layers" not in data:
        raise ConfigError("the file does not hold a student spec (no 'layers' list)",
                          "Open a file saved by the student editor, with 'name' and 'layers'.",
                          source=source)
    try:
        return StudentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise ConfigError(f"{loc or 'spec'}: {err.get('msg', 'invalid value')}",
                          "Fix that entry of the file (see the layer types in 'kdgui presets').",
                          source=source) from None


def load_spec(path: str | os.PathLike[str]) -> StudentSpec:
    """Read a spec from a YAML or JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read '{p}': {exc.strerror or exc}",
                          "Check the path and that you may read the file.") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"'{p.name}' is not valid {'JSON' if p.suffix == '.json' else 'YAML'}"
                          f": {exc}", "Fix the syntax, or save the spec again from the editor.",
                          source=str(p)) from None
    return spec_from_data(data, source=str(p))
