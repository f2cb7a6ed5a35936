"""The distillation losses, declared once.

The total loss is ``L = (1 - a - b - g) L_hard + a L_soft + b L_feat + g L_att``; the weights
``a`` (alpha), ``b`` (beta), ``g`` (gamma) live in :class:`kdgui.core.config.DistillConfig`, the
per-loss parameters here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kdgui.core.params import Params, param
from kdgui.core.registry import register

Temperature = Annotated[
    float,
    Field(
        gt=0,
        le=100,
        description="Softmax temperature T for soft targets: higher T flattens both "
        "distributions and exposes the teacher's 'dark knowledge' in non-target classes.",
        json_schema_extra={"unit": "", "step": 0.5, "formula": "softmax(z / T)"},
    ),
]

LayerPairs = list[tuple[str, str]] | None


class HardParams(Params):
    label_smoothing: float = param(
        0.0, "Label smoothing of the hard-label cross-entropy.", ge=0.0, le=0.5, step=0.01
    )


class SoftParams(Params):
    temperature: Temperature = 4.0


class FeatureParams(Params):
    pairs: LayerPairs = Field(
        None,
        description="(teacher layer, student layer) pairs; empty means automatic pairing by "
        "stage and spatial size.",
    )
    distance: Literal["mse", "l1", "smooth_l1"] = param(
        "mse", "Distance between the adapted student feature map and the teacher's."
    )


class AttentionParams(Params):
    p: float = param(
        2.0, "Exponent p of the attention map sum_c |A_c|^p.", ge=1.0, le=4.0, step=0.5
    )
    pairs: LayerPairs = Field(
        None,
        description="(teacher layer, student layer) pairs; empty means automatic pairing.",
    )


_ENGINE = "kdgui.engine.distill.losses"

register(
    "loss", "hard", HardParams, f"{_ENGINE}:HardLoss", "Hard labels",
    "Cross-entropy of the student's logits against the true labels.",
    "L_hard = CE(z_s, y)",
)
register(
    "loss", "soft", SoftParams, f"{_ENGINE}:SoftTargetLoss", "Soft targets",
    "KL divergence between temperature-softened teacher and student distributions.",
    "L_soft = T^2 KL(softmax(z_t/T) || softmax(z_s/T))",
    "Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network. 2015",
)
register(
    "loss", "feature", FeatureParams, f"{_ENGINE}:FeatureHintLoss", "Feature hints",
    "Distance between teacher feature maps and adapted student feature maps (FitNets hints).",
    "L_feat = mean ||r(F_s) - F_t||^2",
    "Romero et al. FitNets: Hints for Thin Deep Nets. ICLR 2015",
)
register(
    "loss", "attention", AttentionParams, f"{_ENGINE}:AttentionTransferLoss",
    "Attention transfer",
    "Distance between normalized spatial attention maps of teacher and student.",
    "L_att = sum_j || Q_s/||Q_s|| - Q_t/||Q_t|| ||_2,  Q = sum_c |A_c|^p",
    "Zagoruyko, Komodakis. Paying More Attention to Attention. ICLR 2017",
)
