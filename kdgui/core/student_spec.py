"""The student architecture as data: an ordered list of layers and blocks.

The engine builds an ``nn.Module`` from a :class:`StudentSpec`; the window's drawing editor, the
CLI and config files all edit this same JSON-able structure, so a student drawn in the window can
be saved, versioned and run headless. Shape inference and code generation work on the spec alone.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Conv2d(_Layer):
    type: Literal["conv2d"] = "conv2d"
    out_channels: int = Field(16, ge=1, le=4096, description="Output channels.")
    kernel_size: int = Field(3, ge=1, le=11, description="Kernel size (square).")
    stride: int = Field(1, ge=1, le=4, description="Stride.")
    padding: int | Literal["same"] = Field("same", description="Padding, or 'same' (k // 2).")
    groups: int = Field(1, ge=1, le=4096, description="Groups; in and out channels must divide.")
    bias: bool = Field(False, description="Add a bias (off when followed by BatchNorm).")


class DepthwiseConv2d(_Layer):
    type: Literal["dwconv"] = "dwconv"
    kernel_size: int = Field(3, ge=1, le=11)
    stride: int = Field(1, ge=1, le=4)
    padding: int | Literal["same"] = "same"


class SeparableConv2d(_Layer):
    type: Literal["sepconv"] = "sepconv"
    out_channels: int = Field(32, ge=1, le=4096)
    kernel_size: int = Field(3, ge=1, le=11)
    stride: int = Field(1, ge=1, le=4)


class BatchNorm(_Layer):
    type: Literal["batchnorm"] = "batchnorm"


class ReLU(_Layer):
    type: Literal["relu"] = "relu"


class GELU(_Layer):
    type: Literal["gelu"] = "gelu"


class MaxPool(_Layer):
    type: Literal["maxpool"] = "maxpool"
    kernel_size: int = Field(2, ge=1, le=8)
    stride: int | None = Field(None, ge=1, le=8, description="Stride; empty means kernel size.")


class AvgPool(_Layer):
    type: Literal["avgpool"] = "avgpool"
    kernel_size: int = Field(2, ge=1, le=8)
    stride: int | None = Field(None, ge=1, le=8)


class Dropout(_Layer):
    type: Literal["dropout"] = "dropout"
    p: float = Field(0.2, ge=0.0, lt=1.0, description="Probability of zeroing an element.")


class Flatten(_Layer):
    type: Literal["flatten"] = "flatten"


class GlobalAvgPool(_Layer):
    type: Literal["gap"] = "gap"


class Linear(_Layer):
    type: Literal["linear"] = "linear"
    out_features: int = Field(64, ge=1, le=65536)
    bias: bool = True


class Residual(_Layer):
    """A skip connection around ``layers``; a 1×1 projection is added if the shape changes."""

    type: Literal["residual"] = "residual"
    layers: list[LayerSpec] = Field(default_factory=list)


class InvertedResidual(_Layer):
    """MobileNetV2 block: 1×1 expand, depthwise k×k, 1×1 project; skip when shapes allow."""

    type: Literal["inverted_residual"] = "inverted_residual"
    out_channels: int = Field(16, ge=1, le=4096)
    expand_ratio: int = Field(4, ge=1, le=8)
    kernel_size: int = Field(3, ge=1, le=7)
    stride: int = Field(1, ge=1, le=2)


LayerSpec = Annotated[
    Union[
        Conv2d,
        DepthwiseConv2d,
        SeparableConv2d,
        BatchNorm,
        ReLU,
        GELU,
        MaxPool,
        AvgPool,
        Dropout,
        Flatten,
        GlobalAvgPool,
        Linear,
        Residual,
        InvertedResidual,
    ],
    Field(discriminator="type"),
]

Residual.model_rebuild()

LAYER_TYPES: dict[str, type[BaseModel]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Conv2d, DepthwiseConv2d, SeparableConv2d, BatchNorm, ReLU, GELU, MaxPool, AvgPool,
        Dropout, Flatten, GlobalAvgPool, Linear, Residual, InvertedResidual,
    )
}


class StudentSpec(BaseModel):
    """A student network: a name and an ordered list of layers."""

    model_config = ConfigDict(extra="forbid")

    name: str = "student"
    layers: list[LayerSpec] = Field(default_factory=list)
