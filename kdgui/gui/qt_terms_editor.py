"""The distillation loss as an editable list of terms (``distill.terms``).

Each term is a card built from its loss's declaration: the loss's title and formula, a weight
slider (the declared ``TermConfig.weight``), and a form of the loss's own declared parameters
(written to ``distill.terms[i].params``). A combo box lists every registered loss, so a new
method shows up here with no change to the window.

While the config uses the alpha/beta/gamma shorthand, the editor shows the terms it means; the
first edit (adding or removing a term) writes them out as a list, and "Back to the shorthand"
returns to the four-term form. Both are whole-section replacements (:meth:`QtConfigState.replace`),
so every form re-reads its values.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.components.distill import reads
from kdgui.core.distill_terms import EPS, DistillConfig, TermConfig, pairs_from_text, pairs_text
from kdgui.core.params import describe
from kdgui.core.registry import losses
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm

WEIGHT_SPEC = next(s for s in describe(TermConfig) if s.name == "weight")


def current_terms(state: QtConfigState) -> tuple[list[dict[str, Any]], bool]:
    """The term list as plain data, and whether the config writes it out (False: shorthand)."""
    written = state.get(("distill", "terms"))
    if isinstance(written, list):
        return written, True
    section = state.get(("distill",)) or {}
    try:
        cfg = DistillConfig.model_validate({k: v for k, v in section.items() if k != "terms"})
    except Exception:  # an invalid shorthand (its issue is shown): fall back to the defaults
        cfg = DistillConfig()
    shown = [t.model_dump(mode="json", exclude_none=True) for t in cfg.active_terms()]
    return shown, False


class QtTermCard(QGroupBox):
    """One term: title, remove button, weight slider and the loss's parameters."""

    def __init__(self, editor: QtTermsEditor, index: int, term: dict[str, Any], editable: bool):
        name = str(term.get("name", ""))
        key = term.get("label") or name
        known = name in losses
        component = losses.get(name) if known else None
        super().__init__(f"{key} — {component.title}" if component else key)
        self.setObjectName(f"term:{index}")
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        formula = QLabel(f"<i>{component.formula}</i>" if component else "")
        formula.setWordWrap(True)
        top.addWidget(formula, 1)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName(f"remove:{index}")
        self.remove_button.setToolTip("Remove this term from the loss")
        self.remove_button.clicked.connect(lambda _c=False: editor.remove_term(index))
        top.addWidget(self.remove_button)
        layout.addLayout(top)
        self.weight_form: QtParamForm | None = None
        self.params_form: QtParamForm | None = None
        self.pairs_edit: QLineEdit | None = None
        if editable:
            path = ("distill", "terms", index)
            self.weight_form = QtParamForm([WEIGHT_SPEC], editor.state, path)
            layout.addWidget(self.weight_form)
            if component is not None:
                specs = [s for s in describe(component.params) if s.name != "pairs"]
                self.params_form = QtParamForm(specs, editor.state, (*path, "params"))
                layout.addWidget(self.params_form)
                if reads(component.params, "features"):
                    self._add_pairs_row(layout, editor.state, index, term)
            # The allowed range is in each name's tooltip: the column of ranges made every card
            # ~80 px wider than the shorthand's form and pushed the Training column off a
            # 1280-px window (horizontal scroll bar, its ranges cut).
            for form in (self.weight_form, self.params_form):
                for label in form.findChildren(QLabel, "rangeLabel") if form else []:
                    label.hide()
        else:
            values = ", ".join(f"{k} = {v}" for k, v in (term.get("params") or {}).items())
            layout.addWidget(QLabel(f"weight {float(term.get('weight', 0)):.2f}"
                                    + (f" · {values}" if values else "")))


    def _add_pairs_row(self, layout: QVBoxLayout, state: QtConfigState, index: int,
                       term: dict[str, Any]) -> None:
        """The term's (teacher layer, student layer) pairs as ``T>S + T>S`` text; empty is
        automatic pairing. The student editor's pairing tool writes the same field."""
        row = QHBoxLayout()
        row.addWidget(QLabel("Layer pairs"))
        self.pairs_edit = QLineEdit(pairs_text(term.get("pairs")))
        self.pairs_edit.setObjectName(f"pairs:{index}")
        self.pairs_edit.setPlaceholderText("automatic (stage ends) — or teacher>student + …")
        self.pairs_edit.setToolTip(
            "Which teacher layer teaches which student layer, as TEACHER>STUDENT joined by '+' "
            "(e.g. layers.4>layers.8 + layers.6>layers.14). Empty: pairs chosen automatically "
            "by stage. The student editor's pairing tool fills this in too.")
        self.pairs_error = QLabel("")
        self.pairs_error.setStyleSheet("color: #c0392b;")
        self.pairs_error.setWordWrap(True)
        self.pairs_error.hide()

        def commit() -> None:
            try:
                pairs = pairs_from_text(self.pairs_edit.text())
            except ValueError as exc:
                self.pairs_error.setText(str(exc))
                self.pairs_error.show()
                return
            self.pairs_error.hide()
            path = ("distill", "terms", index, "pairs")
            if pairs != state.get(path):
                state.set(path, pairs)

        self.pairs_edit.editingFinished.connect(commit)
        row.addWidget(self.pairs_edit, 1)
        layout.addLayout(row)
        layout.addWidget(self.pairs_error)

    def show_pairs(self, pairs: list[list[str]] | None) -> None:
        """Follow pairs written elsewhere (the pairing tool, a loaded config)."""
        if self.pairs_edit is not None and not self.pairs_edit.hasFocus():
            text = pairs_text(pairs)
            if text != self.pairs_edit.text():
                self.pairs_edit.setText(text)


