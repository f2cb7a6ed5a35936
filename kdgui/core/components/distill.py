"""The distillation losses, declared once: parameters, what each reads, formula and paper.

The total loss is a weighted sum of *terms* (``distill.terms`` in a config, see
:mod:`kdgui.core.distill_terms`), each one of the losses registered here with its own validated
parameters. The old ``L = (1 - a - b - g) L_hard + a L_soft + b L_feat + g L_att`` form is a
shorthand for four such terms.

Each parameter model says, in its ``inputs`` class variable, what its loss reads: ``labels``
(the true classes), ``logits`` (the teacher's outputs) and/or ``features`` (paired intermediate
outputs of both networks, collected by forward hooks). The engine calls a loss with exactly
those, the config refuses ``pairs`` on a loss that reads no features, and the run knows whether
the teacher must run (and be hookable) from these declarations alone. Adding a method is
therefore its engine module, one declaration here, and its test.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

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

#: What a loss reads: the true classes, the teacher's logits, paired feature maps, and/or each
#: sample's index in the training set (``index``: a loss that keeps state per sample, like CRD's
#: memory bank; the data pipeline then must give indices, and the loss is told the set's size).
Input = Literal["labels", "logits", "features", "index"]


class LossParams(Params):
    """Base of a loss's parameters; ``inputs`` says what the loss is called with, in order
    after the student's output: ``labels`` → the targets, ``logits`` → the teacher's logits,
    ``features`` → ``(student_feats, teacher_feats)`` lists of paired layer outputs instead
    of logits, ``index`` → each sample's index in the training set."""

    inputs: ClassVar[tuple[Input, ...]] = ("logits",)


def reads(params: type[Params], what: Input) -> bool:
    """Whether a loss with parameter model ``params`` reads ``what`` (default: logits)."""
    return what in getattr(params, "inputs", ("logits",))


def standardize_param() -> bool:
    return param(  # type: ignore[no-any-return]
        False,
        "Logit standardization (Sun et al. 2024): z-score each sample's teacher and student "
        "logits (mean 0, std 1) before the temperature, so the student matches the teacher's "
        "logit *relations*, not their scale; use a base temperature of about 2.",
        formula="z ← (z − mean(z)) / std(z)",
    )


class HardParams(LossParams):
    inputs: ClassVar[tuple[Input, ...]] = ("labels",)
    label_smoothing: float = param(
        0.0, "Label smoothing of the hard-label cross-entropy.", ge=0.0, le=0.5, step=0.01
    )


class SoftParams(LossParams):
    temperature: Temperature = 4.0
    standardize: bool = standardize_param()


class DKDParams(LossParams):
    """Decoupled KD (Zhao et al. 2022); defaults from the authors' mdistiller CIFAR configs."""

    inputs: ClassVar[tuple[Input, ...]] = ("logits", "labels")
    alpha: float = param(1.0, "Weight of TCKD, the target-class (binary) KL.", ge=0.0, le=100.0,
                         step=0.5)
    beta: float = param(8.0, "Weight of NCKD, the KL among the non-target classes.", ge=0.0,
                        le=100.0, step=0.5)
    temperature: Temperature = 4.0
    warmup_epochs: int = param(
        20, "The loss is scaled by min(epoch / warmup_epochs, 1) (epochs counted from 1); "
        "0 turns the warm-up off.", ge=0, le=10000)
    standardize: bool = standardize_param()


class DISTParams(LossParams):
    """DIST (Huang et al. 2022); defaults from the authors' code (beta = gamma = tau = 1)."""

    beta: float = param(1.0, "Weight of the inter-class relation (per sample, across classes).",
                        ge=0.0, le=100.0, step=0.5)
    gamma: float = param(1.0, "Weight of the intra-class relation (per class, across the "
                         "batch).", ge=0.0, le=100.0, step=0.5)
    temperature: Temperature = 1.0
    standardize: bool = standardize_param()


class FeatureParams(LossParams):
    inputs: ClassVar[tuple[Input, ...]] = ("features",)
    pairs: LayerPairs = Field(
        None,
        description="(teacher layer, student layer) pairs; empty means automatic pairing by "
        "stage and spatial size.",
    )
    distance: Literal["mse", "l1", "smooth_l1"] = param(
        "mse", "Distance between the adapted student feature map and the teacher's."
    )


def pool_param(default: bool) -> bool:
    return param(  # type: ignore[no-any-return]
        default, "Average-pool a feature map (N, C, H, W) to one C-vector per sample before "
        "relating samples; off: flatten the whole map.")


