"""Quantization units: dynamic/static int8, QAT, ONNX Runtime int8 and simulated n-bit."""

from kdgui.engine.compress.quantize.ao_warnings import silence_torch_ao_deprecations

silence_torch_ao_deprecations()  # torch.ao's notices are ours to act on, not the user's
