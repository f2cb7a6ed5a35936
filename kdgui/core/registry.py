"""Registries of pluggable components, one per kind (losses, pruners, quantizers, ...).

A :class:`Component` names its parameter model (declared in ``kdgui.core.components``, no torch)
and *where* its implementation lives as a ``"module:attribute"`` string. The core can therefore
validate configs and build forms without importing torch, and the engine resolves the
implementation only when it runs one. Built-in components are declared in one package that every
registry imports on first use, so no component silently goes missing because nobody imported its
module (a trap of registries that register at import time). Plugins call :meth:`Registry.add`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kdgui.core.errors import ConfigError
from kdgui.core.params import ParamSpec, describe

KINDS = ("loss", "pruner", "quantizer", "decomposer", "exporter")


@dataclass(frozen=True)
class Component:
    """One registered unit: its key, parameters, implementation path and the text users see."""

    kind: str
    name: str
    params: type[BaseModel]
    impl: str
    title: str
    summary: str = ""
    formula: str = ""
    paper: str = ""

    def param_specs(self) -> list[ParamSpec]:
        """The parameters as flat records for forms and CLI flags."""
        return describe(self.params)

    def validate(self, values: dict[str, Any] | None, *, where: str = "") -> BaseModel:
        """Validate ``values`` against this component's parameters, with a user-facing error."""
        try:
            return self.params.model_validate(values or {})
        except ValidationError as exc:
            raise ConfigError(
                _first_error(exc, where or f"{self.kind} '{self.name}'"),
                "Check the value against the allowed range shown, or run "
                "'kdgui config --example' for a valid config.",
            ) from None

    def load(self) -> Any:
        """Import and return the implementation (a class or function) from the engine."""
        module_name, _, attr = self.impl.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)


def _first_error(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    field_name = f"{where}.{loc}" if loc else where
    value = err.get("input")
    return f"{field_name} = {value!r} is invalid: {err.get('msg', 'invalid value')}"


class Registry:
    """Name → :class:`Component` for one kind; unknown names raise a :class:`ConfigError`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> Component:
        """Register ``component``; a second component with the same name is refused."""
        if component.kind != self.kind:
            raise ValueError(f"{component.name} is a {component.kind}, not a {self.kind}")
        if component.name in self._items and self._items[component.name] != component:
            raise ValueError(f"{self.kind} '{component.name}' is already registered")
        self._items[component.name] = component
        return component

    def get(self, name: str) -> Component:
        """The component called ``name``; the error lists the known names."""
        _ensure_builtins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(
                f"unknown {self.kind} '{name}'", f"Use one of: {known}."
            ) from None

    def names(self) -> list[str]:
        _ensure_builtins()
        return list(self._items)

    def __iter__(self) -> Iterator[Component]:
        _ensure_builtins()
        return iter(list(self._items.values()))

    def __contains__(self, name: object) -> bool:
        _ensure_builtins()
        return name in self._items


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
losses = REGISTRIES["loss"]
pruners = REGISTRIES["pruner"]
quantizers = REGISTRIES["quantizer"]
decomposers = REGISTRIES["decomposer"]
exporters = REGISTRIES["exporter"]

_loaded = False


def _ensure_builtins() -> None:
    """Declare the built-in components once, before the first lookup."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("kdgui.core.components")


def register(
    kind: str,
    name: str,
    params: type[BaseModel],
    impl: str,
    title: str,
    summary: str = "",
    formula: str = "",
    paper: str = "",
) -> Component:
    """Declare a component of ``kind``; used by the built-ins and by plugins alike."""
    return REGISTRIES[kind].add(
        Component(kind, name, params, impl, title, summary, formula, paper)
    )
