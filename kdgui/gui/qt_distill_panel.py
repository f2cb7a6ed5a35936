"""Step 4, distillation and training: the loss's terms and weights, per-loss options, optimiser.

The combined loss is written out from the term list (or the α/β/γ shorthand) with the current
weights, so moving a slider shows at once what the student will be trained on; the weight sum
rule of the shorthand (α + β + γ ≤ 1) is enforced by the config's own validator and reported
inline like any other invalid value. The term list itself is edited in
:class:`~kdgui.gui.qt_terms_editor.QtTermsEditor`.
"""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from kdgui.core.components.distill import AttentionParams, FeatureParams
from kdgui.core.config import DistillConfig, TrainingConfig
from kdgui.core.distill_terms import TermConfig, formula, shorthand_terms
from kdgui.core.params import describe
from kdgui.core.registry import losses
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_terms_editor import QtTermsEditor, current_terms


def loss_formula(alpha: float, beta: float, gamma: float) -> str:
    """The shorthand's formula from its three weights (shown even while their sum is > 1)."""
    cfg = DistillConfig.model_construct(alpha=alpha, beta=beta, gamma=gamma)
    return formula(shorthand_terms(cfg), html=True)


def terms_formula(state: QtConfigState) -> str:
    """The formula of the terms being edited, generated from the list (or the shorthand)."""
    terms, _ = current_terms(state)
    try:
        return formula([TermConfig.model_validate(t) for t in terms], html=True)
    except ValueError:  # a term under edit is invalid (its issue is shown): name the rest
        shown = [f"{float(t.get('weight', 0)):.2f}·L<sub>{t.get('label') or t.get('name')}</sub>"
                 for t in terms if float(t.get("weight", 0) or 0) > 0]
        return "L = " + (" + ".join(shown) or "0")


class QtDistillPanel(QtPanel):
    key = "distill"
    title = "4 · Distillation & training"
    subtitle = ("How the student learns: hard labels, the teacher's softened outputs, and "
                "optionally its feature maps and attention.")
    prefixes = (("distill",), ("training",))

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        columns = QHBoxLayout()
        left, right = QVBoxLayout(), QVBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        self.body_layout.addLayout(columns)

        weights = QGroupBox("Loss")
        w_layout = QVBoxLayout(weights)
        self.formula = QLabel()
        self.formula.setObjectName("lossFormula")
        self.formula.setStyleSheet("font-size: 13pt;")
        self.formula.setWordWrap(True)  # a list of many terms wraps instead of widening the panel
        w_layout.addWidget(self.formula)
        self.form = QtParamForm(describe(DistillConfig), state, ("distill",))
        w_layout.addWidget(self.form)
        self.terms_editor = QtTermsEditor(state)
        w_layout.addWidget(self.terms_editor)
        left.addWidget(weights)

        extra = self.shorthand_extra = QGroupBox("Feature hints and attention")
        e_layout = QVBoxLayout(extra)
        self.feature_form = QtParamForm(describe(FeatureParams), state, ("distill", "feature"))
        self.attention_form = QtParamForm(
            describe(AttentionParams), state, ("distill", "attention")
        )
        e_layout.addWidget(self.feature_form)
        e_layout.addWidget(self.attention_form)
        left.addWidget(extra)

        about = QGroupBox("The loss terms")
        a_layout = QVBoxLayout(about)
        for comp in losses:
            text = QLabel(
                f"<b>{comp.title}</b> — {comp.summary}<br><i>{comp.formula}</i>"
                + (f"<br><small>{comp.paper}</small>" if comp.paper else "")
            )
            text.setWordWrap(True)
            a_layout.addWidget(text)
        left.addWidget(about)
        left.addStretch(1)

        training = QGroupBox("Training")
        t_layout = QVBoxLayout(training)
        self.training_form = QtParamForm(describe(TrainingConfig), state, ("training",))
        t_layout.addWidget(self.training_form)
        right.addWidget(training)
        right.addStretch(1)
        state.changed.connect(self._update_formula)
        self._update_formula()
        self.finish()

    def _update_formula(self) -> None:
        get = self.state.get
        _, written = current_terms(self.state)
        self.form.setVisible(not written)  # the shorthand's sliders, unused with a list
        self.shorthand_extra.setVisible(not written)
        if written:
            self.formula.setText(terms_formula(self.state))
            return
        self.formula.setText(loss_formula(
            float(get(("distill", "alpha"), 0) or 0), float(get(("distill", "beta"), 0) or 0),
            float(get(("distill", "gamma"), 0) or 0),
        ))
