"""The compression methods — pruners, quantizers and decomposers — declared once.

Each declaration names its parameter model (ranges, defaults, help text) and the engine function
that applies it, ``apply(model, params, ctx) -> model`` in ``kdgui.engine.compress``. A pipeline
step (:class:`kdgui.core.config.CompressionStep`) picks one by ``kind`` (prune → pruner,
quantize → quantizer, lowrank → decomposer) and ``method`` (the name registered here).

Which int8 back end sits behind ``dynamic-int8`` was chosen by measurement (see
``kdgui/engine/compress/quantize/dynamic.py``); because the choice lives behind this name, it can
change without touching configs.

Each method also declares its **traits** (:class:`~kdgui.core.method_traits.MethodTraits`) here,
next to its registration:
whether it trains during the step, makes an int8 model, needs calibration data. The pipeline's
checks, the sweep's bit count, the CLI's ``--quantize`` choices and the window's method lists read
them through :func:`method_traits`, :func:`methods_of` and :func:`int8_methods`, so a new method
is one :func:`declare_method` call (plus its engine module and its test), with no list elsewhere.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

# The traits machinery lives in kdgui.core.method_traits; its names are re-exported here because
# this is where methods are declared and where callers look for them.
from kdgui.core.method_traits import STEP_KINDS as STEP_KINDS
from kdgui.core.method_traits import MethodTraits as MethodTraits
from kdgui.core.method_traits import declare_method as declare_method
from kdgui.core.method_traits import int8_methods as int8_methods
from kdgui.core.method_traits import method_component as method_component
from kdgui.core.method_traits import method_traits as method_traits
from kdgui.core.method_traits import methods_of as methods_of
from kdgui.core.params import Params, param

_ENGINE = "kdgui.engine.compress"

# ---------------------------------------------------------------------------------------- pruners


class MagnitudePruneParams(Params):
    """Unstructured magnitude pruning: zero the smallest weights (tensors keep their shape)."""

    sparsity: float = param(
        0.5, "Final fraction s_f of weights set to zero.", ge=0.0, lt=1.0, step=0.05,
        formula="|w| below the s-quantile → 0",
    )
    scope: Literal["layer", "global"] = param(
        "layer",
        "'layer' prunes each layer to the same sparsity; 'global' ranks all weights together, "
        "so layers with many small weights lose more.",
    )
    schedule: Literal["oneshot", "gradual"] = param(
        "oneshot",
        "'oneshot' prunes once; 'gradual' raises sparsity during the step's fine-tuning with "
        "the Zhu & Gupta cubic schedule (needs finetune_epochs > 0).",
    )
    initial_sparsity: float = param(
        0.0, "Sparsity s_i at the start of a gradual schedule.", ge=0.0, lt=1.0, step=0.05
    )
    start_fraction: float = param(
        0.0, "When the gradual schedule starts (t0), as a fraction of the fine-tuning steps.",
        ge=0.0, lt=1.0, step=0.05,
    )
    end_fraction: float = param(
        0.7, "When the gradual schedule reaches s_f (t0 + nΔt), as a fraction of the "
        "fine-tuning steps; the rest of the steps recover accuracy at fixed sparsity.",
        gt=0.0, le=1.0, step=0.05,
    )
    frequency: int = param(
        10, "Δt: update the masks every N training steps.", ge=1, le=100000
    )
    exclude: list[str] = Field(
        default_factory=list, description="Names of layers that are not pruned."
    )

    @model_validator(mode="after")
    def _ordered(self) -> MagnitudePruneParams:
        if self.initial_sparsity > self.sparsity:
            raise ValueError(
                f"initial_sparsity {self.initial_sparsity:g} must be ≤ sparsity {self.sparsity:g}"
            )
        if self.end_fraction <= self.start_fraction:
            raise ValueError(
                f"end_fraction {self.end_fraction:g} must be > start_fraction "
                f"{self.start_fraction:g}"
            )
        return self


class StructuredPruneParams(Params):
    """Channel pruning that physically removes channels through a dependency graph."""

    ratio: float = param(
        0.5, "Fraction of output channels removed from each prunable layer.",
        ge=0.0, lt=1.0, step=0.05,
    )
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = param(
        "l2",
        "How channels are ranked: L1/L2 norm of their weights, |γ| of the following "
        "BatchNorm, or first-order Taylor |w·∂L/∂w| (needs labelled calibration data).",
    )
    global_pruning: bool = param(
        False, "Rank channels across layers instead of removing the same ratio in each."
    )
    iterative_steps: int = param(
        1, "Reach the ratio in this many pruning rounds (importance recomputed each).",
        ge=1, le=100,
    )
    round_to: int | None = param(
        None, "Keep channel counts a multiple of N (faster kernels on some hardware).", ge=1
    )
    calibration_batches: int = param(
        4, "Batches of calibration data used for Taylor importance.", ge=1, le=1000
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="Layers whose output channels are kept (the output layer always is).",
    )


declare_method(
    "prune", "magnitude", MagnitudePruneParams, f"{_ENGINE}.prune.unstructured:apply",
    "Magnitude (unstructured)",
    "Zeroes the smallest-magnitude weights, layer by layer or globally, once or gradually. "
    "Shrinks the zip-compressed file; gives no speed-up on dense CPU kernels.",
    "s_t = s_f + (s_i - s_f)(1 - (t - t0)/(nΔt))^3",
    "Zhu, Gupta. To prune, or not to prune. 2017; Han et al. Learning both Weights and "
    "Connections. NeurIPS 2015",
    traits=MethodTraits(trains_during_step=lambda p: p.schedule == "gradual"),
)
declare_method(
    "prune", "structured", StructuredPruneParams, f"{_ENGINE}.prune.structured:apply",
    "Channels (structured)",
    "Removes whole channels (Torch-Pruning dependency graph keeps residual, concat and "
    "depthwise layers consistent): fewer params, fewer MACs and a measurable speed-up.",
    "keep the top (1 - r)·C channels by importance",
    "Fang et al. DepGraph: Towards Any Structural Pruning. CVPR 2023",
    traits=MethodTraits(needs_calibration=lambda p: p.importance == "taylor"),
)

# ------------------------------------------------------------------------------------ quantizers




class DynamicInt8Params(Params):
    modules: Literal["linear", "linear+lstm"] = param(
        "linear+lstm", "Which layers get int8 weights (activations are quantized on the fly)."
    )


class StaticInt8Params(Params):
    calibration_samples: int = param(
        256, "Samples run through the model to calibrate activation ranges.", ge=1, le=1_000_000
    )
    batch_size: int = param(32, "Calibration batch size.", ge=1, le=65536)
    backend: Literal["x86", "qnnpack"] = param(
        "x86", "Kernel back end: 'x86' (fbgemm/onednn) for PCs and servers, 'qnnpack' for ARM."
    )


class QatInt8Params(Params):
    """QAT trains for the step's ``finetune_epochs`` between preparing and converting."""

    backend: Literal["x86", "qnnpack"] = param("x86", "Kernel back end of the int8 model.")


