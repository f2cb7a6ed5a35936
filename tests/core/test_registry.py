"""Registries: every built-in declared without imports by the caller, clear unknown-name errors."""

from __future__ import annotations

import pytest

from kdgui.core.errors import ConfigError
from kdgui.core.registry import REGISTRIES, losses


def test_builtin_losses_are_declared_without_importing_them() -> None:
    assert {"hard", "soft", "feature", "attention"} <= set(losses.names())


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        losses.get("dark-magic")
    assert "soft" in info.value.one_line()


def test_component_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        losses.get("soft").validate({"temperature": 0})


def test_every_component_resolves_to_an_implementation() -> None:
    for registry in REGISTRIES.values():
        for component in registry:
            impl = component.load()
            assert callable(impl), component.name
            # one form field / CLI flag per declared parameter, and the defaults validate
            specs = component.param_specs()
            assert [s.name for s in specs] == list(component.params.model_fields), component.name
            component.validate({})
