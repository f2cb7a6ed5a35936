"""The CIFAR presets are picked in the Student panel like any preset, and drawn at their size."""

from __future__ import annotations


def test_resnet8x4_is_chosen_in_the_student_panel(window) -> None:
    panel = window.panels["student"]
    window.show_panel("student")
    names = [panel.preset_combo.itemData(i) for i in range(panel.preset_combo.count())]
    assert {"resnet8x4", "resnet32x4", "resnet20", "resnet56", "wrn-16-2", "wrn-40-2"} <= set(names)
    window.state.set(("data", "spec"), "cifar100:/not/needed/to/draw")  # 3×32×32, 100 classes
    panel.preset_combo.setCurrentIndex(names.index("resnet8x4"))
    assert window.state.config.student.preset == "resnet8x4"
    assert "1.23 M parameters" in panel.preset_help.text()
    assert panel.editor.model.report.total_params == 1_233_540  # the reference code's count
