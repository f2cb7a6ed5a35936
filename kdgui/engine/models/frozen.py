"""``FrozenTeacher``: models whose code cannot be changed, behind the usual ``nn.Module`` surface.

Loaded TorchScript archives, torch.export programs and ONNX files are not ordinary modules: a
``torch.jit.load``-ed ScriptModule rejects ``requires_grad_()`` and ``register_forward_hook()``,
the module of a loaded ``.pt2`` rejects ``.eval()``/``.train()`` and fails its guards on any batch
size other than a fixed exported one, and an ONNX file is run by onnxruntime, not by torch. Rather
than teach every caller (the session, the distiller, the metrics, the exporters) about each
format, :func:`kdgui.engine.models.load_model` wraps them in this class, whose ``.eval()``,
``.train()``, ``.to()``, ``.parameters()``, ``requires_grad_()``, ``state_dict()`` and
``deepcopy`` are safe, and whose ``forward`` runs a fixed-batch program in chunks of its batch
size (the last chunk padded with zeros and the padding dropped from the output).

The wrapped object is deliberately *not* a registered submodule, so nothing walks into it to hook
or switch its layers; ``kdgui_opaque`` names the format for messages such as "feature losses need
the teacher's feature maps, which a TorchScript teacher cannot give".
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: The formats that *can* give feature maps (named in the messages for those that cannot).
FEATURE_FORMATS = (
    "a state_dict or .safetensors file with its architecture (--arch), a torchvision or timm "
    "architecture name, or a Hugging Face folder"
)


class FrozenTeacher(nn.Module):
    """A TorchScript, torch.export or ONNX model with a safe ``nn.Module`` surface.

    ``kind`` is ``"torchscript"``, ``"pt2"`` or ``"onnx"``; ``fixed_batch`` is the only batch size
    the program accepts (None when any batch works). ``inner`` is the ScriptModule, the
    ``ExportedProgram.module()`` or the onnxruntime session.
    """

    def __init__(self, inner: Any, kind: str, title: str, *, fixed_batch: int | None = None,
                 path: str | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "inner", inner)  # not a submodule: see the module docstring
        self.kind = kind
        self.kdgui_opaque = title
        #: TorchScript parameters train like any others; a .pt2 program keeps its export mode
        #: and an ONNX file has no gradients, so those two cannot be students.
        self.kdgui_trainable = kind == "torchscript"
        self.fixed_batch = fixed_batch
        self.path = path
        self._onnx_params: list[nn.Parameter] = []

    # -- the nn.Module surface, made safe ------------------------------------------------------
    def train(self, mode: bool = True) -> FrozenTeacher:
        """Set the flag; a ScriptModule follows it, a .pt2 program keeps its export mode."""
        self.training = mode
        if self.kind == "torchscript":
            self.inner.train(mode)
        return self

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        """The wrapped model's parameters (the ONNX file's initializers), whatever ``recurse``."""
        if self.kind == "onnx":
            for i, param in enumerate(self._onnx_params):
                yield f"{prefix}initializer_{i}", param
            return
        yield from self.inner.named_parameters(prefix=prefix, recurse=True)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        if self.kind == "onnx":
            return
        yield from self.inner.named_buffers(prefix=prefix, recurse=True)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        if self.kind == "onnx":
            return {name: p.detach() for name, p in self.named_parameters()}
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if self.kind == "onnx":
            raise RuntimeError("an ONNX teacher cannot load a state_dict")
        return self.inner.load_state_dict(state_dict, strict=strict)

    def _apply(self, fn: Any, recurse: bool = True) -> FrozenTeacher:  # type: ignore[override]
        """``.to()``/``.cuda()``/``.half()`` reach the wrapped model (onnxruntime stays on CPU)."""
        if self.kind != "onnx":
            self.inner._apply(fn)
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenTeacher:
        clone = FrozenTeacher(copy.deepcopy(self.inner, memo), self.kind, self.kdgui_opaque,
                              fixed_batch=self.fixed_batch, path=self.path)
        clone.training = self.training
        clone.kdgui_trainable = self.kdgui_trainable
        return clone

    def extra_repr(self) -> str:
        batch = f", fixed batch {self.fixed_batch}" if self.fixed_batch else ""
        return f"{self.kdgui_opaque}{batch}"

    # -- running it ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits for ``x``; a fixed-batch program runs in chunks of its batch size."""
        batch = self.fixed_batch
        if batch is None or x.shape[0] == batch:
            return self._run(x)
        outs = []
        for start in range(0, x.shape[0], batch):
            chunk = x[start:start + batch]
            n = chunk.shape[0]
            if n < batch:
                pad = chunk.new_zeros((batch - n, *chunk.shape[1:]))
                chunk = torch.cat([chunk, pad])
            outs.append(self._run(chunk)[:n])
        return torch.cat(outs)

    def _run(self, x: Tensor) -> Tensor:
        return _as_tensor(self.inner(x))


