"""The soft-target explorer: bars show softmax(z/T), checked against an independent computation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from kdgui.gui.qt_soft_target_explorer import QtSoftTargetExplorer


def independent_softmax(logits, t):
    """softmax(z / T) in plain Python floats: no numpy, no engine code."""
    scaled = [float(z) / t for z in logits]
    top = max(scaled)
    exps = [math.exp(z - top) for z in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def independent_soft_loss(t_logits, s_logits, t):
    p = independent_softmax(t_logits, t)
    q = independent_softmax(s_logits, t)
    return t * t * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n, k = 6, 10
    teacher = rng.normal(0, 3, size=(n, k))
    teacher[np.arange(n), np.arange(n) % k] += 8  # a confident teacher, like a trained one
    return SimpleNamespace(
        images=rng.random((n, 1, 8, 8)).astype(np.float32),
        labels=np.arange(n) % k,
        class_names=[str(i) for i in range(k)],
        teacher_logits=teacher,
        student_logits=rng.normal(0, 1, size=(n, k)),
        student_source="test",
    )


@pytest.fixture
def explorer(qtbot, data):
    widget = QtSoftTargetExplorer()
    qtbot.addWidget(widget)
    widget.set_data(data)
    return widget


@pytest.mark.parametrize("t", [1, 2, 4, 7, 20])
@pytest.mark.parametrize("i", [0, 3])
def test_bars_are_the_softmax_at_t(explorer, data, t, i) -> None:
    explorer.set_index(i)
    explorer.set_temperature(t)
    assert explorer.temperature == t
    shown_teacher = np.asarray(explorer.teacher_bars.opts["height"])
    shown_student = np.asarray(explorer.student_bars.opts["height"])
    np.testing.assert_allclose(shown_teacher, independent_softmax(data.teacher_logits[i], t),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(shown_student, independent_softmax(data.student_logits[i], t),
                               rtol=1e-9, atol=1e-12)
    assert explorer.soft_loss_value() == pytest.approx(
        independent_soft_loss(data.teacher_logits[i], data.student_logits[i], t), rel=1e-9)


def test_raising_t_reveals_the_dark_knowledge(explorer, data) -> None:
    explorer.set_index(0)
    explorer.set_temperature(1)
    cold = explorer.teacher_probs()
    explorer.slider.setValue(20)  # as a user drags it
    hot = explorer.teacher_probs()
    label = int(data.labels[0])
    assert 1 - hot[label] > 1 - cold[label]  # more mass on the non-target classes
    assert "dark knowledge" in explorer.readout.text()
    assert f"{100 * (1 - hot[label]):.1f}%" in explorer.readout.text()


def test_the_slider_spans_1_to_20_and_log_scale_keeps_order(explorer) -> None:
    assert (explorer.slider.minimum(), explorer.slider.maximum()) == (1, 20)
    explorer.set_temperature(3)
    linear = np.asarray(explorer.teacher_bars.opts["height"])
    explorer.log_scale.setChecked(True)
    logged = np.asarray(explorer.teacher_bars.opts["height"])
    assert np.array_equal(np.argsort(linear), np.argsort(logged))
    assert np.all(logged >= 0)


def test_explorer_on_the_demo_teacher(qtbot) -> None:
    from kdgui.core.config import demo_config
    from kdgui.engine.soft_targets import explorer_data

    data = explorer_data(demo_config(), limit=20)
    widget = QtSoftTargetExplorer()
    qtbot.addWidget(widget)
    widget.set_data(data)
    widget.set_temperature(5)
    np.testing.assert_allclose(widget.teacher_probs(),
                               independent_softmax(data.teacher_logits[0], 5), rtol=1e-9)
    assert widget.index.maximum() == 19
