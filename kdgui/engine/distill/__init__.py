"""Knowledge distillation: the losses (any list of weighted terms), the layer taps and pairing,
and the training step."""

from kdgui.engine.distill.distiller import Distiller
from kdgui.engine.distill.logit_methods import DISTLoss, DKDLoss
from kdgui.engine.distill.losses import (
    AttentionTransferLoss,
    FeatureHintLoss,
    HardLoss,
    SoftTargetLoss,
    softmax_at_temperature,
)
from kdgui.engine.distill.pairing import auto_pairs
from kdgui.engine.distill.taps import FeatureTap, candidate_layers

__all__ = [
    "AttentionTransferLoss",
    "DISTLoss",
    "DKDLoss",
    "Distiller",
    "FeatureHintLoss",
    "FeatureTap",
    "HardLoss",
    "SoftTargetLoss",
    "auto_pairs",
    "candidate_layers",
    "softmax_at_temperature",
]