class OnnxModel(FrozenTeacher):
    """An ONNX file run by onnxruntime on CPU: tensors in, the first output as a tensor out.

    Used for ONNX teachers and for the int8 files of the ``onnx-int8`` quantizer alike (it is
    that quantizer's ``OnnxRuntimeModel``). ``path`` is the file; a deep copy reopens it, since
    a session cannot be copied. The initializers appear as frozen parameters, so parameter
    counts and sizes work as for any model.
    """

    def __init__(self, path: str | Path) -> None:
        session = onnx_session(Path(path))
        dims = session.get_inputs()[0].shape
        fixed = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
        super().__init__(session, "onnx", "ONNX", fixed_batch=fixed, path=str(path))
        self.path = Path(path)  # type: ignore[assignment]
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._onnx_params = _onnx_initializers(str(path))

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxModel:
        clone = type(self)(self.path)
        for key in ("kdgui_bits", "kdgui_prune_state"):
            if key in self.__dict__:
                setattr(clone, key, self.__dict__[key])
        return clone

    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's input shape from the file's input, when all its dims are numbers."""
        dims = self.session.get_inputs()[0].shape[1:]
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            return tuple(dims)
        return None

    def _run(self, x: Tensor) -> Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(np.asarray(out)).to(x.device)


def _as_tensor(output: Any) -> Tensor:
    """The logits of an output (a tensor, the first of a tuple, or a ``logits`` entry)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return output  # check_compatibility names the type when it is not a tensor


def _onnx_initializers(path: str) -> list[nn.Parameter]:
    """The float weights of an ONNX file as frozen tensors (for parameter counts and sizes)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path, load_external_data=True)
    out = []
    for init in proto.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == "f" and array.size > 1:
            out.append(nn.Parameter(torch.from_numpy(array.astype(np.float32)),
                                    requires_grad=False))
    return out


def load_torchscript(path: Path) -> FrozenTeacher:
    from kdgui.engine.models.script_load import load_script_module

    module = load_script_module(path)
    return FrozenTeacher(module, "torchscript", "TorchScript", path=str(path))


def wrap_program(module: nn.Module, fixed_batch: int | None, path: str) -> FrozenTeacher:
    """The ``.module()`` of a loaded torch.export program."""
    return FrozenTeacher(module, "pt2", "torch.export (.pt2)", fixed_batch=fixed_batch, path=path)


def onnx_session(path: Path) -> Any:
    """A CPU onnxruntime session that only prints errors."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_onnx(path: Path) -> OnnxModel:
    """An ONNX file run by onnxruntime; a fixed batch dimension is read from its input."""
    return OnnxModel(path)


def opaque_title(model: Any) -> str | None:
    """The format title of a model whose layers cannot be reached (None for eager modules)."""
    title = getattr(model, "kdgui_opaque", None)
    return title if isinstance(title, str) else None


def feature_maps_refusal(model: Any, role: str = "teacher") -> str | None:
    """The reason ``model`` cannot give feature maps, or None when it can."""
    title = opaque_title(model)
    if title is None:
        return None
    article = "an" if title[:1] in "AEIOU" else "a"
    return (f"feature and attention losses read the {role}'s feature maps, which {article} {title} "
            f"{role} cannot give (its layers cannot be hooked)")



def refuse_compression(model: Any, steps: list[Any]) -> None:
    """A CompressionError before any work when a step needs layers ``model`` does not expose."""
    from kdgui.core.components.compression import STEP_KINDS, method_traits
    from kdgui.core.errors import CompressionError

    title = opaque_title(model)
    if title is None:
        return
    for i, step in enumerate(steps, 1):
        if step.kind == "finetune" and getattr(model, "kdgui_trainable", False):
            continue
        # Methods declared with needs_layers=False (ONNX Runtime int8) work on the file itself;
        # fine-tuning works where the parameters train (TorchScript).
        if step.kind in STEP_KINDS and not method_traits(step.kind, step.method).needs_layers:
            continue
        what = "fine-tuning" if step.kind == "finetune" else f"{step.kind}:{step.method}"
        article = "an" if title[:1] in "AEIOU" else "a"
        raise CompressionError(
            f"compression step {i} ({what}) needs the model's layers, but {article} {title} file "
            "exposes none that can be changed",
            "Use --quantize onnx-int8 (int8 by ONNX Runtime works on any of these files); or "
            f"give the model as {FEATURE_FORMATS} to prune, decompose or quantize in PyTorch; "
            "or distill it into a student (kdgui run) and compress the student.")
