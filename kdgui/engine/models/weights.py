"""What every model loader shares: :class:`LoadedModel`, and pickle-free weights.

Reading .safetensors files, finding a state_dict in a checkpoint, loading weights strictly with
a clear mismatch message, and kdgui's own spec JSON + safetensors format live here, apart from
:mod:`.loading` (which picks a loader by file format). The bundled demo teacher
(:mod:`.demo`) needs only this part; keeping it here means ``loading`` may dispatch to ``demo``
without the two importing each other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from kdgui.core.errors import ModelLoadError
from kdgui.engine.models import sniff
from kdgui.engine.models.arch import BuiltArch, load_spec_file

SHOW_KEYS = 3


@dataclass
class LoadedModel:
    """A loaded model in eval mode, plus what is known about its inputs and outputs."""

    module: nn.Module
    format: str
    source: str
    input_shape: tuple[int, ...] | None
    num_classes: int | None
    metadata: dict[str, Any] = field(default_factory=dict)


def finish_loaded(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` with its module in eval mode: every loader returns models this way."""
    set_mode(loaded.module, training=False)
    return loaded


def set_mode(module: nn.Module, *, training: bool) -> None:
    """``module.train(training)``; torch.export modules refuse it and keep their export mode."""
    with contextlib.suppress(NotImplementedError):
        module.train(training)


def loaded_from_built(built: BuiltArch, fmt: str, src: str,
                      input_shape: tuple[int, ...] | None) -> LoadedModel:
    """A built architecture as a :class:`LoadedModel` (the data's input shape as a fallback)."""
    return finish_loaded(LoadedModel(built.module, fmt, src, built.input_shape or input_shape,
                               built.num_classes, dict(built.metadata)))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (capped), for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def read_safetensors(path: Path) -> dict[str, Any]:
    """All tensors of a .safetensors file (no pickle involved).

    A KD Studio int8 export stores packed weights as int8 values plus scales with a layout in
    the header (:mod:`kdgui.engine.export.packing`); they are reassembled here.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from kdgui.engine.export.packing import LAYOUT_KEY, unpack_state

    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # SafetensorError and friends: the file is damaged
        raise ModelLoadError(
            f"the safetensors file cannot be read: {first_line(exc)}",
            "The file may be truncated or damaged; save or download it again",
            source=str(path)) from None
    if LAYOUT_KEY in header:
        return unpack_state(tensors, json.loads(header[LAYOUT_KEY]))
    return tensors


_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")


def find_state_dict(obj: Any) -> dict[str, Tensor] | None:
    """The state_dict in ``obj``: the dict itself, or a common checkpoint key holding one."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return dict(obj)
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            found = find_state_dict(inner) if isinstance(inner, Mapping) else None
            if found is not None:
                return found
    return None


def load_weights(module: nn.Module, state: dict[str, Tensor], *, arch: str, source: str) -> None:
    """Load ``state`` strictly; a mismatch names the first differing keys and shapes."""
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): " + ", ".join(
                f"{k} file {_shp(state[k])} vs model {_shp(own[k])}"
                for k in mismatched[:SHOW_KEYS]))
        if missing:
            parts.append(f"{len(missing)} missing: " + ", ".join(
                f"{k} {_shp(own[k])}" for k in missing[:SHOW_KEYS]))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: " + ", ".join(
                f"{k} {_shp(state[k])}" for k in unexpected[:SHOW_KEYS]))
        last = next(reversed(own)).rsplit(".", 1)[0] if own else ""
        head_only = (not missing and not unexpected
                     and all(k.rsplit(".", 1)[0] == last for k in mismatched))
        fix = (f"Only the classifier differs: set num_classes to {state[mismatched[0]].shape[0]}"
               if head_only else
               "Pick the architecture (and arch_kwargs) the weights were saved from")
        raise ModelLoadError(f"the architecture {arch} does not match the weights: "
                             + "; ".join(parts), fix, source=source)
    module.load_state_dict(state, strict=True)


def _shp(t: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def load_spec_with_weights(spec_json: Path, weights: Path) -> LoadedModel:
    """A spec JSON file plus a .safetensors file: kdgui's own pickle-free model format."""
    built = load_spec_file(spec_json)
    state = read_safetensors(weights)
    load_weights(built.module, state, arch=f"spec:{spec_json}", source=str(weights))
    return loaded_from_built(built, sniff.SAFETENSORS, str(weights), built.input_shape)
