"""Turn an architecture reference (``ModelRef.arch``) into a freshly initialised module.

Forms: ``torchvision:NAME`` (or a bare torchvision model name), ``timm:NAME`` and ``hf:FOLDER``
(see :mod:`.hub`), ``preset:NAME`` (a kdgui preset),
``spec:PATH.json`` (a kdgui spec file, as written next to the demo teacher) and
``path/to/model.py:ClassName``. Importing a ``.py`` file runs it: that is what naming a Python
file asks for, so it needs no ``trust`` flag, unlike unpickling a file that *looks* like data.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from kdgui.core.errors import ConfigError, ModelLoadError
from kdgui.core.student_spec import StudentSpec

ARCH_FORMS = ("'torchvision:NAME', 'timm:NAME', 'hf:FOLDER', 'preset:NAME', 'spec:FILE.json' or "
              "'path/to/model.py:ClassName'")


@dataclass
class BuiltArch:
    """A module plus what building it revealed about its inputs and outputs."""

    module: nn.Module
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def build_arch(arch: str, *, num_classes: int | None, input_shape: tuple[int, ...] | None,
               arch_kwargs: dict[str, Any] | None = None, pretrained: bool = False) -> BuiltArch:
    """Build the module ``arch`` names; every user mistake is a :class:`ModelLoadError`."""
    kwargs = dict(arch_kwargs or {})
    kind, sep, rest = arch.partition(":")
    if sep and kind == "torchvision":
        return _torchvision(rest, num_classes, kwargs, pretrained)
    if sep and kind == "timm":
        from kdgui.engine.models.hub import build_timm

        module, n = build_timm(rest, num_classes, kwargs, pretrained)
        return _tagged(BuiltArch(module, None, n, {"arch": arch, "pretrained": pretrained}),
                       arch, n, kwargs)
    if sep and kind == "hf":
        from kdgui.engine.models.hub import build_hf

        folder = str(Path(rest).expanduser().resolve())
        hf, shape, n = build_hf(Path(folder), num_classes, weights=False)
        return _tagged(BuiltArch(hf, shape, n, {"arch": f"hf:{folder}"}), f"hf:{folder}", n, {})
    if sep and kind == "preset":
        return _preset(rest, num_classes, input_shape, kwargs)
    if sep and kind == "spec":
        return load_spec_file(Path(rest))
    file_part, sep2, cls_name = arch.rpartition(":")
    if sep2 and file_part.endswith(".py"):
        built = _from_file(Path(file_part), cls_name, num_classes, dict(kwargs))
        where = f"{Path(file_part).expanduser().resolve()}:{cls_name}"
        return _tagged(built, where, built.num_classes, kwargs)
    if not sep and arch in _torchvision_names():
        return _torchvision(arch, num_classes, kwargs, pretrained)
    raise ModelLoadError(f"cannot understand the architecture '{arch}'",
                         f"Write it as {ARCH_FORMS}", source="arch")


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _torchvision(name: str, num_classes: int | None, kwargs: dict[str, Any],
                 pretrained: bool) -> BuiltArch:
    import torchvision

    names = _torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"Did you mean {', '.join(close)}?" if close else "Run 'kdgui models' for the list."
        raise ModelLoadError(f"torchvision has no model called '{name}'", hint, source="arch")
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    weights = "DEFAULT" if pretrained else None
    try:
        module = torchvision.models.get_model(name, weights=weights, **kwargs)
    except (TypeError, ValueError) as exc:
        fix = ("Pretrained weights come with their own number of classes; drop num_classes or "
               "pretrained" if pretrained else "Check arch_kwargs against the torchvision docs")
        raise ModelLoadError(f"torchvision:{name} refused its arguments {kwargs}: {exc}", fix,
                             source="arch") from None
    except Exception as exc:  # the hub download: URLError, OSError, HTTP errors...
        if not pretrained:
            raise
        raise ModelLoadError(
            f"could not download the pretrained weights of torchvision:{name} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            "Connect to the network once (weights are cached afterwards), or turn 'pretrained' "
            "off to start from random weights",
            source="arch",
        ) from None
    n = getattr(module, "num_classes", None) or kwargs.get("num_classes")
    if n is None and not pretrained:
        n = 1000
    built = BuiltArch(module, None, n, {"arch": f"torchvision:{name}", "pretrained": pretrained})
    return _tagged(built, f"torchvision:{name}", n, kwargs)


def _tagged(built: BuiltArch, arch: str, num_classes: int | None,
            kwargs: dict[str, Any]) -> BuiltArch:
    """Remember on the module how to build it again (``kdgui_arch``).

    Compression changes layers in place; an export of the result records this base plus the
    changed layers (:mod:`.rebuild`), so the file reloads without ``--arch``.
    """
    clean = {k: v for k, v in kwargs.items() if k != "num_classes"}
    try:
        json.dumps(clean)
    except TypeError:  # arguments JSON cannot hold: the module cannot be rebuilt from data
        return built
    built.module.kdgui_arch = {"arch": arch, "num_classes": num_classes, "arch_kwargs": clean}
    return built


def _preset(name: str, num_classes: int | None, input_shape: tuple[int, ...] | None,
            kwargs: dict[str, Any]) -> BuiltArch:
    from kdgui.core.presets import get_preset
    from kdgui.engine.models.spec_build import build_from_spec

    if input_shape is None or num_classes is None:
        raise ModelLoadError(
            f"preset:{name} needs the input shape and the number of classes to be built",
            "Load it together with a dataset, or give num_classes and the input shape",
            source="arch",
        )
    try:
        preset = get_preset(name)
        spec = preset.build(tuple(input_shape), num_classes, float(kwargs.pop("width", 1.0)))
        module = build_from_spec(spec, tuple(input_shape), num_classes)
    except ConfigError as exc:
        raise ModelLoadError(exc.what, exc.fix, source="arch") from None
    return BuiltArch(module, tuple(input_shape), num_classes,
                     {"arch": f"preset:{name}", "spec": spec.model_dump()})


def load_spec_file(path: Path) -> BuiltArch:
    """A spec JSON file: ``{"spec": ..., "input_shape": [...], "num_classes": N, ...}``.

    The extra keys (class names, normalisation, accuracy) come back as metadata.
    """
    from kdgui.engine.models.spec_build import build_from_spec

    src = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"the spec file '{path}' does not exist", "Check the path",
                             source=src) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the spec file as JSON ({exc})",
                             "Give a spec JSON file written by kdgui", source=src) from None
    try:
        spec = StudentSpec.model_validate(data["spec"])
        input_shape = tuple(int(s) for s in data["input_shape"])
        num_classes = int(data["num_classes"])
    except Exception as exc:
        raise ModelLoadError(
            f"the spec file is missing or has a bad 'spec', 'input_shape' or 'num_classes' "
            f"({str(exc).splitlines()[0]})",
            "Give a spec JSON file written by kdgui", source=src) from None
    try:
        module = build_from_spec(spec, input_shape, num_classes)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ModelLoadError(exc.what, exc.fix, source=src) from None
    meta = {k: v for k, v in data.items() if k not in ("spec",)}
    meta["spec"] = spec.model_dump()
    return BuiltArch(module, input_shape, num_classes, meta)  # type: ignore[arg-type]


def _from_file(path: Path, cls_name: str, num_classes: int | None,
               kwargs: dict[str, Any]) -> BuiltArch:
    src = str(path)
    if not path.is_file():
        raise ModelLoadError(f"the architecture file '{path}' does not exist", "Check the path",
                             source="arch")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    mod_name = f"kdgui_user_arch_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError("cannot import this file as Python", "Give a .py file",
                             source=src)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        line = next((f" (line {f.lineno})" for f in reversed(tb) if f.filename == str(path)), "")
        raise ModelLoadError(f"importing the file failed{line}: {type(exc).__name__}: {exc}",
                             "Fix the error in the file, or run it with python to see it",
                             source=src) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == mod_name)
        raise ModelLoadError(
            f"the file has no nn.Module class called '{cls_name}'",
            f"Use one of: {', '.join(found)}" if found else "Define an nn.Module subclass in it",
            source=src)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if num_classes is not None and "num_classes" not in kwargs and (
            "num_classes" in params or takes_any):
        kwargs["num_classes"] = num_classes
    try:
        instance = cls(**kwargs)
    except Exception as exc:
        raise ModelLoadError(f"{cls_name}({_kw(kwargs)}) failed: {type(exc).__name__}: {exc}",
                             "Pass the constructor's arguments in arch_kwargs", source=src) from None
    n = kwargs.get("num_classes")
    return BuiltArch(instance, None, n, {"arch": f"{path}:{cls_name}"})


def _kw(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
