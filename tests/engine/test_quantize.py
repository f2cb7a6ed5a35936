"""Quantization units: dynamic/static int8, QAT, ONNX Runtime int8, simulated n-bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.components.compression import (
    DynamicInt8Params,
    FakeQuantParams,
    OnnxInt8Params,
    QatInt8Params,
    StaticInt8Params,
)
from kdgui.core.errors import CompressionError
from kdgui.engine.compress import CompressionContext, apply_unit
from kdgui.engine.compress.finetune import make_finetune, steps_per_epoch
from kdgui.engine.compress.quantize import dynamic, fake, qat, static
from kdgui.engine.compress.quantize import onnx as onnx_q


def data(n: int = 96) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 6, 6, generator=gen)
    return TensorDataset(x, x.flatten(1)[:, :3].argmax(1))


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def ctx(calibration: TensorDataset | None = None, **kw) -> CompressionContext:
    return CompressionContext(input_shape=(1, 6, 6), calibration=calibration, **kw)


def run_all(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def close(a: nn.Module, b: nn.Module, x: torch.Tensor, tol: float) -> bool:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max()) <= tol * max(1.0, float(a(x).abs().max()))


def test_dynamic_int8_quantizes_linear_layers_and_marks_bits() -> None:
    model, c = cnn(), ctx()
    q = dynamic.apply(model, DynamicInt8Params(), c)
    assert q is not model and isinstance(model[3], nn.Linear)  # the original is untouched
    assert "quantized" in type(q[3]).__module__ and q[3].kdgui_bits == 8
    assert isinstance(q[0], nn.Conv2d)  # no dynamic conv kernels: left in float
    assert close(model, q, data().tensors[0], 0.05)
    assert not any("deprecated" in n.message for n in c.notes)  # torch.ao's notice: not ours


def test_torch_ao_notices_are_filtered_precisely() -> None:
    """torch.ao's own notices are dropped; the same category with another text or from another
    module still shows (the filters name category, message and module)."""
    import warnings

    from kdgui.engine.compress.quantize.ao_warnings import silence_torch_ao_deprecations

    def shown(message: str, category: type[Warning], module: str) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            silence_torch_ao_deprecations()
            warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
        return bool(caught)

    notice = "torch.ao.quantization is deprecated and will be removed in 2.10."
    assert not shown(notice, DeprecationWarning, "torch.ao.quantization.quantize")
    assert not shown(notice, DeprecationWarning, "kdgui.engine.compress.quantize.dynamic")
    assert shown(notice, DeprecationWarning, "user_code")  # a user's own torch.ao call
    assert shown("something else is deprecated", DeprecationWarning, "torch.ao.quantization")
    assert shown(notice, FutureWarning, "torch.ao.quantization")
    assert not shown("TypedStorage is deprecated. It will be removed", UserWarning, "torch._utils")
    assert shown("TypedStorage is deprecated. It will be removed", UserWarning, "user_code")
    with warnings.catch_warnings(record=True) as caught:  # and the real thing, end to end
        warnings.simplefilter("always")
        silence_torch_ao_deprecations()
        q = dynamic.apply(cnn(), DynamicInt8Params(), ctx())
        q(data().tensors[0][:2])
    assert not [w for w in caught if "deprecat" in str(w.message)], [str(w.message) for w in caught]


def test_dynamic_int8_needs_linear_layers() -> None:
    with pytest.raises(CompressionError, match="no Linear or LSTM"):
        dynamic.apply(nn.Sequential(nn.Conv2d(1, 2, 3)), DynamicInt8Params(), ctx())


def test_static_int8_calibrates_and_converts() -> None:
    model, ds = cnn(), data()
    c = ctx(ds)
    q = static.apply(model, StaticInt8Params(calibration_samples=40, batch_size=16), c)
    assert any(getattr(m, "kdgui_bits", None) == 8 for m in q.modules())
    assert close(model, q, ds.tensors[0], 0.1)
    assert any("on 40 samples" in n.message for n in c.notes)


def test_empty_calibration_set_is_a_compression_error() -> None:
    empty = TensorDataset(torch.zeros(0, 1, 6, 6), torch.zeros(0, dtype=torch.long))
    for calibration in (None, empty):
        with pytest.raises(CompressionError, match="calibration set is empty"):
            static.apply(cnn(), StaticInt8Params(), ctx(calibration))
    with pytest.raises(CompressionError, match="calibration set is empty"):
        fake.apply(cnn(), FakeQuantParams(activations=True), ctx(empty))
    with pytest.raises(CompressionError, match="calibration set is empty"):
        onnx_q.apply(cnn(), OnnxInt8Params(mode="static"), ctx(empty))


def test_qat_trains_then_converts_to_int8() -> None:
    ds = data()
    c = ctx(ds, finetune=make_finetune(ds, batch_size=32),
            steps_per_epoch=steps_per_epoch(ds, 32), epochs=1)
    q = run_all(qat.apply(cnn(), QatInt8Params(), c))
    assert c.trained
    assert any(getattr(m, "kdgui_bits", None) == 8 for m in q.modules())
    assert q(ds.tensors[0][:4]).shape == (4, 3)


def test_qat_without_epochs_is_refused() -> None:
    with pytest.raises(CompressionError, match="fine-tuning epochs"):
        run_all(qat.apply(cnn(), QatInt8Params(), ctx(data())))


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_onnx_int8_runs_in_onnxruntime(mode: str, tmp_path) -> None:
    model, ds = cnn(), data()
    q = onnx_q.apply(model, OnnxInt8Params(mode=mode, calibration_samples=32),
                     ctx(ds, work_dir=tmp_path))
    assert isinstance(q, onnx_q.OnnxRuntimeModel) and q.path.exists()
    x = ds.tensors[0][:8]
    assert q(x).shape == (8, 3)
    assert close(model, q, x, 0.1)  # int8 tolerance: 10% of the output range
    assert not (tmp_path / "float.onnx").exists()


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_fake_quant_weights_use_at_most_2_pow_bits_levels(bits: int, granularity: str) -> None:
    model = cnn()
    fake.apply(model, FakeQuantParams(bits=bits, granularity=granularity), ctx())
    w = model[3].weight.detach()
    rows = w if granularity == "per_channel" else w.flatten()[None]
    for row in rows:
        assert row.unique().numel() <= 2 ** bits - 1
    assert model[3].kdgui_bits == bits


def test_fewer_bits_mean_larger_error() -> None:
    w = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    errors = [float((fake.fake_quantize_weight(w, b, True) - w).abs().mean()) for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2]


def test_fake_quant_activations_are_calibrated() -> None:
    model, ds = cnn(), data()
    reference = cnn()
    fake.apply(model, FakeQuantParams(bits=8, activations=True, activation_bits=8), ctx(ds))
    quants = [m for m in model.modules() if isinstance(m, fake.ActivationFakeQuant)]
    assert len(quants) == 3 and all(not q.calibrating and q.hi > q.lo for q in quants)
    assert close(reference, model, ds.tensors[0], 0.1)


@pytest.mark.parametrize("bits", [0, 1, 9, 16])
def test_bits_outside_2_to_8_are_compression_errors(bits: int) -> None:
    model = cnn()
    before = model[3].weight.detach().clone()
    with pytest.raises(CompressionError, match="bits"):
        run_all(apply_unit("quantize", "fake", model, {"bits": bits}, ctx()))
    with pytest.raises(CompressionError, match="outside 2–8"):
        fake.fake_quantize_weight(before, bits, True)
    with pytest.raises(CompressionError, match="activation_bits"):
        run_all(apply_unit("quantize", "fake", model,
                           {"activations": True, "activation_bits": bits}, ctx(data())))
    assert torch.equal(model[3].weight, before)  # nothing changed
