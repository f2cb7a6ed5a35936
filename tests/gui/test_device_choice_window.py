"""The Training form's device choice lists this machine's devices, learnt by the engine
warm-up on its worker (auto, cpu, each GPU by name), and keeps a cuda:N it does not list."""

from __future__ import annotations

import pytest

from kdgui.core.config import ExperimentConfig
from kdgui.engine.jobs import probes
from kdgui.gui import qt_choice_sources

FAKE_GPUS = [
    {"device": "cpu", "label": "cpu", "name": "CPU", "memory_bytes": None},
    {"device": "cuda:0", "label": "cuda:0 — NVIDIA H200 (139 GiB)", "name": "NVIDIA H200",
     "memory_bytes": 139 * 2**30},
    {"device": "cuda:1", "label": "cuda:1 — NVIDIA H200 (139 GiB)", "name": "NVIDIA H200",
     "memory_bytes": 139 * 2**30},
]


@pytest.fixture
def fresh_sources(monkeypatch):
    """A private list of sources, and a warm-up that runs again (torch is imported already)."""
    monkeypatch.setattr(qt_choice_sources, "_SOURCES", None)
    monkeypatch.setattr(probes, "_WARM", {})


def _items(combo) -> list[tuple[str, str]]:
    return [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count())]


def test_before_the_warm_up_the_combo_lists_only_auto_and_cpu(fresh_sources, qtbot) -> None:
    from kdgui.core.config import TrainingConfig
    from kdgui.core.params import describe
    from kdgui.gui.qt_config_state import QtConfigState
    from kdgui.gui.qt_forms import QtParamForm

    form = QtParamForm(describe(TrainingConfig), QtConfigState(), ("training",))
    qtbot.addWidget(form)
    assert _items(form.fields["device"].editor) == [("auto", "auto"), ("cpu", "cpu")]


def test_the_combo_lists_the_gpus_the_warm_up_found(fresh_sources, monkeypatch, make_window,
                                                    qtbot, tmp_path) -> None:
    monkeypatch.setattr(probes, "available_devices", lambda: FAKE_GPUS)
    window = make_window()
    combo = window.panels["distill"].training_form.fields["device"].editor
    qtbot.waitUntil(lambda: combo.count() == 4, timeout=120000)
    assert _items(combo) == [("auto", "auto — the best found"), ("cpu", "cpu"),
                             ("cuda:0", "cuda:0 — NVIDIA H200 (139 GiB)"),
                             ("cuda:1", "cuda:1 — NVIDIA H200 (139 GiB)")]
    assert window.state.config.training.device == "auto"  # the refill changed nothing
    combo.setCurrentIndex(3)  # as a person picks it
    assert window.state.config.training.device == "cuda:1"
    window.panels["distill"].grab().save(str(tmp_path / "training.png"))

    # a config naming a GPU that is not listed (written on another machine) keeps it
    window.state.replace(ExperimentConfig.model_validate({"training": {"device": "cuda:5"}}))
    assert combo.currentData() == "cuda:5" and combo.currentText() == "cuda:5"
    assert window.state.config.training.device == "cuda:5"
    qt_choice_sources.publish_warm_up({"devices": FAKE_GPUS[:1]})  # refilled: still kept
    assert combo.currentData() == "cuda:5"
    assert [d for d, _ in _items(combo)] == ["auto", "cpu", "cuda:5"]
    assert window.state.config.training.device == "cuda:5"


def test_a_cuda_1_config_round_trips_through_the_form(fresh_sources, qtbot) -> None:
    """On this machine (CPU only in CI) the form shows and keeps cuda:1; a save writes it."""
    from kdgui.core.config import TrainingConfig
    from kdgui.core.params import describe
    from kdgui.gui.qt_config_state import QtConfigState
    from kdgui.gui.qt_forms import QtParamForm

    state = QtConfigState()
    state.replace(ExperimentConfig.model_validate({"training": {"device": "cuda:1"}}))
    form = QtParamForm(describe(TrainingConfig), state, ("training",))
    qtbot.addWidget(form)
    field = form.fields["device"]
    assert field.value() == "cuda:1"
    field.editor.setCurrentIndex(field.editor.findData("cpu"))
    assert state.config.training.device == "cpu"
    field.editor.setCurrentIndex(field.editor.findData("cuda:1"))
    assert state.config.training.device == "cuda:1"
    again = ExperimentConfig.model_validate(state.config.model_dump())
    assert again.training.device == "cuda:1"
