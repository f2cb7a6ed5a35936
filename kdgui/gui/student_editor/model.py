"""The student editor's model: the spec being drawn, its live report, selection and undo history.

Qt-free on purpose (the napari habit): the canvas, the layer list and the parameter form only
*observe* this object through :attr:`EditorModel.changed` / :attr:`EditorModel.selection_changed`
and call its edit methods; none of them holds layers of its own. So every view shows the same
spec, every edit is undoable in one place, and the whole editing logic is testable without a
window.

Layers are addressed by *paths*: ``(3,)`` is the fourth top-level layer, ``(3, 1)`` the second
layer inside that residual block (the same paths as :attr:`LayerReport.index`). An insertion path
names the position a new layer takes: ``(3, 0)`` is the first place in block 3's body.

Undo stores whole-spec snapshots: a spec is a few kilobytes of JSON, so snapshots are cheaper to
get right than inverse operations, and every edit (including loading a preset) is one step.
Consecutive changes of one field of one layer (a slider drag) merge into a single step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kdgui.core.errors import ConfigError
from kdgui.core.student_shapes import SpecReport, infer
from kdgui.core.student_spec import LAYER_TYPES, StudentSpec
from kdgui.gui.student_editor.layers import LABELS, LayerPath, new_layer

MAX_UNDO = 200

class Emitter:
    """A minimal observer list: ``connect(callback)`` and ``emit(*args)`` (no Qt needed)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., None]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass
class _Step:
    """One undoable edit: the spec (as plain data) and selection before and after."""

    text: str
    before: dict[str, Any]
    after: dict[str, Any]
    sel_before: LayerPath | None
    sel_after: LayerPath | None
    merge_key: Any = None


