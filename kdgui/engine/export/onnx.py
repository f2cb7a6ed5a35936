"""ONNX (``.onnx``) through the torch.export-based exporter, checked by onnx and onnxruntime.

The file is written in one piece (``external_data=False``; the exporter's default would put the
weights in a ``.onnx.data`` side file that is easily lost) with a symbolic ``batch`` dimension, and
carries the metadata as JSON in its ``metadata_props`` (key ``kdgui``; every top-level key is also
stored on its own so viewers such as Netron show it). Verification runs onnx.checker and compares
onnxruntime's outputs with PyTorch's on the example and on a different batch size. A
``torch.ao`` dynamic-int8 model becomes an int8 ONNX file through ONNX Runtime's quantizer
(:mod:`.int8_onnx`).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any
from warnings import catch_warnings, filterwarnings

import numpy as np
import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.export.base import Exporter, LoadedModel, json_text
from kdgui.engine.export.failures import unsupported_error
from kdgui.engine.export.int8_onnx import ORT_INT8_TOLERANCE, float_twin, quantize_file
from kdgui.engine.export.pt2 import batch_dim_spec, tracing_input
from kdgui.engine.metrics._modules import has_quantized_modules

METADATA_KEY = "kdgui"


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings on the user's console
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _runner(session: Any) -> Any:
    """A callable running the session on a tensor and returning tensors like the model did."""
    input_name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> Any:
        array = x.detach().cpu().numpy().astype(np.float32, copy=False)
        outputs = session.run(None, {input_name: array})
        tensors = tuple(torch.from_numpy(np.asarray(o)) for o in outputs)
        return tensors[0] if len(tensors) == 1 else tensors

    return run


class OnnxExporter(Exporter):
    name = "onnx"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        import onnx

        if has_quantized_modules(model):
            return self._write_int8(model, path, example, metadata)
        warnings: list[str] = []
        try:
            program = self._export(model, example, self.dynamic_batch)
        except Exception as exc:
            if not self.dynamic_batch:
                raise unsupported_error(exc, model, self.name, "ONNX") from None
            try:  # a model whose code fixes the batch size (e.g. x.view(1, -1)) can still go
                program = self._export(model, example, False)
            except Exception:
                raise unsupported_error(exc, model, self.name, "ONNX") from None
            self.dynamic_batch = False
            warnings.append(
                f"the batch size is fixed to {example.shape[0]}: the model's code does not "
                "allow a symbolic batch dimension"
            )
        if program is None:  # pragma: no cover - only the legacy exporter returns None
            raise ExportError("the ONNX exporter returned no program", "Report this as a bug.")
        props = program.model.metadata_props
        props[METADATA_KEY] = json_text(metadata)
        for key, value in metadata.items():
            props[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
        program.save(str(path), external_data=False)
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:
            raise ExportError(
                f"the ONNX file written for this model fails onnx.checker: {exc}",
                f"Try another opset (now {getattr(self.params, 'opset', 20)}) or export to pt2.",
            ) from None
        return warnings

    def _write_int8(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        """The float twin exported, then quantized by ONNX Runtime (see :mod:`.int8_onnx`)."""
        import onnx

        float_path = path.with_name(path.stem + ".float.onnx")
        try:
            warnings = self.write(float_twin(model), float_path, example, metadata)
            quantize_file(float_path, path)
        finally:
            float_path.unlink(missing_ok=True)
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        for key, value in {**metadata, "quantized_by": "onnxruntime quantize_dynamic"}.items():
            entry = proto.metadata_props.add()
            entry.key = str(key)
            entry.value = value if isinstance(value, str) else json.dumps(value, default=str)
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json_text(
            {**metadata, "quantized_by": "onnxruntime quantize_dynamic"})
        onnx.save(proto, str(path))
        self.quantized_tolerance = ORT_INT8_TOLERANCE
        return [*warnings, "int8 ONNX: the float model quantized by ONNX Runtime "
                f"(quantize_dynamic); compared with the torch int8 model within "
                f"{ORT_INT8_TOLERANCE:g} x max(1, max|y|)"]

    def _export(self, model: nn.Module, example: torch.Tensor, dynamic: bool) -> Any:
        with contextlib.redirect_stdout(io.StringIO()), catch_warnings():
            # A .pt2 stage's module refuses eval() and keeps training=True, but its graph was
            # exported in eval mode: torch.onnx's "training mode" notice is not true of it.
            filterwarnings("ignore", "Exporting a model while it is in training mode")
            return torch.onnx.export(
                model,
                (tracing_input(example, dynamic),),
                dynamo=True,
                external_data=False,
                dynamic_shapes=batch_dim_spec(dynamic),
                opset_version=int(getattr(self.params, "opset", 20)),
                optimize=bool(getattr(self.params, "optimize", True)),
                input_names=["input"],
                verbose=False,
            )

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        session = _session(path)
        return LoadedModel(cls.name, path, _runner(session), session, cls.read_metadata(path))

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        for prop in proto.metadata_props:
            if prop.key == METADATA_KEY:
                return json.loads(prop.value)
        return {}

    def measure(self, loaded: LoadedModel, example: torch.Tensor) -> dict[str, Any]:
        """onnxruntime latency: median ms of batch-1 runs after warm-up, at most ~1 s."""
        session = loaded.module
        first = session.get_inputs()[0]
        batch = example if isinstance(first.shape[0], int) else example[:1]  # a fixed batch
        feed = {first.name: batch.detach().cpu().numpy().astype(np.float32)}
        start = time.perf_counter()
        for _ in range(3):
            session.run(None, feed)
        times: list[float] = []
        while len(times) < 20 and (time.perf_counter() - start < 1.0 or not times):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        return {"ort_latency_ms": statistics.median(times) * 1000.0}
