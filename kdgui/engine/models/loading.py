"""Load teachers (and students) from files safely.

Formats are recognised by content (:mod:`.sniff`). Pickles are only ever opened with
``torch.load(weights_only=True)``, which cannot run code; a file that needs arbitrary Python
objects (a whole pickled ``nn.Module``) raises :class:`TrustRequired` unless the user passed
``trust``. Every user-caused failure is a :class:`ModelLoadError` naming the file and the fix.

LoadedModel, the weights helpers (read_safetensors, load_weights, find_state_dict, set_mode) and
the spec + safetensors format live in :mod:`.weights`, which the demo teacher uses too.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.config import ModelRef
from kdgui.core.errors import ModelLoadError, TrustRequired
from kdgui.core.trust import announce_trusted_load
from kdgui.engine.models import sniff
from kdgui.engine.models.arch import ARCH_FORMS, build_arch
from kdgui.engine.models.demo import load_demo_teacher
from kdgui.engine.models.frozen import (
    load_onnx,
    load_torchscript,
    wrap_program,
)
from kdgui.engine.models.hub import build_hf, is_hf_folder
from kdgui.engine.models.rebuild import plain_state, rebuild
from kdgui.engine.models.weights import (
    LoadedModel,
    find_state_dict,
    finish_loaded,
    first_line,
    load_weights,
    loaded_from_built,
    read_safetensors,
)


def load_model(ref: ModelRef, *, input_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None) -> LoadedModel:
    """Load the model ``ref`` describes; ``input_shape``/``num_classes`` come from the data.

    ``ref.num_classes`` wins over ``num_classes`` for building an architecture (the checkpoint
    may have a head of another size; :func:`check_compatibility` reports that clearly).
    """
    n_cls = ref.num_classes if ref.num_classes is not None else num_classes
    if ref.path == "demo":
        return load_demo_teacher()
    if ref.path is None:
        if not ref.arch:
            raise ModelLoadError("no model given: neither a file nor an architecture",
                                 f"Set a model file (path) or an architecture ({ARCH_FORMS})")
        built = build_arch(ref.arch, num_classes=n_cls, input_shape=input_shape,
                           arch_kwargs=ref.arch_kwargs, pretrained=ref.pretrained)
        return loaded_from_built(built, "architecture", ref.arch, input_shape)

    path = Path(ref.path).expanduser()
    src = str(path)
    if is_hf_folder(path):
        return _hf_folder(path, src)
    fmt = sniff.sniff(path)
    if fmt == sniff.TORCHSCRIPT:
        module = _guard(lambda: load_torchscript(path), src, fmt)
        return finish_loaded(LoadedModel(module, fmt, src, input_shape, n_cls, {}))
    if fmt == sniff.EXPORT:
        return finish_loaded(_load_pt2(path, input_shape, n_cls))
    if fmt == sniff.KDC:  # rebuilt from the architecture recorded in the file
        from kdgui.engine.export import load_exported

        kdc = load_exported(path, fmt="deepc")
        return finish_loaded(LoadedModel(kdc.module, fmt, src, input_shape, n_cls,
                                         dict(kdc.metadata)))
    if fmt == sniff.ONNX:
        module = _guard(lambda: load_onnx(path), src, fmt)
        shape = module.input_shape() or input_shape
        meta = {"fixed_batch": module.fixed_batch} if module.fixed_batch else {}
        return finish_loaded(LoadedModel(module, fmt, src, shape, n_cls, meta))
    meta = _weights_metadata(path)
    if fmt == sniff.SAFETENSORS:
        state = read_safetensors(path)
        if isinstance(meta.get("rebuild"), dict):
            return _from_recipe(state, meta, ref, n_cls, fmt, src)
        embedded = None if ref.arch else embedded_architecture(path)
        if embedded is not None:
            return _from_embedded(state, embedded, fmt, src)
        return _with_arch(state, ref, fmt, src, input_shape, n_cls)
    obj = load_pickle(path, trust=ref.trust)
    if isinstance(obj, nn.Module):
        return finish_loaded(LoadedModel(obj, "pickled_module", src, input_shape, n_cls,
                                   {"class": type(obj).__name__}))
    if isinstance(meta.get("rebuild"), dict) and plain_state(obj) is not None:
        return _from_recipe(plain_state(obj), meta, ref, n_cls, fmt, src)  # type: ignore[arg-type]
    state = find_state_dict(obj)
    embedded = None if ref.arch or state is None else embedded_architecture(path)
    if embedded is not None:
        return _from_embedded(state, embedded, fmt, src)
    if state is None:
        raise ModelLoadError(
            f"the file holds a {type(obj).__name__}, neither a model nor a state_dict",
            "Save the model's state_dict() (or the model with torch.jit/torch.export)",
            source=src)
    return _with_arch(state, ref, fmt, src, input_shape, n_cls)


def _hf_folder(path: Path, src: str) -> LoadedModel:
    """A Hugging Face image classifier saved with ``save_pretrained`` (config + weights)."""
    module, shape, n = build_hf(path, None, weights=True)
    folder = str(path.resolve())
    module.kdgui_arch = {"arch": f"hf:{folder}", "num_classes": n, "arch_kwargs": {}}
    return finish_loaded(LoadedModel(module, "hf_folder", src, shape, n, {"arch": f"hf:{folder}"}))


def _weights_metadata(path: Path) -> dict[str, Any]:
    """The KD Studio metadata of a weights file (safetensors header or ``.json`` sidecar)."""
    from kdgui.engine.export import read_metadata

    fmt = "safetensors" if sniff.sniff(path) == sniff.SAFETENSORS else "state_dict"
    try:
        meta = read_metadata(path, fmt)
    except Exception:  # not ours, or unreadable: treated as plain weights
        return {}
    return meta if isinstance(meta, dict) else {}


def _from_recipe(state: dict[str, Any], meta: dict[str, Any], ref: ModelRef,
                 n_cls: int | None, fmt: str, src: str) -> LoadedModel:
    """A compressed model rebuilt from the recipe its export recorded (see :mod:`.rebuild`)."""
    recipe = meta["rebuild"]
    base = None
    if ref.arch:  # the user's architecture wins over the recorded one; the changes still apply
        base = {"kind": "arch", "arch": ref.arch, "arch_kwargs": dict(ref.arch_kwargs or {}),
                "num_classes": recipe["base"].get("num_classes", n_cls)}
    module = rebuild(recipe, state, source=src, base=base)
    shape = tuple(int(v) for v in meta["input_shape"]) if meta.get("input_shape") else None
    classes = meta.get("num_classes") or recipe["base"].get("num_classes") or n_cls
    keep = {k: meta[k] for k in ("class_names", "mean", "std") if k in meta}
    arch = (base or recipe["base"]).get("arch") or "kdgui spec"
    return finish_loaded(LoadedModel(module, fmt, src, shape, classes,
                               {"arch": arch, "rebuilt": True, **keep}))


def _guard(fn: Any, src: str, fmt: str) -> Any:
    """Run a loader; turn its failures on damaged files into one-line errors."""
    try:
        return fn()
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
            pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"the {sniff.TITLES.get(fmt, fmt)} cannot be read: {first[:200]}",
            "The file may be truncated or damaged, or written by a newer PyTorch; save it again",
            source=src) from None


def _load_pt2(path: Path, input_shape: tuple[int, ...] | None,
              n_cls: int | None) -> LoadedModel:
    src = str(path)
    program = _guard(lambda: torch.export.load(str(path)), src, sniff.EXPORT)
    meta: dict[str, Any] = {}
    shapes = [tuple(n.meta["val"].shape) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in program.graph_signature.user_inputs
              and hasattr(n.meta.get("val"), "shape")]
    if len(shapes) == 1:
        dims = shapes[0]
        static = [d if isinstance(d, int) else None for d in dims]
        if all(d is not None for d in static[1:]):
            input_shape = input_shape or tuple(static[1:])  # type: ignore[arg-type]
        if static and static[0] is not None:
            meta["fixed_batch"] = static[0]
    module = wrap_program(program.module(), meta.get("fixed_batch"), src)
    return LoadedModel(module, sniff.EXPORT, src, input_shape, n_cls, meta)


def load_pickle(path: Path, *, trust: bool) -> Any:
    """``torch.load`` with ``weights_only=True``; with ``trust``, full unpickling."""
    src = str(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower() and "unsupported global" not in str(
                exc).lower():
            raise ModelLoadError(f"the torch.save file cannot be read: {first_line(exc)}",
                                 "The file is truncated or damaged; save it again",
                                 source=src) from None
        if not trust:
            raise TrustRequired(
                "this file is a pickled Python object that can run code when loaded",
                "Only if you trust its source, pass --trust (or set teacher.trust: true)",
                source=src) from None
    except Exception as exc:  # RuntimeError, EOFError, OSError, SafetensorError (by suffix), ...
        raise ModelLoadError(f"the torch.save file cannot be read: {first_line(exc)}",
                             "The file is truncated or damaged; save it again",
                             source=src) from None
    announce_trusted_load(path)  # say what was trusted, with its hash, and when
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ModelLoadError(
            f"the pickled model needs Python code that is not importable here: {first_line(exc)}",
            "Install or put on PYTHONPATH the package that defines the model's classes, or "
            "save a state_dict and load it with an architecture",
            source=src) from None
    except Exception as exc:
        raise ModelLoadError(f"the torch.save file cannot be unpickled: {first_line(exc)}",
                             "The file is damaged or needs code from elsewhere", source=src
                             ) from None


def _with_arch(state: dict[str, Tensor], ref: ModelRef, fmt: str, src: str,
               input_shape: tuple[int, ...] | None, n_cls: int | None) -> LoadedModel:
    if not ref.arch:
        raise ModelLoadError(
            f"this file holds only weights (a state_dict with {len(state)} tensors)",
            f"Pass --arch with the architecture they belong to ({ARCH_FORMS})",
            source=src)
    built = build_arch(ref.arch, num_classes=n_cls, input_shape=input_shape,
                       arch_kwargs=ref.arch_kwargs, pretrained=False)
    load_weights(built.module, state, arch=ref.arch, source=src)
    loaded = loaded_from_built(built, fmt, src, input_shape)
    loaded.metadata["arch"] = ref.arch
    return loaded


def embedded_architecture(path: Path) -> dict | None:
    """The kdgui metadata saved with a weights file, when it names a spec architecture.

    KD Studio writes its students' architecture (a StudentSpec) into safetensors metadata and
    into the ``.json`` sidecar of a state_dict (see :mod:`kdgui.engine.export`), so its own files
    reload without ``--arch``.
    """
    from kdgui.engine.export import read_metadata

    fmt = "safetensors" if path.suffix == ".safetensors" else "state_dict"
    try:
        meta = read_metadata(path, fmt)
    except Exception:  # not ours, or no readable metadata: the caller asks for --arch
        return None
    arch = meta.get("architecture") if isinstance(meta, dict) else None
    if not isinstance(arch, dict) or "layers" not in arch:
        return None
    if not meta.get("input_shape") or not meta.get("num_classes"):
        return None
    return meta


def _from_embedded(state: dict[str, Tensor], meta: dict, fmt: str, src: str) -> LoadedModel:
    from kdgui.core.student_spec import StudentSpec
    from kdgui.engine.models.spec_build import build_from_spec

    spec = StudentSpec.model_validate(meta["architecture"])
    shape = tuple(int(v) for v in meta["input_shape"])
    classes = int(meta["num_classes"])
    module = build_from_spec(spec, shape, classes)
    load_weights(module, state, arch="embedded kdgui spec", source=src)
    keep = {k: meta[k] for k in ("class_names", "mean", "std") if k in meta}
    return finish_loaded(LoadedModel(module.eval(), fmt, src, shape, classes,
                               {"arch": "embedded kdgui spec", **keep}))