class EditorModel:
    """The spec being edited plus its inference report, selection and undo/redo history.

    ``changed`` is emitted after every change of the spec or the context (with a short reason),
    once :attr:`report` is up to date; ``selection_changed`` when the selected path changes.
    Edits that would make the spec unparseable raise :class:`ConfigError` and change nothing;
    edits that make it *invalid* (a shape error) are allowed and reported, since a person drawing
    a network passes through invalid states.
    """

    def __init__(self, spec: StudentSpec | None = None,
                 input_shape: tuple[int, int, int] = (1, 8, 8), num_classes: int = 10,
                 teacher_params: int | None = None) -> None:
        self.changed = Emitter()
        self.selection_changed = Emitter()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.teacher_params = teacher_params
        self._spec = (spec or StudentSpec()).model_copy(deep=True)
        self._selected: LayerPath | None = None
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self.report: SpecReport = self._infer()

    # -- reading ---------------------------------------------------------------------------------
    @property
    def spec(self) -> StudentSpec:
        """A copy of the current spec (callers may keep it; later edits do not touch it)."""
        return self._spec.model_copy(deep=True)

    @property
    def selected(self) -> LayerPath | None:
        return self._selected

    def is_valid(self) -> bool:
        return self.report.ok

    def layer(self, path: LayerPath) -> Any:
        """The layer object at ``path`` (read it; change it through :meth:`set_param`)."""
        layers, i = self._parent(self._spec, path)
        return layers[i]

    def size_ratio(self) -> float | None:
        """Teacher parameters per student parameter (``None`` when unknown)."""
        if not self.teacher_params or not self.report.total_params:
            return None
        return self.teacher_params / self.report.total_params

    def _infer(self) -> SpecReport:
        return infer(self._spec, self.input_shape, self.num_classes)  # type: ignore[arg-type]

    # -- context and selection -------------------------------------------------------------------
    def set_context(self, input_shape: tuple[int, ...], num_classes: int,
                    teacher_params: int | None = None) -> None:
        """The data's input shape and class count (and the teacher's size) to check against."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.teacher_params = teacher_params
        self.report = self._infer()
        self.changed.emit("context")

    def select(self, path: LayerPath | None) -> None:
        path = tuple(path) if path is not None else None
        if path is not None and not self._exists(path):
            path = None
        if path != self._selected:
            self._selected = path
            self.selection_changed.emit(path)

    def _exists(self, path: LayerPath) -> bool:
        try:
            self.layer(path)
        except (IndexError, ConfigError):
            return False
        return True

    # -- tree helpers ----------------------------------------------------------------------------
    @staticmethod
    def _children(spec: StudentSpec, parent: LayerPath) -> list[Any]:
        layers = spec.layers
        for i in parent:
            block = layers[i]
            if block.type != "residual":
                raise ConfigError(f"layer {'.'.join(map(str, parent))} is a {block.type}, not a "
                                  "residual block", "Only residual blocks hold layers.")
            layers = block.layers
        return layers

    def _parent(self, spec: StudentSpec, path: LayerPath) -> tuple[list[Any], int]:
        if not path:
            raise IndexError("empty path")
        layers = self._children(spec, tuple(path[:-1]))
        i = path[-1]
        if not 0 <= i < len(layers):
            raise IndexError(path)
        return layers, i

    # -- the one way to change the spec ----------------------------------------------------------
    def _apply(self, text: str, edit: Callable[[StudentSpec], LayerPath | None],
               merge_key: Any = None) -> None:
        before = self._spec.model_dump(mode="json")
        work = self._spec.model_copy(deep=True)
        sel = edit(work)
        try:  # re-validate the whole spec: a nested edit bypasses pydantic's assignment checks
            new = StudentSpec.model_validate(work.model_dump(mode="json"))
        except ValidationError as exc:
            raise ConfigError(f"invalid value: {exc.errors()[0].get('msg')}",
                              "Use a value in the allowed range.") from None
        after = new.model_dump(mode="json")
        if after == before:
            return
        top = self._undo[-1] if self._undo else None
        if merge_key is not None and top is not None and top.merge_key == merge_key \
                and not self._redo:
            top.after, top.sel_after = after, sel
        else:
            self._undo.append(_Step(text, before, after, self._selected, sel, merge_key))
            del self._undo[:-MAX_UNDO]
        self._redo.clear()
        self._set(new, sel, text)

    def _set(self, spec: StudentSpec, sel: LayerPath | None, reason: str) -> None:
        self._spec = spec
        self.report = self._infer()
        old = self._selected
        # views read the selection while redrawing: it must name an existing layer already
        self._selected = tuple(sel) if sel is not None and self._exists(tuple(sel)) else None
        self.changed.emit(reason)
        if self._selected != old:
            self.selection_changed.emit(self._selected)

    # -- edits -----------------------------------------------------------------------------------
    def insert(self, path: LayerPath, layer: Any) -> LayerPath:
        """Insert ``layer`` (an object or a type key) at insertion path ``path``."""
        obj = new_layer(layer) if isinstance(layer, str) else layer.model_copy(deep=True)
        path = tuple(path) or (len(self._spec.layers),)

        def edit(spec: StudentSpec) -> LayerPath:
            layers = self._children(spec, path[:-1])
            i = max(0, min(path[-1], len(layers)))
            layers.insert(i, obj)
            return (*path[:-1], i)

        self._apply(f"Add {LABELS.get(obj.type, obj.type)}", edit)
        assert self._selected is not None
        return self._selected

    def append(self, layer: Any) -> LayerPath:
        """Add after the selected layer (inside its block), or at the end."""
        sel = self._selected
        if sel is not None and self.layer(sel).type == "residual" and not self.layer(sel).layers:
            return self.insert((*sel, 0), layer)
        target = (*sel[:-1], sel[-1] + 1) if sel is not None else (len(self._spec.layers),)
        return self.insert(target, layer)

    def remove(self, path: LayerPath) -> None:
        path = tuple(path)
        layer = self.layer(path)

        def edit(spec: StudentSpec) -> LayerPath | None:
            layers, i = self._parent(spec, path)
            del layers[i]
            if layers:
                return (*path[:-1], min(i, len(layers) - 1))
            return path[:-1] or None

        self._apply(f"Delete {LABELS.get(layer.type, layer.type)}", edit)

    def duplicate(self, path: LayerPath) -> LayerPath:
        path = tuple(path)
        copy_ = self.layer(path).model_copy(deep=True)
        return self.insert((*path[:-1], path[-1] + 1), copy_)

    def move(self, src: LayerPath, dst: LayerPath) -> LayerPath | None:
        """Move the layer at ``src`` to insertion path ``dst`` (given in the tree *before*
        the move); moving a block into itself is refused."""
        src, dst = tuple(src), tuple(dst)
        if dst[: len(src)] == src:
            return None  # into itself (or onto itself)
        layer = self.layer(src)
        # Removing src shifts later siblings (and dst's ancestors) up by one.
        adj = list(dst)
        depth = len(src) - 1
        if len(adj) > depth and tuple(adj[:depth]) == src[:-1] and adj[depth] > src[-1]:
            adj[depth] -= 1
        target = tuple(adj)
        if target == src:
            return src

        def edit(spec: StudentSpec) -> LayerPath:
            layers, i = self._parent(spec, src)
            obj = layers.pop(i)
            dest = self._children(spec, target[:-1])
            j = max(0, min(target[-1], len(dest)))
            dest.insert(j, obj)
            return (*target[:-1], j)

        self._apply(f"Move {LABELS.get(layer.type, layer.type)}", edit)
        return self._selected

    def move_by(self, path: LayerPath, delta: int) -> LayerPath | None:
        """Move one place up (``-1``) or down (``+1``) among its siblings."""
        path = tuple(path)
        siblings = self._children(self._spec, path[:-1])
        j = path[-1] + delta
        if not 0 <= j < len(siblings):
            return None
        dst = (*path[:-1], j + 1 if delta > 0 else j)
        return self.move(path, dst)

    def wrap(self, paths: list[LayerPath]) -> LayerPath:
        """Wrap sibling layers (a contiguous run) in a residual block: add a skip connection."""
        paths = sorted(tuple(p) for p in paths)
        parent = paths[0][:-1]
        idx = [p[-1] for p in paths]
        if any(p[:-1] != parent for p in paths) or idx != list(range(idx[0], idx[-1] + 1)):
            raise ConfigError("only neighbouring layers of one level can share a skip connection",
                              "Select a run of consecutive layers.")

        def edit(spec: StudentSpec) -> LayerPath:
            layers = self._children(spec, parent)
            body = layers[idx[0]: idx[-1] + 1]
            block = LAYER_TYPES["residual"](layers=[b.model_copy(deep=True) for b in body])
            layers[idx[0]: idx[-1] + 1] = [block]
            return (*parent, idx[0])

        self._apply("Wrap with skip connection", edit)
        assert self._selected is not None
        return self._selected

    def unwrap(self, path: LayerPath) -> None:
        """Replace a residual block by its layers (remove the skip connection)."""
        path = tuple(path)
        if self.layer(path).type != "residual":
            raise ConfigError("only a residual block can be unwrapped", "Select a residual block.")

        def edit(spec: StudentSpec) -> LayerPath | None:
            layers, i = self._parent(spec, path)
            body = layers[i].layers
            layers[i: i + 1] = body
            return path if body else None

        self._apply("Remove skip connection", edit)

    def set_param(self, path: LayerPath, name: str, value: Any) -> None:
        """Set one parameter; an out-of-range value is a ConfigError naming field and range."""
        path = tuple(path)
        layer = self.layer(path)
        data = layer.model_dump()
        data[name] = value
        try:
            new = type(layer).model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"{layer.type}.{name} = {value!r}: {err.get('msg')}",
                              "Use a value in the allowed range.") from None

        def edit(spec: StudentSpec) -> LayerPath:
            layers, i = self._parent(spec, path)
            layers[i] = new
            return path

        self._apply(f"Set {name}", edit, merge_key=("param", path, name))

    def replace(self, spec: StudentSpec, text: str = "Replace student") -> None:
        """Replace the whole spec (a preset, a derived student, a loaded file) — undoable."""
        new = spec.model_copy(deep=True)

        def edit(work: StudentSpec) -> LayerPath | None:
            work.name = new.name
            work.layers[:] = new.layers
            return None

        self._apply(text, edit)

    def rename(self, name: str) -> None:
        def edit(work: StudentSpec) -> LayerPath | None:
            work.name = name
            return self._selected

        self._apply("Rename", edit)

    def reset(self, spec: StudentSpec) -> None:
        """Load ``spec`` as a new document: history cleared (used when a config is opened)."""
        self._undo.clear()
        self._redo.clear()
        self._set(spec.model_copy(deep=True), None, "reset")

    # -- history ---------------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    def undo(self) -> bool:
        if not self._undo:
            return False
        step = self._undo.pop()
        self._redo.append(step)
        self._set(StudentSpec.model_validate(copy.deepcopy(step.before)), step.sel_before,
                  "undo")
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        step = self._redo.pop()
        self._undo.append(step)
        self._set(StudentSpec.model_validate(copy.deepcopy(step.after)), step.sel_after, "redo")
        return True

    def end_merge(self) -> None:
        """Stop merging parameter changes into the last step (a slider was released)."""
        if self._undo:
            self._undo[-1].merge_key = None
