"""What a weights-only file needs to be rebuilt after compression changed the architecture.

Structured pruning gives layers new shapes, low-rank factorisation replaces a layer with a small
``Sequential`` of layers, and dynamic int8 swaps Linear layers for packed int8 ones: the original
architecture no longer fits the weights ("shape mismatch [150,784] vs [300,784]"). A *recipe*
records the difference as plain JSON: the base architecture (``kdgui_arch``, set when a module is
built from a name, or the kdgui spec of a spec-built student), each layer that differs from a
freshly built base (type and constructor arguments), and the layers quantized to int8.
:func:`rebuild` builds the base, swaps those layers in, quantizes them and loads the weights
strictly, so ``load_model("model.pt")`` works without ``--arch``.

Only layers whose constructor arguments can be read back are recorded (Linear, Conv, BatchNorm,
LayerNorm, GroupNorm, PReLU, and Sequentials of those). A model changed in another way gets no
recipe (:func:`recipe_of` returns None with a reason), and its export says the architecture is
needed, rather than writing a file that cannot be reloaded.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import ModelLoadError
from kdgui.engine.metrics._modules import is_quantized_module

RECIPE_VERSION = 1

_CONV = {"Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d}
_BN = {"BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d, "BatchNorm3d": nn.BatchNorm3d}


def describe(module: nn.Module) -> dict[str, Any] | None:
    """A layer's type and constructor arguments as JSON data, or None when they are unknown."""
    if is_quantized_module(module) and hasattr(module, "in_features"):
        try:
            bias = module.bias() is not None
        except (RuntimeError, AttributeError):
            bias = False
        return {"type": "Linear", "in": module.in_features, "out": module.out_features,
                "bias": bias}
    kind = type(module)
    if kind is nn.Linear:
        return {"type": "Linear", "in": module.in_features, "out": module.out_features,
                "bias": module.bias is not None}
    if kind in _CONV.values():
        padding = module.padding if isinstance(module.padding, str) else list(module.padding)
        return {"type": kind.__name__, "in": module.in_channels, "out": module.out_channels,
                "kernel": list(module.kernel_size), "stride": list(module.stride),
                "padding": padding, "dilation": list(module.dilation), "groups": module.groups,
                "bias": module.bias is not None, "padding_mode": module.padding_mode}
    if kind in _BN.values():
        return {"type": kind.__name__, "features": module.num_features, "eps": module.eps,
                "momentum": module.momentum, "affine": module.affine,
                "track": module.track_running_stats}
    if kind is nn.LayerNorm:
        return {"type": "LayerNorm", "shape": list(module.normalized_shape), "eps": module.eps,
                "affine": module.elementwise_affine, "bias": getattr(module, "bias", None)
                is not None}
    if kind is nn.GroupNorm:
        return {"type": "GroupNorm", "groups": module.num_groups, "channels": module.num_channels,
                "eps": module.eps, "affine": module.affine}
    if kind is nn.PReLU:
        return {"type": "PReLU", "num": module.num_parameters}
    if kind is nn.Sequential:
        children = [describe(child) for child in module]
        if any(c is None for c in children):
            return None
        out: dict[str, Any] = {"type": "Sequential", "children": children}
        rank = getattr(module, "kdgui_rank", None)
        if rank is not None:
            out["rank"] = list(rank) if isinstance(rank, tuple) else rank
        return out
    return None


def build_layer(desc: dict[str, Any]) -> nn.Module:
    """The module :func:`describe` described (freshly initialised)."""
    kind = desc["type"]
    if kind == "Linear":
        return nn.Linear(desc["in"], desc["out"], bias=desc["bias"])
    if kind in _CONV:
        padding = desc["padding"] if isinstance(desc["padding"], str) else tuple(desc["padding"])
        return _CONV[kind](desc["in"], desc["out"], tuple(desc["kernel"]), tuple(desc["stride"]),
                           padding, tuple(desc["dilation"]), desc["groups"], desc["bias"],
                           desc["padding_mode"])
    if kind in _BN:
        return _BN[kind](desc["features"], desc["eps"], desc["momentum"], desc["affine"],
                         desc["track"])
    if kind == "LayerNorm":
        return nn.LayerNorm(desc["shape"], desc["eps"], desc["affine"], bias=desc["bias"])
    if kind == "GroupNorm":
        return nn.GroupNorm(desc["groups"], desc["channels"], desc["eps"], desc["affine"])
    if kind == "PReLU":
        return nn.PReLU(desc["num"])
    if kind == "Sequential":
        seq = nn.Sequential(*(build_layer(c) for c in desc["children"]))
        if "rank" in desc:
            rank = desc["rank"]
            seq.kdgui_rank = tuple(rank) if isinstance(rank, list) else rank
        return seq
    raise ModelLoadError(f"the file's architecture recipe names an unknown layer type '{kind}'",
                         "It was written by a newer KD Studio; update, or pass --arch")


