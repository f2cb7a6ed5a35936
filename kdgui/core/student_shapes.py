"""Shape, parameter and MAC inference for a :class:`StudentSpec`, without torch.

The drawing editor calls :func:`infer` on every edit to show each layer's output shape, its
parameter count and what is wrong with it, so this module must be pure Python and fast. The engine
builds its ``nn.Module`` from the same walk (:func:`kdgui.engine.models.build_from_spec` reads the
per-layer ``detail``), and the tests check that the counts here equal the built module's, so the
numbers a person sees while drawing are the numbers they will train.

Conventions (the builder follows them exactly):

* Shapes exclude the batch dimension: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors.
* ``padding="same"`` means ``kernel_size // 2``; pools have no padding and a stride equal to the
  kernel unless given.
* ``dwconv`` is a bias-free depthwise convolution (``groups = in_channels``); ``sepconv`` is a
  bias-free depthwise ``k×k`` (padding ``k // 2``) followed by a bias-free pointwise ``1×1``.
* ``batchnorm`` is ``BatchNorm2d`` on feature maps and ``BatchNorm1d`` on flat vectors.
* ``gap`` averages each channel to one number and flattens: ``(C, H, W) → (C,)``.
* ``linear`` needs a flat input: it does **not** flatten on its own, because silently
  flattening a ``C×H×W`` map usually means a forgotten pooling layer and a huge layer. The error
  says to add Flatten or global average pooling before it.
* ``residual`` computes ``body(x) + shortcut(x)`` with no activation after the sum (add a ReLU
  layer after it, as the presets do). When the body changes the shape, the shortcut is a bias-free
  ``1×1`` convolution with the matching stride plus ``BatchNorm2d`` (or a bias-free ``Linear`` for
  flat tensors); otherwise it is the identity.
* ``inverted_residual`` is MobileNetV2's block: ``1×1`` expand (skipped when ``expand_ratio`` is
  1) + BN + ReLU6, depthwise ``k×k`` + BN + ReLU6, ``1×1`` project + BN; the input is added when
  the stride is 1 and the channels do not change.
* MACs count the multiply-accumulates of convolutions and linear layers (including shortcut
  projections) for one sample; normalisation, activations and pooling are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdgui.core.errors import ConfigError
from kdgui.core.student_spec import StudentSpec

Shape = tuple[int, ...]

MAX_PROJECTION_STRIDE = 16


@dataclass
class LayerReport:
    """What one layer (or block) of a spec does to the tensor, and what is wrong with it.

    ``index`` is the path into the spec: ``(3,)`` is the fourth top-level layer and ``(3, 1)`` the
    second layer inside that block. ``name`` is the matching attribute path in the built module
    (``layers.3`` / ``layers.3.body.1``), so feature hooks can be attached by name. Shapes are
    ``None`` where an earlier error makes them unknowable. A block's ``params``/``macs`` include
    its children and its shortcut projection.
    """

    index: tuple[int, ...]
    name: str
    type: str
    in_shape: Shape | None
    out_shape: Shape | None
    params: int = 0
    macs: int = 0
    error: str | None = None
    fix: str | None = None
    note: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Nesting level: 0 for top-level layers, 1 inside a block."""
        return len(self.index) - 1


@dataclass(frozen=True)
class SpecError:
    """One problem of a spec: where (``index`` is ``None`` for the spec as a whole), what, fix."""

    index: tuple[int, ...] | None
    what: str
    fix: str

    def one_line(self) -> str:
        where = "the student" if self.index is None else "layer " + ".".join(map(str, self.index))
        return f"{where}: {self.what}. {self.fix}"


