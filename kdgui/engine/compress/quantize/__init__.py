"""Quantization units: dynamic/static int8, QAT, ONNX Runtime int8 and simulated n-bit."""