class OnnxInt8Params(Params):
    mode: Literal["dynamic", "static"] = param(
        "dynamic",
        "'dynamic' quantizes weights and computes activation ranges at run time; 'static' "
        "calibrates activation ranges on calibration data (QDQ format).",
    )
    per_channel: bool = param(False, "One scale per output channel of each weight.")
    calibration_samples: int = param(
        128, "Samples for static calibration.", ge=1, le=1_000_000
    )


class FakeQuantParams(Params):
    bits: int = param(
        8, "Bits of the simulated weight quantization.", ge=2, le=8, step=1,
        formula="w_q = s·clamp(round(w/s), -2^(b-1)+1, 2^(b-1)-1)",
    )
    granularity: Literal["per_tensor", "per_channel"] = param(
        "per_channel", "One scale per weight tensor, or one per output channel."
    )
    activations: bool = param(
        False, "Also simulate quantized activations (ranges calibrated on calibration data)."
    )
    activation_bits: int = param(8, "Bits of the simulated activations.", ge=2, le=8, step=1)
    calibration_samples: int = param(
        256, "Samples used to calibrate activation ranges.", ge=1, le=1_000_000
    )


declare_method(
    "quantize", "dynamic-int8", DynamicInt8Params, f"{_ENGINE}.quantize.dynamic:apply",
    "Dynamic int8 (CPU)",
    "int8 weights for Linear/LSTM, activations quantized per batch at run time. Measured ~2× "
    "faster than float at batch 64 on an MLP; no calibration needed.",
    traits=MethodTraits(produces_int8=True),
)
declare_method(
    "quantize", "static-int8", StaticInt8Params, f"{_ENGINE}.quantize.static:apply",
    "Static int8 (post-training)",
    "int8 weights and activations with ranges calibrated on N samples (FX graph mode).",
    "x_q = clamp(round(x/s) + z, 0, 255)",
    traits=MethodTraits(produces_int8=True, needs_calibration=True),
)
declare_method(
    "quantize", "qat-int8", QatInt8Params, f"{_ENGINE}.quantize.qat:apply",
    "Quantization-aware training",
    "Fine-tunes with fake-quant observers so the weights adapt to int8, then converts.",
    "",
    "Jacob et al. Quantization and Training of Neural Networks for Efficient "
    "Integer-Arithmetic-Only Inference. CVPR 2018",
    traits=MethodTraits(trains_during_step=True, produces_int8=True),
)
declare_method(
    "quantize", "onnx-int8", OnnxInt8Params, f"{_ENGINE}.quantize.onnx:apply",
    "ONNX Runtime int8",
    "Exports the model to ONNX and quantizes the file with onnxruntime.quantization, for "
    "deployment with ONNX Runtime. Must be the last step.",
    traits=MethodTraits(produces_int8=True, needs_calibration=lambda p: p.mode == "static",
                        needs_layers=False),
)
declare_method(
    "quantize", "fake", FakeQuantParams, f"{_ENGINE}.quantize.fake:apply",
    "Simulated n-bit (fake-quant)",
    "Rounds weights (and optionally activations) to 2–8 bits in float, to see accuracy "
    "against bits. No size or speed gain: the tensors stay float32.",
    "w_q = s·clamp(round(w/s), -2^(b-1)+1, 2^(b-1)-1)",
    traits=MethodTraits(needs_calibration=lambda p: p.activations, weight_bits=lambda p: p.bits),
)