def base_of(model: nn.Module) -> dict[str, Any] | None:
    """How the uncompressed model was built: a named architecture or a kdgui spec."""
    arch = getattr(model, "kdgui_arch", None)
    if isinstance(arch, dict) and arch.get("arch"):
        return {"kind": "arch", **arch}
    spec = getattr(model, "kdgui_spec", None)
    if spec is not None and hasattr(spec, "model_dump") and hasattr(model, "input_shape"):
        return {"kind": "spec", "spec": spec.model_dump(mode="json"),
                "input_shape": list(model.input_shape), "num_classes": model.num_classes}
    return None


def build_base(base: dict[str, Any]) -> nn.Module:
    """A fresh module of the recorded base architecture."""
    if base.get("kind") == "spec":
        from kdgui.core.student_spec import StudentSpec
        from kdgui.engine.models.spec_build import build_from_spec

        spec = StudentSpec.model_validate(base["spec"])
        return build_from_spec(spec, tuple(base["input_shape"]), int(base["num_classes"]))
    from kdgui.engine.models.arch import build_arch

    built = build_arch(base["arch"], num_classes=base.get("num_classes"), input_shape=None,
                       arch_kwargs=dict(base.get("arch_kwargs") or {}), pretrained=False)
    return built.module


def recipe_of(model: nn.Module) -> tuple[dict[str, Any] | None, str]:
    """``(recipe, "")``, or ``(None, why not)`` when the model cannot be rebuilt from data."""
    base = base_of(model)
    if base is None:
        return None, "the model was not built from a named architecture or a kdgui spec"
    try:  # on the meta device: only the structure is compared, nothing is allocated
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fresh = dict(build_base(base).named_modules())
    except Exception as exc:  # the base cannot be built here (a moved file, a missing package)
        return None, f"its base architecture cannot be built again ({type(exc).__name__})"
    if not _same_type(model, fresh[""]):
        return None, (f"the model's class changed from {type(fresh['']).__name__} to "
                      f"{type(model).__name__} (e.g. a torch.fx int8 model)")
    layers: dict[str, Any] = {}
    quantized = [n for n, m in model.named_modules() if is_quantized_module(m)]
    done: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in done):
            continue
        ref = fresh.get(name)
        desc = describe(module)
        if is_quantized_module(module):
            if not type(module).__module__.startswith("torch.ao.nn.quantized.dynamic") or (
                    desc is None):
                return None, f"the int8 layer '{name}' ({type(module).__name__}) is not dynamic"
            done.append(name)
            if ref is None or describe(ref) != desc:
                layers[name] = desc
            continue
        if ref is not None and _same_type(ref, module) and (desc is None
                                                             or describe(ref) == desc):
            continue  # unchanged (or a container: its children are compared one by one)
        if desc is None:
            return None, f"the layer '{name}' ({type(module).__name__}) cannot be recorded"
        layers[name] = desc
        done.append(name)
    recipe: dict[str, Any] = {"version": RECIPE_VERSION, "base": base, "layers": layers}
    if quantized:
        recipe["quantize"] = {"method": "dynamic", "dtype": "qint8", "layers": quantized}
    return recipe, ""


def _same_type(a: nn.Module, b: nn.Module) -> bool:
    """Same class by name: a model file imported twice defines equal classes, not the same."""
    ta, tb = type(a), type(b)
    return ta is tb or (ta.__module__, ta.__qualname__) == (tb.__module__, tb.__qualname__)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def rebuild(recipe: dict[str, Any], state: dict[str, Any], *, source: str,
            base: dict[str, Any] | None = None) -> nn.Module:
    """The compressed model ``recipe`` describes, carrying ``state`` (eval mode).

    ``base`` (the user's ``--arch``) replaces the recorded base architecture.
    """
    if int(recipe.get("version", 0)) > RECIPE_VERSION:
        raise ModelLoadError("the file's architecture recipe is newer than this KD Studio",
                             "Update KD Studio, or pass --arch", source=source)
    base = base or recipe["base"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_base(base)
        for name, desc in recipe.get("layers", {}).items():
            try:
                _replace(model, name, build_layer(desc))
            except AttributeError:
                raise ModelLoadError(f"the architecture has no layer '{name}' to rebuild",
                                     "Pass the --arch the model was compressed from",
                                     source=source) from None
        quant = recipe.get("quantize")
        model.eval()
        if quant:
            from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

            model = quantize_dynamic(model, {n: default_dynamic_qconfig for n in quant["layers"]},
                                     dtype=torch.qint8, inplace=False)
            for name in quant["layers"]:
                model.get_submodule(name).kdgui_bits = 8
    try:
        model.load_state_dict(_strip(state), strict=True)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        raise ModelLoadError(
            f"the weights do not fit the recorded architecture: {' '.join(first[:2])[:300]}",
            "The file and its metadata do not belong together; export the model again",
            source=source) from None
    if base.get("kind") == "arch":  # a reloaded model can be compressed and exported again
        model.kdgui_arch = {k: v for k, v in base.items() if k != "kind"}
    return model.eval()


def _strip(state: dict[str, Any]) -> dict[str, Any]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def plain_state(obj: Any) -> dict[str, Any] | None:
    """A state_dict that may hold non-tensor entries (int8 packed params): any str-keyed map."""
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        return obj
    return None