class QtTermsEditor(QWidget):
    """Add, remove and tune the loss's terms; the config follows every edit."""

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.mode_label = QLabel()
        self.mode_label.setWordWrap(True)
        layout.addWidget(self.mode_label)
        self.cards_layout = QVBoxLayout()
        layout.addLayout(self.cards_layout)
        row = QHBoxLayout()
        self.loss_combo = QComboBox()
        self.loss_combo.setObjectName("termLoss")
        # Sized by a short title, not the longest ("Contrastive representation … (crd)"): this
        # row set the Loss column's width and pushed the Training column off a 1280-px window.
        self.loss_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.loss_combo.setMinimumContentsLength(12)
        for comp in losses:
            self.loss_combo.addItem(f"{comp.title} ({comp.name})", comp.name)
            self.loss_combo.setItemData(self.loss_combo.count() - 1, comp.summary, 3)
        self.add_button = QPushButton("+ Add term")
        self.add_button.setObjectName("addTerm")
        self.add_button.clicked.connect(lambda _c=False: self.add_term(self.loss_combo.currentData()))
        self.shorthand_button = QPushButton("Back to the α/β/γ shorthand")
        self.shorthand_button.setObjectName("useShorthand")
        self.shorthand_button.clicked.connect(lambda _c=False: self.use_shorthand())
        row.addWidget(self.loss_combo, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.shorthand_button)
        layout.addLayout(row)
        self.cards: list[QtTermCard] = []
        self._shown: list[tuple[str, str | None]] | None = None
        state.replaced.connect(self.rebuild)
        state.changed.connect(self._rebuild_if_the_list_changed)
        self.rebuild()

    # -- editing ---------------------------------------------------------------------------------
    def add_term(self, name: str) -> None:
        """Append a term of loss ``name`` (weight 1, the loss's default parameters)."""
        terms, _ = current_terms(self.state)
        keys = {t.get("label") or t.get("name") for t in terms}
        term: dict[str, Any] = {"name": name, "weight": 1.0, "params": {}}
        if name in keys:  # one loss twice: the second needs its own key
            n = 2
            while f"{name}-{n}" in keys:
                n += 1
            term["label"] = f"{name}-{n}"
        self._write([*terms, term])

    def remove_term(self, index: int) -> None:
        terms, _ = current_terms(self.state)
        if 0 <= index < len(terms):
            del terms[index]
            self._write(terms)

    def use_shorthand(self) -> None:
        """Return to the alpha/beta/gamma form (its defaults: 0.3 hard + 0.7 soft, T = 4)."""
        data = self.state.data
        data["distill"] = {}
        self.state.replace(data)

    def _write(self, terms: list[dict[str, Any]]) -> None:
        data = self.state.data
        data["distill"] = {"terms": terms}
        self.state.replace(data)  # every form re-reads; the shorthand form hides

    # -- showing ---------------------------------------------------------------------------------
    def _rebuild_if_the_list_changed(self) -> None:
        terms, written = current_terms(self.state)
        if not written or self._shown != _identity(terms):
            self.rebuild()
            return
        for card, term in zip(self.cards, terms, strict=False):
            card.show_pairs(term.get("pairs"))

    def rebuild(self) -> None:
        terms, written = current_terms(self.state)
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        for i, term in enumerate(terms):
            card = QtTermCard(self, i, term, editable=written)
            self.cards_layout.addWidget(card)
            self.cards.append(card)
        self._shown = _identity(terms) if written else None
        self.shorthand_button.setVisible(written)
        active = sum(1 for t in terms if float(t.get("weight", 1.0)) > EPS)
        self.mode_label.setText(
            f"{len(terms)} term(s), {active} with a weight above 0." if written else
            "The loss is the α/β/γ shorthand (the weights above); these are its terms. Adding "
            "or removing a term turns it into a list you can extend with any method."
        )


def set_term_pairs(state: QtConfigState, kind: str, pairs: list[list[str]] | None) -> None:
    """Write layer pairs chosen for ``kind`` ("feature"/"attention", e.g. by the student
    editor's pairing tool) where the loss keeps them: ``distill.KIND.pairs`` with the shorthand,
    else the ``pairs`` of every term of that loss (writing the shorthand field beside a list
    would be refused as mixing the two forms)."""
    terms, written = current_terms(state)
    if not written:
        state.set(("distill", kind, "pairs"), pairs)
        return
    for i, term in enumerate(terms):
        if term.get("name") == kind:
            state.set(("distill", "terms", i, "pairs"), pairs)


def _identity(terms: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """What the cards depend on: each term's loss and label (not its weight or parameters)."""
    return [(str(t.get("name")), t.get("label")) for t in terms]


__all__ = ["QtTermCard", "QtTermsEditor", "current_terms", "set_term_pairs"]