# Weight sharing is Deep Compression's "trained quantization": a quantize method whose result stays
# float32 (not int8), so it may be followed by other steps and by fine-tuning.
class KmeansShareParams(Params):
    """Deep Compression's weight sharing: per-layer k-means, pruned zeros kept, codebook trained.

    The step's ``finetune_epochs`` fine-tune the shared centroids (each centroid receives the sum
    of its cluster's gradients), not the individual weights.
    """

    conv_bits: int = param(
        8, "Bits per convolution weight: 2^bits shared values per layer (the paper: 8).",
        ge=1, le=8, step=1,
    )
    fc_bits: int = param(
        5, "Bits per fully connected (Linear) weight (the paper: 5).", ge=1, le=8, step=1,
    )
    bits: dict[str, int] = Field(
        default_factory=dict,
        description="Per-layer bits by name or shell pattern ({'fc3': 6, 'features.*': 8}); "
        "the first matching pattern wins over conv_bits/fc_bits.",
    )
    init: Literal["linear", "density", "random"] = param(
        "linear",
        "Centroid initialisation: evenly spaced between min and max weight (the paper found it "
        "best: it keeps centroids on the rare large weights), at quantiles, or random weights.",
    )
    iterations: int = param(50, "Most k-means iterations per layer.", ge=1, le=1000)
    seed: int = param(0, "Seed of the random initialisation.", ge=0)
    exclude: list[str] = Field(
        default_factory=list, description="Names of layers whose weights are not shared."
    )
    bits_budget: float | None = param(
        None, "Mixed precision: average bits per non-zero weight over the shared layers, "
        "codebooks included. When set, each layer's bits (2–8) are chosen from a per-layer "
        "sensitivity measurement (how far the output moves when only that layer is shared) to "
        "meet this budget with the least predicted change (replaces conv_bits, fc_bits and "
        "bits).", ge=2.0, le=8.0, step=0.25,
        formula="min Σ_i KL_i(b_i)  s.t.  Σ_i (nnz_i·b_i + 32·min(2^b_i, nnz_i)) ≤ "
        "budget·Σ_i nnz_i",
    )
    plan_samples: int = param(
        512, "Mixed precision: training samples on which each layer is evaluated at each "
        "width (not the validation split the run reports).", ge=16, le=1_000_000,
    )

    @field_validator("bits", mode="before")
    @classmethod
    def _bits_from_text(cls, value: Any) -> Any:
        """``"fc1=6, features.*=8"`` (a text field in the window, a --set value) as a dict."""
        if not isinstance(value, str):
            return value
        out: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            pattern, sep, bits = part.rpartition("=")
            if not sep or not pattern.strip() or not bits.strip().isdigit():
                raise ValueError(f"{part!r} is not PATTERN=BITS (e.g. fc1=6)")
            out[pattern.strip()] = int(bits)
        return out

    @model_validator(mode="after")
    def _bits_in_range(self) -> KmeansShareParams:
        for pattern, bits in self.bits.items():
            if not 1 <= int(bits) <= 8:
                raise ValueError(f"bits[{pattern!r}] = {bits} is outside 1..8")
        return self