@dataclass
class SpecReport:
    """The result of :func:`infer`: every layer in pre-order, totals and the problems found."""

    input_shape: Shape
    num_classes: int
    layers: list[LayerReport]
    output_shape: Shape | None
    total_params: int
    total_macs: int
    errors: list[SpecError]

    @property
    def ok(self) -> bool:
        return not self.errors

    def layer_at(self, index: tuple[int, ...]) -> LayerReport:
        """The report of the layer at ``index`` (a path as in :attr:`LayerReport.index`)."""
        for rep in self.layers:
            if rep.index == tuple(index):
                return rep
        raise KeyError(index)

    def raise_if_invalid(self, *, source: str | None = None) -> None:
        """Raise a :class:`ConfigError` for the first problem, for front ends that need one."""
        if self.errors:
            err = self.errors[0]
            more = f" ({len(self.errors) - 1} more problem(s) after it)" if len(self.errors) > 1 else ""
            where = (
                "the student" if err.index is None
                else "student layer " + ".".join(map(str, err.index))
            )
            raise ConfigError(f"{where}: {err.what}{more}", err.fix, source=source)


def fmt_shape(shape: Shape | None) -> str:
    """``(1, 8, 8)`` → ``'1×8×8'`` for messages."""
    return "?" if shape is None else "×".join(str(s) for s in shape)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis (dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def _pad(padding: int | str, kernel: int) -> int:
    return kernel // 2 if padding == "same" else int(padding)


class _Walker:
    """Walks the spec once, filling reports; mirrors the module the engine builds."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.reports: list[LayerReport] = []
        self.errors: list[SpecError] = []

    # -- helpers -----------------------------------------------------------------------------
    def _fail(self, rep: LayerReport, what: str, fix: str) -> None:
        if rep.error is None:  # keep the first problem per layer on the report
            rep.error, rep.fix = what, fix
        self.errors.append(SpecError(rep.index, what, fix))

    def _need_map(self, rep: LayerReport, shape: Shape) -> bool:
        if len(shape) == 3:
            return True
        self._fail(
            rep,
            f"{rep.type} needs a C×H×W feature map but gets a flat vector of {shape[0]} features",
            "Move it before the Flatten / global average pool, or remove it",
        )
        return False

    def _spatial(self, rep: LayerReport, c: int, h: int, w: int, what: str) -> Shape | None:
        if h < 1 or w < 1:
            self._fail(
                rep,
                f"{what} shrinks the {fmt_shape(rep.in_shape)} input to {h}×{w} (below 1×1)",
                "Use a smaller kernel or stride, add padding, or remove a pooling/strided layer "
                "before it",
            )
            return None
        return (c, h, w)

    # -- walking -----------------------------------------------------------------------------
    def walk(self, layers: list[Any], shape: Shape | None, prefix: tuple[int, ...],
             name_prefix: str) -> tuple[Shape | None, int, int]:
        params = macs = 0
        for i, layer in enumerate(layers):
            rep = LayerReport((*prefix, i), f"{name_prefix}.{i}", layer.type, shape, None)
            self.reports.append(rep)
            if shape is not None:
                self._layer(layer, rep, shape)
            elif layer.type in ("residual",):
                # still list the children so the editor can show them
                self.walk(layer.layers, None, rep.index, f"{rep.name}.body")
            shape = rep.out_shape
            params += rep.params
            macs += rep.macs
        return shape, params, macs

    def _layer(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        t = layer.type
        handler = getattr(self, f"_do_{t}")
        handler(layer, rep, shape)

    def _do_conv2d(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if not self._need_map(rep, shape):
            return
        c, h, w = shape
        k, s, g, out_c = layer.kernel_size, layer.stride, layer.groups, layer.out_channels
        p = _pad(layer.padding, k)
        if c % g or out_c % g:
            self._fail(
                rep,
                f"groups={g} must divide both the input channels ({c}) and out_channels ({out_c})",
                f"Set groups to a common divisor of {c} and {out_c} (1 always works)",
            )
        rep.out_shape = self._spatial(rep, out_c, conv_out(h, k, s, p), conv_out(w, k, s, p),
                                      f"conv2d (kernel {k}, stride {s}, padding {p})")
        rep.detail = {"in_channels": c, "padding": p}
        rep.params = out_c * (c // g) * k * k + (out_c if layer.bias else 0)
        if rep.out_shape:
            rep.macs = out_c * (c // g) * k * k * rep.out_shape[1] * rep.out_shape[2]

    def _do_dwconv(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if not self._need_map(rep, shape):
            return
        c, h, w = shape
        k, s = layer.kernel_size, layer.stride
        p = _pad(layer.padding, k)
        rep.out_shape = self._spatial(rep, c, conv_out(h, k, s, p), conv_out(w, k, s, p),
                                      f"dwconv (kernel {k}, stride {s}, padding {p})")
        rep.detail = {"in_channels": c, "padding": p}
        rep.params = c * k * k
        if rep.out_shape:
            rep.macs = c * k * k * rep.out_shape[1] * rep.out_shape[2]

    def _do_sepconv(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if not self._need_map(rep, shape):
            return
        c, h, w = shape
        k, s, out_c = layer.kernel_size, layer.stride, layer.out_channels
        p = k // 2
        rep.out_shape = self._spatial(rep, out_c, conv_out(h, k, s, p), conv_out(w, k, s, p),
                                      f"sepconv (kernel {k}, stride {s})")
        rep.detail = {"in_channels": c, "padding": p}
        rep.params = c * k * k + c * out_c
        if rep.out_shape:
            rep.macs = (c * k * k + c * out_c) * rep.out_shape[1] * rep.out_shape[2]

    def _do_batchnorm(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        rep.out_shape = shape
        rep.params = 2 * shape[0]
        rep.detail = {"dims": 2 if len(shape) == 3 else 1, "features": shape[0]}

    def _same(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        rep.out_shape = shape

    _do_relu = _do_gelu = _do_dropout = _same

    def _pool(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if not self._need_map(rep, shape):
            return
        c, h, w = shape
        k = layer.kernel_size
        s = layer.stride or k
        rep.detail = {"stride": s}
        rep.out_shape = self._spatial(rep, c, conv_out(h, k, s, 0), conv_out(w, k, s, 0),
                                      f"{layer.type} (kernel {k}, stride {s})")

    _do_maxpool = _do_avgpool = _pool

    def _do_flatten(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        n = 1
        for s in shape:
            n *= s
        rep.out_shape = (n,)

    def _do_gap(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if self._need_map(rep, shape):
            rep.out_shape = (shape[0],)

    def _do_linear(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        rep.out_shape = (layer.out_features,)
        if len(shape) != 1:
            self._fail(
                rep,
                f"linear needs a flat input but gets a {fmt_shape(shape)} feature map",
                "Add Flatten or global average pool before it",
            )
            rep.out_shape = None
            return
        rep.detail = {"in_features": shape[0]}
        rep.params = shape[0] * layer.out_features + (layer.out_features if layer.bias else 0)
        rep.macs = shape[0] * layer.out_features

    def _do_residual(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        out, params, macs = self.walk(layer.layers, shape, rep.index, f"{rep.name}.body")
        rep.params, rep.macs = params, macs
        if out is None:
            return
        if out == shape:
            rep.out_shape = shape
            rep.detail = {"projection": None}
            return
        if len(out) != len(shape):
            self._fail(
                rep,
                f"the residual's layers turn a {fmt_shape(shape)} input into {fmt_shape(out)}; "
                "the skip connection cannot add tensors of different rank",
                "Keep Flatten / global average pool outside the residual block",
            )
            return
        if len(shape) == 1:
            rep.detail = {"projection": {"kind": "linear", "in": shape[0], "out": out[0]}}
            rep.params += shape[0] * out[0]
            rep.macs += shape[0] * out[0]
            rep.note = f"adds a linear shortcut {shape[0]}→{out[0]}"
            rep.out_shape = out
            return
        c, h, w = shape
        oc, oh, ow = out
        stride = next(
            (s for s in range(1, MAX_PROJECTION_STRIDE + 1)
             if conv_out(h, 1, s, 0) == oh and conv_out(w, 1, s, 0) == ow),
            None,
        )
        if stride is None:
            self._fail(
                rep,
                f"the residual's layers change the size from {h}×{w} to {oh}×{ow}, which no "
                "strided 1×1 shortcut can match",
                "Use 'same' padding inside the block so only strides change the size",
            )
            return
        rep.detail = {"projection": {"kind": "conv", "in": c, "out": oc, "stride": stride}}
        rep.params += c * oc + 2 * oc
        rep.macs += c * oc * oh * ow
        rep.note = f"adds a 1×1 shortcut {c}→{oc}" + (f", stride {stride}" if stride > 1 else "")
        rep.out_shape = out

    def _do_inverted_residual(self, layer: Any, rep: LayerReport, shape: Shape) -> None:
        if not self._need_map(rep, shape):
            return
        c, h, w = shape
        t, k, s, out_c = layer.expand_ratio, layer.kernel_size, layer.stride, layer.out_channels
        hidden = c * t
        p = k // 2
        oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        rep.out_shape = self._spatial(rep, out_c, oh, ow, f"inverted_residual (stride {s})")
        skip = s == 1 and c == out_c
        rep.detail = {"in_channels": c, "hidden": hidden, "padding": p, "skip": skip}
        rep.params = (
            (c * hidden + 2 * hidden if t != 1 else 0)
            + hidden * k * k + 2 * hidden
            + hidden * out_c + 2 * out_c
        )
        if rep.out_shape:
            rep.macs = (
                (c * hidden * h * w if t != 1 else 0)
                + hidden * k * k * oh * ow
                + hidden * out_c * oh * ow
            )
        rep.note = "with skip connection" if skip else None


def infer(spec: StudentSpec, input_shape: tuple[int, int, int], num_classes: int) -> SpecReport:
    """Infer every layer's shapes, parameters and MACs for one input of ``input_shape``.

    Never raises for a bad spec: problems are listed in ``errors`` (and on the layer concerned),
    so the editor can show all of them while the user draws. Use
    :meth:`SpecReport.raise_if_invalid` where an exception is wanted.
    """
    shape: Shape = tuple(int(s) for s in input_shape)
    walker = _Walker(num_classes)
    if len(shape) != 3 or min(shape) < 1:
        walker.errors.append(SpecError(
            None, f"the input shape {shape} is not a positive C×H×W triple",
            "Give the input as channels, height, width (e.g. 1, 28, 28)"))
        return SpecReport(shape, num_classes, [], None, 0, 0, walker.errors)
    out, params, macs = walker.walk(list(spec.layers), shape, (), "layers")
    if not spec.layers:
        walker.errors.append(SpecError(
            None, "the student has no layers",
            f"Add layers ending in a Linear with out_features={num_classes}, or pick a preset"))
    elif out is not None:
        last_linear = next((r for r in reversed(walker.reports)
                            if r.type == "linear" and r.depth == 0), None)
        if len(out) != 1:
            walker.errors.append(SpecError(
                None, f"the student ends with a {fmt_shape(out)} feature map instead of "
                f"{num_classes} class scores",
                f"End it with global average pool (or Flatten) and a Linear with "
                f"out_features={num_classes}"))
        elif out[0] != num_classes:
            what = f"the student outputs {out[0]} features but the data has {num_classes} classes"
            if last_linear is not None:
                walker._fail(last_linear, what,
                             f"Set the last Linear's out_features to {num_classes}")
            else:
                walker.errors.append(SpecError(
                    None, what, f"Add a Linear with out_features={num_classes} at the end"))
    return SpecReport(shape, num_classes, walker.reports, out, params, macs, walker.errors)


def describe_layer(rep: LayerReport) -> str:
    """A one-line summary for lists and tooltips: ``conv2d 1×8×8 → 16×8×8, 144 params``."""
    text = f"{rep.type} {fmt_shape(rep.in_shape)} → {fmt_shape(rep.out_shape)}, {rep.params:,} params"
    if rep.note:
        text += f" ({rep.note})"
    if rep.error:
        text += f" — {rep.error}"
    return text
