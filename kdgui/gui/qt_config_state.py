"""The window's one editable experiment config, validated after every change.

Forms never hold values of their own: each writes one field through :meth:`QtConfigState.set`
and re-reads its value when :attr:`QtConfigState.replaced` fires (a file was opened). After each
change the whole config is validated with the same code the CLI uses
(:func:`kdgui.core.config_io.config_from_dict`), plus each compression step's parameters against
its registered component, so an invalid combination is known — and shown where it was made —
before Run is pressed, and the Run button can simply follow :attr:`QtConfigState.valid`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import QObject, Signal

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import config_from_dict, config_to_dict, format_validation_error
from kdgui.core.errors import ConfigError

Path = tuple[Any, ...]

@dataclass(frozen=True)
class Issue:
    """One problem with the config: where it is (a field path), what is wrong, and the fix."""

    path: Path
    what: str
    fix: str = ""

    def text(self) -> str:
        return f"{self.what}. {self.fix}" if self.fix else self.what

    def under(self, prefix: Path) -> bool:
        return tuple(self.path[: len(prefix)]) == tuple(prefix)


class QtConfigState(QObject):
    """Holds the config as plain data, validates it, and tells the forms what changed."""

    #: Emitted after every change or replacement, once validation has run.
    changed = Signal()
    #: Emitted when the whole config was replaced (forms must re-read every value).
    replaced = Signal()

    def __init__(self, config: ExperimentConfig | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._data: dict[str, Any] = config_to_dict(config or ExperimentConfig(name="demo"))
        self.config: ExperimentConfig | None = None
        self.issues: list[Issue] = []
        #: Issues found outside validation (e.g. the teacher/data check before Run), by source.
        self.external: dict[str, list[Issue]] = {}
        self._validate()

    # -- reading -----------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        """A deep copy of the current (possibly invalid) config data."""
        return copy.deepcopy(self._data)

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.issues

    def get(self, path: Path, default: Any = None) -> Any:
        node: Any = self._data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return copy.deepcopy(node)

    def issues_under(self, prefix: Path) -> list[Issue]:
        return [i for i in self.issues if i.under(prefix)]

    # -- writing -----------------------------------------------------------------------------
    def set(self, path: Path, value: Any) -> None:
        """Set one field (creating missing sections) and re-validate."""
        node: Any = self._data
        for part in path[:-1]:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        if isinstance(node, dict) and node.get(path[-1], object()) == value and not isinstance(
            value, (dict, list)
        ):
            return
        node[path[-1]] = copy.deepcopy(value)
        self._validate()
        self.changed.emit()

    def replace(self, config: ExperimentConfig | dict[str, Any]) -> None:
        """Replace everything (File > Open, last config) and refresh all forms."""
        data = config_to_dict(config) if isinstance(config, ExperimentConfig) else config
        self._data = copy.deepcopy(data)
        self._validate()
        self.replaced.emit()
        self.changed.emit()

    # -- validation --------------------------------------------------------------------------
    def _validate(self) -> None:
        issues: list[Issue] = []
        config: ExperimentConfig | None = None
        try:
            config = config_from_dict(copy.deepcopy(self._data))
        except ConfigError as exc:
            issues.extend(self._field_issues(exc))
        if config is not None:
            issues.extend(_step_issues(config))
        self.config = config
        self.issues = issues + [i for found in self.external.values() for i in found]

    def set_external_issues(self, source: str, issues: list[Issue]) -> None:
        """Replace the issues ``source`` found (they block Run like validation issues do)."""
        if self.external.get(source, []) == issues:
            return
        self.external[source] = list(issues)
        self._validate()
        self.changed.emit()

    def _field_issues(self, exc: ConfigError) -> list[Issue]:
        """Every pydantic error as an issue at its field, worded like the CLI's message."""
        try:
            ExperimentConfig.model_validate(copy.deepcopy(self._data))
        except ValidationError as verr:
            out = []
            for err in verr.errors():
                msg = format_validation_error(_OneError(err))  # type: ignore[arg-type]
                out.append(Issue(tuple(err.get("loc", ())), msg.what, msg.fix))
            return out or [Issue((), exc.what, exc.fix)]
        except Exception:
            pass
        return [Issue((), exc.what, exc.fix)]


class _OneError:
    """Presents one of pydantic's errors the way :func:`format_validation_error` reads them."""

    def __init__(self, err: Any) -> None:
        self._err = err

    def errors(self) -> list[Any]:
        return [self._err]


def _step_issues(config: ExperimentConfig) -> list[Issue]:
    """Check each compression step's method and parameters against its registered component."""
    from kdgui.core.components.compression import STEP_KINDS, method_component

    issues: list[Issue] = []
    for i, step in enumerate(config.compression.steps):
        if step.kind not in STEP_KINDS:
            continue
        where = ("compression", "steps", i)
        try:
            component = method_component(step.kind, step.method)
            component.validate(step.params, where=f"compression.steps[{i}].params")
        except ConfigError as exc:
            issues.append(Issue((*where, "params"), exc.what, exc.fix))
    return issues