class RKDParams(LossParams):
    """Relational KD (Park et al. 2019); weights from the authors' code (25 and 50)."""

    inputs: ClassVar[tuple[Input, ...]] = ("features",)
    distance_weight: float = param(25.0, "Weight of the distance-wise loss.", ge=0.0, le=1000.0)
    angle_weight: float = param(50.0, "Weight of the angle-wise loss.", ge=0.0, le=1000.0)
    pool: bool = pool_param(True)


class PKTParams(LossParams):
    """Probabilistic knowledge transfer (Passalis & Tefas 2018)."""

    inputs: ClassVar[tuple[Input, ...]] = ("features",)
    pool: bool = pool_param(True)


class SPParams(LossParams):
    """Similarity-preserving KD (Tung & Mori 2019); the paper relates whole feature maps."""

    inputs: ClassVar[tuple[Input, ...]] = ("features",)
    pool: bool = pool_param(False)


class AttentionParams(LossParams):
    inputs: ClassVar[tuple[Input, ...]] = ("features",)

    p: float = param(
        2.0, "Exponent p of the attention map sum_c |A_c|^p.", ge=1.0, le=4.0, step=0.5
    )
    pairs: LayerPairs = Field(
        None,
        description="(teacher layer, student layer) pairs; empty means automatic pairing.",
    )


_ENGINE = "kdgui.engine.distill.losses"
_LOGITS = "kdgui.engine.distill.logit_methods"