declare_method(
    "quantize", "kmeans", KmeansShareParams, f"{_ENGINE}.share.shared:apply",
    "Weight sharing (k-means)",
    "Clusters each layer's non-zero weights into 2^bits shared values (k-means, linear "
    "initialisation), keeps pruned weights at zero and fine-tunes the shared centroids. The "
    "tensors stay float32; the 'deepc' export stores the codebook indices Huffman-coded.",
    "w ← c_k, k = argmin_k |w - c_k|;  ∂L/∂c_k = Σ_{w in cluster k} ∂L/∂w",
    "Han, Mao, Dally. Deep Compression: Compressing Deep Neural Networks with Pruning, Trained "
    "Quantization and Huffman Coding. ICLR 2016",
    # A config has no model to tell conv from fc layers: the sweep's size axis uses fc_bits
    # (the deepc report gives the true bits per layer).
    # With a bits_budget the plan's average (rounded up) is what the sweep counts.
    traits=MethodTraits(weight_bits=lambda p: p.fc_bits if p.bits_budget is None
                        else math.ceil(p.bits_budget)),
)

# ----------------------------------------------------------------------------------- decomposers


class LowRankParams(Params):
    """How many singular values to keep: an explicit rank, a fraction of rank, or of energy."""

    rank: int | None = param(
        None, "Keep exactly this rank in every decomposed layer (overrides the fractions).", ge=1
    )
    energy: float | None = param(
        None, "Keep the smallest rank whose singular values hold this fraction of the energy "
        "Σσ² (overrides rank_fraction).", gt=0.0, le=1.0, step=0.01,
    )
    rank_fraction: float = param(
        0.25, "Keep this fraction of each layer's full rank min(out, in).",
        gt=0.0, le=1.0, step=0.05,
    )
    layers: list[str] = Field(
        default_factory=list,
        description="Layers to decompose; empty means every eligible layer except the output.",
    )
    skip_if_no_saving: bool = param(
        True, "Leave a layer whole when its factorization would not have fewer parameters."
    )


class ConvLowRankParams(LowRankParams):
    decomposition: Literal["svd", "tucker2"] = param(
        "svd",
        "'svd': kernel reshaped to (out, in·k·k) → k×k conv to r channels + 1×1 conv; "
        "'tucker2': 1×1 conv in→r, k×k conv r→r, 1×1 conv r→out.",
    )


declare_method(
    "lowrank", "svd", LowRankParams, f"{_ENGINE}.lowrank.svd:apply",
    "Truncated SVD (Linear)",
    "Replaces W (out×in) by two Linears of rank r: params r·(in+out) instead of in·out.",
    "W ≈ U_r Σ_r V_rᵀ",
    "Denton et al. Exploiting Linear Structure Within Convolutional Networks. NeurIPS 2014",
)
declare_method(
    "lowrank", "conv", ConvLowRankParams, f"{_ENGINE}.lowrank.conv:apply",
    "Convolution decomposition",
    "Splits each k×k convolution into a thinner pair (SVD) or triple (Tucker-2) of convolutions.",
    "W ≈ core ×₁ U_out ×₂ U_in",
    "Kim et al. Compression of Deep CNNs for Fast and Low Power Mobile Applications. ICLR 2016",
)
