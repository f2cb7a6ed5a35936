"""The student editor: draw from the palette, hit and fix shape errors, undo, files, run it."""

from __future__ import annotations

import ast

import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from kdgui.core.presets import PRESETS
from kdgui.core.student_spec import StudentSpec
from kdgui.gui.student_editor import StudentEditor
from kdgui.gui.student_editor.model import EditorModel
from kdgui.gui.student_editor.qt_canvas import path_mime


@pytest.fixture
def editor(qtbot) -> StudentEditor:
    w = StudentEditor()
    qtbot.addWidget(w)
    w.set_context((1, 8, 8), 10, teacher_params=140_458)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def _drop_at(editor: StudentEditor, mime, scene_y: float) -> None:
    """What a drag from the palette (or a block) does: enter, move, drop at ``scene_y``."""
    canvas = editor.canvas
    canvas.ensureVisible(QRectF(0, scene_y - 5, 10, 10))
    pos = canvas.mapFromScene(QPointF(100, scene_y))
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    args = (mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    for event in (QDragEnterEvent(pos, actions, *args), QDragMoveEvent(pos, actions, *args),
                  QDropEvent(QPointF(pos), actions, *args)):
        QApplication.sendEvent(canvas.viewport(), event)
        assert event.isAccepted()


def _drop(editor: StudentEditor, mime, where: str = "end") -> None:
    """Drop ``mime`` at the end (on the output block) or at the start (on the input block)."""
    block = editor.canvas.blocks[-1] if where == "end" else editor.canvas.blocks[0]
    _drop_at(editor, mime, block.pos().y() + (2 if where == "end" else block.height - 2))


def _drop_type(editor: StudentEditor, layer_type: str, where: str = "end") -> None:
    palette = editor.palette_list
    _drop(editor, palette.mimeData([palette.item_for(layer_type)]), where)


def _types(spec: StudentSpec) -> list[str]:
    return [layer.type for layer in spec.layers]


def test_build_from_the_palette_hit_and_fix_errors_undo_redo(editor, qtbot) -> None:
    with qtbot.waitSignal(editor.specChanged) as changed:
        _drop_type(editor, "conv2d")
    assert _types(changed.args[0]) == ["conv2d"]
    for kind in ("relu", "linear"):
        _drop_type(editor, kind)
    assert _types(editor.spec()) == ["conv2d", "relu", "linear"]
    # A Linear on a feature map: the block is red with the fix, Run would be refused.
    assert not editor.is_valid()
    bad = editor.canvas.block_at((2,))
    assert bad is not None and "Flatten" in bad.error
    assert "problem" in editor.summary.text()
    assert "⚠" in editor.layer_list.item_for((2,)).text(1)
    # Fix it: global average pooling dropped before the Linear (on the Linear's upper half).
    mime = editor.palette_list.mimeData([editor.palette_list.item_for("gap")])
    _drop_at(editor, mime, editor.canvas.block_at((2,)).pos().y() + 3)
    assert _types(editor.spec()) == ["conv2d", "relu", "gap", "linear"]
    # Still wrong: 64 outputs for 10 classes; fixed in the form's spin box.
    assert not editor.is_valid()
    assert "out_features to 10" in editor.model.report.errors[0].fix
    editor.model.select((3,))
    field = editor.form.fields["out_features"]
    field.spin.setValue(10)
    assert editor.is_valid()
    assert editor.canvas.block_at((3,)).error == ""
    assert editor.canvas.blocks[-1].shape == "10"
    # Every edit undoes and redoes; a shape error appears and goes with it.
    editor.model.insert((1,), "maxpool")
    editor.model.insert((1,), "maxpool")
    editor.model.insert((1,), "maxpool")
    editor.model.insert((1,), "maxpool")
    assert not editor.is_valid() and editor.canvas.block_at((4,)).error
    editor.actions_by_key["undo"].trigger()
    assert editor.is_valid() and _types(editor.spec()).count("maxpool") == 3
    editor.actions_by_key["redo"].trigger()
    assert not editor.is_valid()
    for _ in range(5):
        editor.model.undo()
    assert editor.spec().layers[3].out_features == 64  # the form's edit undone too
    while editor.model.can_undo():
        editor.model.undo()
    assert editor.spec().layers == []
    while editor.model.can_redo():
        editor.model.redo()
    assert len(editor.spec().layers) == 8


def test_reorder_by_drag_duplicate_delete_and_wrap_in_skip(editor, qtbot) -> None:
    editor.set_spec(PRESETS["cnn-tiny"].build((1, 8, 8), 10))
    n = len(editor.spec().layers)
    last = (n - 1,)
    _drop(editor, path_mime(last), where="start")  # the Linear dragged to the top
    assert _types(editor.spec())[0] == "linear" and not editor.is_valid()
    editor.model.undo()
    assert editor.is_valid()
    editor.model.select((0,))
    editor.canvas.setFocus()
    editor.actions_by_key["duplicate"].trigger()
    assert _types(editor.spec())[:2] == ["conv2d", "conv2d"]
    assert editor.is_valid()  # 8→8 channels twice is fine
    editor.actions_by_key["wrap"].trigger()
    assert editor.spec().layers[1].type == "residual"
    editor.model.insert((1, 1), "batchnorm")  # into the block's body
    assert [la.type for la in editor.spec().layers[1].layers] == ["conv2d", "batchnorm"]
    assert editor.is_valid() and any(b.role == "footer" for b in editor.canvas.blocks)
    # Keyboard: select the block in the list, move it down, delete it.
    editor.layer_list.setFocus()
    editor.layer_list.setCurrentItem(editor.layer_list.item_for((1,)))
    assert editor.model.selected == (1,)
    qtbot.keyClick(editor.layer_list, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert editor.spec().layers[2].type == "residual"
    qtbot.keyClick(editor.layer_list, Qt.Key.Key_Delete)
    assert "residual" not in _types(editor.spec())
    assert len(editor.spec().layers) == n  # the duplicate went with the block


def test_keyboard_only_build_with_palette_enter(editor, qtbot) -> None:
    palette = editor.palette_list
    for kind in ("flatten", "linear"):
        palette.setCurrentItem(palette.item_for(kind))
        qtbot.keyClick(palette, Qt.Key.Key_Return)
    editor.model.set_param((1,), "out_features", 10)
    assert _types(editor.spec()) == ["flatten", "linear"] and editor.is_valid()
    assert "640" in editor.summary.text() or "650" in editor.summary.text()


def test_save_and_reload_yaml_and_json(editor, tmp_path) -> None:
    editor.open_preset("resnet-tiny", width=0.5)
    drawn = editor.spec()
    for name in ("student.yaml", "student.json"):
        assert editor.save(tmp_path / name)
        editor.set_spec(StudentSpec())
        assert editor.load(tmp_path / name)
        assert editor.spec() == drawn
    (tmp_path / "bad.yaml").write_text("nothing: here\n")
    assert not editor.load(tmp_path / "bad.yaml")
    assert "layers" in editor.message.text()


def test_copy_code_matches_and_is_refused_while_invalid(editor) -> None:
    editor.open_preset("mobilenet-tiny")
    assert editor.copy_code()
    text = QApplication.clipboard().text()
    ast.parse(text)
    assert "InvertedResidualBlock" in text
    editor.model.set_param((len(editor.spec().layers) - 1,), "out_features", 7)
    assert not editor.copy_code()
    assert "Cannot generate code" in editor.message.text()


def test_form_fields_come_from_the_layer_declarations(editor) -> None:
    editor.model.insert((0,), "conv2d")
    form = editor.form
    assert set(form.fields) == {"out_channels", "kernel_size", "stride", "padding", "groups",
                                "bias"}
    spin = form.fields["kernel_size"].spin
    assert (spin.minimum(), spin.maximum()) == (1, 11)
    pad = form.fields["padding"]
    assert pad.auto is not None and pad.auto.isChecked()
    pad.auto.setChecked(False)
    assert editor.spec().layers[0].padding == pad.spin.value()
    slider = form.fields["out_channels"].slider  # logarithmic over 1..4096
    slider.setValue(slider.maximum())
    assert editor.spec().layers[0].out_channels == 4096
    editor.model.end_merge()
    editor.model.undo()
    assert editor.spec().layers[0].out_channels == 16


def test_model_moves_across_blocks_and_refuses_moving_into_itself() -> None:
    model = EditorModel(StudentSpec.model_validate({"layers": [
        {"type": "conv2d"}, {"type": "residual", "layers": [{"type": "relu"}]},
        {"type": "gap"}, {"type": "linear", "out_features": 10}]}))
    assert model.is_valid()
    assert model.move((1,), (1, 0)) is None  # into itself
    model.move((0,), (1, 1))  # the conv into the block, after the relu
    assert [la.type for la in model.spec.layers] == ["residual", "gap", "linear"]
    assert [la.type for la in model.spec.layers[0].layers] == ["relu", "conv2d"]
    assert model.is_valid() and "1×1 shortcut 1→16" in model.report.layer_at((0,)).note
    model.unwrap((0,))
    assert [la.type for la in model.spec.layers] == ["relu", "conv2d", "gap", "linear"]
    model.undo()
    model.undo()
    assert model.spec.layers[0].type == "conv2d"


def test_window_student_panel_edits_config_and_gates_run(make_window) -> None:
    window = make_window()
    window.show_panel("student")
    panel = window.panels["student"]
    editor: StudentEditor = panel.editor
    assert editor.spec() == PRESETS["cnn-small"].build((1, 8, 8), 10)
    assert editor.model.teacher_params and editor.model.size_ratio() > 1
    assert window.run_action.isEnabled()
    editor.model.set_param((len(editor.spec().layers) - 1,), "out_features", 3)
    assert window.state.get(("student", "spec"))["layers"][-1]["out_features"] == 3
    assert not window.run_action.isEnabled()
    assert any(i.path == ("student", "spec") for i in window.state.issues)
    assert not window.start_run()
    editor.model.undo()
    assert window.run_action.isEnabled() and window.state.config.student.spec is not None
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("mlp-tiny"))
    assert window.state.get(("student", "spec")) is None
    assert _types(editor.spec())[0] == "flatten"


def test_a_drawn_student_distills(editor, tmp_path) -> None:
    """One short epoch of the real engine on the digits demo, with the student drawn here."""
    from kdgui.core.config import demo_config
    from kdgui.core.events import RunFinished
    from kdgui.engine.session import run

    for kind in ("conv2d", "batchnorm", "relu", "maxpool", "gap", "linear"):
        editor.add_layer(kind)
    editor.model.set_param((0,), "out_channels", 8)
    editor.model.set_param((5,), "out_features", 10)
    assert editor.is_valid()
    config = demo_config()
    config.student.spec = editor.spec()
    config.training.epochs = 1
    config.data.limit = 400
    events = list(run(config, tmp_path / "run"))
    assert isinstance(events[-1], RunFinished) and not events[-1].stopped
    started = events[0]
    # the engine built the drawn network: the editor's count is the engine's
    assert started.student["source"] == "spec"
    assert started.student["params"] == editor.model.report.total_params


def test_pairing_view_draws_automatic_pairs_and_lets_the_user_change_them(editor, qtbot) -> None:
    from kdgui.gui.student_editor.context import demo_teacher_spec

    editor.set_context((1, 8, 8), 10, 140_458, teacher_spec=demo_teacher_spec())
    editor.open_preset("cnn-small")
    editor.tabs.setCurrentWidget(editor.pairing)
    view = editor.pairing
    view.recompute()
    auto = view.pairs()
    assert auto and all(t.startswith("layers.") and s.startswith("layers.") for t, s in auto)
    assert "automatic pairs" in view.status.text() and view.rows
    t_name = view.data["teacher"][0][0]
    s_name = view.data["student"][0][0]
    with qtbot.waitSignal(view.pairsChanged) as sig:
        view.click_row("teacher", t_name)
        view.click_row("student", s_name)
    assert sig.args[0] == "feature" and [t_name, s_name] in sig.args[1]
    assert (t_name, s_name) in view.pairs()
    view.reset_pairs()
    assert view.pairs() == auto