register(
    "loss", "hard", HardParams, f"{_ENGINE}:HardLoss", "Hard labels",
    "Cross-entropy of the student's logits against the true labels.",
    "L_hard = CE(z_s, y)",
)
register(
    "loss", "soft", SoftParams, f"{_ENGINE}:SoftTargetLoss", "Soft targets",
    "KL divergence between temperature-softened teacher and student distributions.",
    "L_soft = T^2 KL(softmax(z_t/T) || softmax(z_s/T));  with standardize, z = (z - mean z) / std z",
    "Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network. 2015; "
    "Sun et al. Logit Standardization in Knowledge Distillation. CVPR 2024",
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
register(
    "loss", "dkd", DKDParams, f"{_LOGITS}:DKDLoss", "Decoupled KD (DKD)",
    "KD split into the target-class binary KL (TCKD) and the KL among non-target classes "
    "(NCKD), weighted separately so NCKD is not suppressed by a confident teacher.",
    "L_dkd = min(e/warmup, 1) T^2 [alpha KL(b_t || b_s) + beta KL(p~_t || p~_s)],  "
    "b = (p_target, 1 - p_target), p~ = softmax over the non-target classes",
    "Zhao et al. Decoupled Knowledge Distillation. CVPR 2022",
)
register(
    "loss", "dist", DISTParams, f"{_LOGITS}:DISTLoss", "DIST (relations)",
    "Matches the teacher's predictions by Pearson correlation rather than exact values: "
    "per sample across classes (inter-class) and per class across the batch (intra-class).",
    "L_dist = T^2 [beta (1 - mean_i rho(p_s[i,:], p_t[i,:])) + gamma (1 - mean_c "
    "rho(p_s[:,c], p_t[:,c]))],  p = softmax(z/T)",
    "Huang et al. Knowledge Distillation from A Stronger Teacher. NeurIPS 2022",
)

_RELATION = "kdgui.engine.distill.relation_methods"

register(
    "loss", "rkd", RKDParams, f"{_RELATION}:RKDLoss", "Relational KD (RKD)",
    "Matches how samples relate in feature space: their pairwise distances (over the mean "
    "distance) and the angles they form, so teacher and student features may differ in size. "
    "Pairs default to the stage ends; pair the penultimate layers to follow the paper.",
    "L_rkd = w_d mean Huber(psi_D(s), psi_D(t)) + w_a mean Huber(psi_A(s), psi_A(t)),  "
    "psi_D = ||e_i - e_j|| / mu,  psi_A = cos angle(e_i - e_j, e_k - e_j)",
    "Park et al. Relational Knowledge Distillation. CVPR 2019",
)
register(
    "loss", "pkt", PKTParams, f"{_RELATION}:PKTLoss", "Probabilistic transfer (PKT)",
    "Matches the conditional distributions p(j|i) of cosine similarities between the samples "
    "of a batch (KL divergence, summed over j, mean over i; the authors' code divides this by "
    "the batch size and weights it 30000).",
    "L_pkt = mean_i sum_j p_t(j|i) log(p_t(j|i) / p_s(j|i)),  p(j|i) ∝ (cos(e_i, e_j) + 1) / 2",
    "Passalis, Tefas. Learning Deep Representations with Probabilistic Knowledge Transfer. "
    "ECCV 2018",
)
register(
    "loss", "sp", SPParams, f"{_RELATION}:SPLoss", "Similarity-preserving (SP)",
    "Matches the batch's row-normalised similarity matrices G = normalize(E E^T) of teacher and "
    "student (the authors weight it about 3000).",
    "L_sp = ||G_t - G_s||_F^2 / N^2,  G = normalize_rows(E E^T)",
    "Tung, Mori. Similarity-Preserving Knowledge Distillation. ICCV 2019",
)


class CRDParams(LossParams):
    """Contrastive representation distillation (Tian et al. 2020); defaults from the authors'
    RepDistiller code (feat_dim 128, nce_k 16384, nce_t 0.07, nce_m 0.5, 'exact' negatives)."""

    #: Labels: negatives of another class (``negatives``); index: the sample's bank entry.
    inputs: ClassVar[tuple[Input, ...]] = ("features", "index", "labels")
    feat_dim: int = param(128, "Size of the embedding space the student's and the teacher's "
                          "linear heads project into (then L2-normalised).", ge=2, le=4096)
    nce_k: int = param(16384, "Negatives per positive, drawn from the memory bank (capped at the "
                       "training set's size minus one).", ge=1, le=1_000_000)
    nce_t: float = param(0.07, "Temperature t of the contrast exp(<v, m> / t).", gt=0.0, le=10.0,
                         step=0.01)
    nce_m: float = param(0.5, "Momentum of the memory bank: m ← normalize(nce_m·m + (1 − nce_m)·v)",
                         ge=0.0, lt=1.0, step=0.05)
    negatives: Literal["other_class", "uniform"] = param(
        "other_class", "Where negatives come from: samples of another class (the authors' "
        "'exact' mode; a sample's class is known once it was seen) or any sample.")
    pool: bool = pool_param(True)


class ViTHintParams(LossParams):
    """Hidden-state and attention-map hints between transformer blocks (TinyBERT's hidden and
    attention losses with its uniform layer mapping; attention compared as distributions, as
    MiniLM does)."""

    inputs: ClassVar[tuple[Input, ...]] = ("features",)
    which: Literal["hidden", "attention", "both"] = param(
        "both", "What each block pair compares: its output tokens (hidden states, through a "
        "linear adapter when the widths differ), its self-attention maps, or both.")
    hidden_weight: float = param(1.0, "Weight of the hidden-state MSE.", ge=0.0, le=1000.0)
    attention_weight: float = param(1.0, "Weight of the attention-map KL.", ge=0.0, le=1000.0)
    mapping: Literal["uniform", "last"] = param(
        "uniform", "Automatic block pairs (when none are given): 'uniform' pairs student block m "
        "with teacher block m·N/M (TinyBERT); 'last' pairs the last blocks only.")


_CRD = "kdgui.engine.distill.crd"
_VIT = "kdgui.engine.distill.vit_hints"

register(
    "loss", "crd", CRDParams, f"{_CRD}:CRDLoss", "Contrastive (CRD)",
    "Contrasts each sample's student embedding with the teacher's embedding of the same sample "
    "(positive) and of nce_k other samples (negatives) kept in a memory bank over the whole "
    "training set, and the teacher's with the student's bank: a lower bound on their mutual "
    "information. Learned linear heads (128-d, L2-normalised) embed both; the authors weight "
    "it 0.8 beside the hard loss. Reads each sample's index, so it needs indexable data.",
    "L_crd = −Σ_side [log h(v, m_pos) + Σ_k log(1 − h(v, m_k))],  h = P/(P + K/N),  "
    "P = exp(<v, m>/t)/Z,  m ← normalize(nce_m·m + (1 − nce_m)·v)",
    "Tian, Krishnan, Isola. Contrastive Representation Distillation. ICLR 2020",
)
register(
    "loss", "vit_hidden", ViTHintParams, f"{_VIT}:ViTHintLoss", "ViT hidden/attention hints",
    "Between a ViT teacher and a ViT student (torchvision VisionTransformer, timm ViT/DeiT): "
    "the MSE of paired blocks' output tokens after a linear adapter, and/or the KL of their "
    "self-attention maps. Blocks pair uniformly by depth; different token grids (patch or image "
    "sizes) are resampled, class tokens compared with class tokens (a DeiT distillation token "
    "is dropped when the other has none), different head counts compared head-averaged.",
    "L_vit = mean_pairs [w_h MSE(H_s W + b, H_t) + w_a mean_rows KL(A_t || A_s)],  "
    "teacher block of student block m: m·N/M",
    "Jiao et al. TinyBERT: Distilling BERT for Natural Language Understanding. Findings of "
    "EMNLP 2020; Wang et al. MiniLM: Deep Self-Attention Distillation. NeurIPS 2020",
)
