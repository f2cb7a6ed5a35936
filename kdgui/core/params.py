"""One declaration of a component's parameters, read by the config, the CLI and the window.

A component's parameters are a pydantic model. Each field states its type, default, range
(``ge``/``gt``/``le``/``lt``), help text (``description``) and, optionally, a unit and a slider step
in ``json_schema_extra``. :func:`describe` flattens such a model into :class:`ParamSpec` records,
which the CLI turns into flags and the window into sliders, so none of the three can drift apart.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo


class Params(BaseModel):
    """Base of every parameter model: unknown keys are errors, assignments are validated.

    Numbers are read strictly, because a lenient reading silently runs something else than what
    the file says: ``epochs: true`` is not 1 epoch, ``epochs: "5"`` is a typo'd quote, and NaN or
    infinity pass every ``le``/``ge`` check they are compared with (they are refused as "must be a
    number"). Float fields still take numeric strings, since YAML 1.1 reads ``3e-3`` as a string.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name is None or name not in cls.model_fields:
            return value
        annotation, _ = _unwrap_optional(cls.model_fields[name].annotation)
        if annotation not in (int, float):
            return value
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        if annotation is int and isinstance(value, str):
            raise ValueError("must be a whole number, not text")
        return value


def param(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    unit: str = "",
    step: float | None = None,
    formula: str = "",
    max_length: int | None = None,
    choices: tuple[str, ...] = (),
    more_choices: str = "",
    choices_from: str = "",
) -> Any:
    """Declare one parameter: default, help text, range, unit and slider step, once.

    A text parameter with ``choices`` is shown as a choice; ``more_choices`` says in words what
    else it takes (its validator checks it: ``"cuda:N (GPU number N)"``), and ``choices_from``
    names where a front end can learn this machine's actual choices (``"devices"``).
    """
    extra: dict[str, Any] = {}
    if choices:
        extra["choices"] = list(choices)
    if more_choices:
        extra["more_choices"] = more_choices
    if choices_from:
        extra["choices_from"] = choices_from
    if unit:
        extra["unit"] = unit
    if step is not None:
        extra["step"] = step
    if formula:
        extra["formula"] = formula
    return Field(
        default, description=help, ge=ge, gt=gt, le=le, lt=lt, max_length=max_length,
        json_schema_extra=extra or None,
    )


@dataclass(frozen=True)
class ParamSpec:
    """A flat, front-end-neutral description of one parameter."""

    name: str
    kind: str  # "float", "int", "bool", "choice", "str", "list", "object"
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    choices: tuple[Any, ...] = ()
    unit: str = ""
    step: float | None = None
    formula: str = ""
    optional: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def range_text(self) -> str:
        """Human text for the allowed range, e.g. ``0 < T ≤ 100``."""
        if self.choices:
            more = self.extra.get("more_choices")
            return "one of " + ", ".join(str(c) for c in self.choices) + (f" or {more}" if more else "")
        lo = hi = ""
        if self.minimum is not None:
            lo = f"{'>' if self.exclusive_min else '≥'} {_number(self.minimum)}"
        if self.maximum is not None:
            hi = f"{'<' if self.exclusive_max else '≤'} {_number(self.maximum)}"
        return " and ".join(p for p in (lo, hi) if p)


def _number(value: float) -> str:
    """``4294967295`` rather than ``4.29497e+09`` for whole bounds; ``0.05`` for the rest."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _kind_of(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    if get_origin(annotation) is Literal:
        return "choice", get_args(annotation)
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if annotation is str:
        return "str", ()
    if get_origin(annotation) in (list, tuple):
        return "list", ()
    return "object", ()


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in info.metadata:
        for attr, key, excl in (
            ("ge", "minimum", False),
            ("gt", "minimum", True),
            ("le", "maximum", False),
            ("lt", "maximum", True),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                out[key] = float(value)
                out["exclusive_min" if key == "minimum" else "exclusive_max"] = excl
    return out


def describe(model: type[BaseModel]) -> list[ParamSpec]:
    """Flatten a parameter model into :class:`ParamSpec` records, in declaration order."""
    specs: list[ParamSpec] = []
    for name, info in model.model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        kind, choices = _kind_of(annotation)
        extra = dict(info.json_schema_extra or {}) if isinstance(info.json_schema_extra, dict) else {}
        default = info.get_default(call_default_factory=True)
        if kind == "str" and "choices" in extra:  # an open choice: param(..., choices=...)
            kind, choices = "choice", tuple(extra.pop("choices"))
        specs.append(
            ParamSpec(
                name=name,
                kind=kind,
                default=default,
                help=info.description or "",
                choices=tuple(choices),
                unit=str(extra.pop("unit", "")),
                step=extra.pop("step", None),
                formula=str(extra.pop("formula", "")),
                optional=optional,
                extra=extra,
                **_bounds(info),
            )
        )
    return specs
