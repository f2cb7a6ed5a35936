"""Choices a form learns while the window runs: this machine's devices, from the engine warm-up.

A declared parameter names where its actual choices come from (``param(..., choices_from=
"devices")``: ``training.device``). Until that source is published its combo lists what
:data:`BEFORE` says (``auto``, ``cpu``: what every machine has). The engine warm-up queries the
GPUs on its worker thread, where torch is imported anyway (never on the UI thread), and
:func:`publish_warm_up` publishes ``auto`` plus each device found ("cuda:0 — NVIDIA H200
(139 GiB)"); every field following the source refills its combo and keeps the value it shows.
A value that is not in the list (``cuda:1`` from a config written on another machine) stays,
as an extra entry: the form never changes a config by itself.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox

Items = list[tuple[Any, str]]  # (value, the text shown)

#: What each source lists before it is published.
BEFORE: dict[str, Items] = {"devices": [("auto", "auto"), ("cpu", "cpu")]}


class ChoiceSources(QObject):
    """The published choices of each source; :attr:`published` names the source refreshed."""

    published = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Items] = {name: list(items) for name, items in BEFORE.items()}

    def publish(self, name: str, items: Items) -> None:
        self.items[name] = list(items)
        self.published.emit(name)


_SOURCES: ChoiceSources | None = None


def sources() -> ChoiceSources:
    """The window's one :class:`ChoiceSources` (made on first use, on the UI thread)."""
    global _SOURCES
    if _SOURCES is None:
        _SOURCES = ChoiceSources()
    return _SOURCES


def device_items(devices: list[dict[str, Any]]) -> Items:
    """``auto`` and each device of :func:`kdgui.engine.jobs.available_devices`, as combo items."""
    return [("auto", "auto — the best found"), *((d["device"], d["label"]) for d in devices)]


def publish_warm_up(result: Any) -> None:
    """The warm-up worker's ``returned`` slot: publish the devices it found."""
    devices = result.get("devices") if isinstance(result, dict) else None
    if devices:
        sources().publish("devices", device_items(devices))


def choice_items(spec: Any) -> Items:
    """The items a choice field lists now: its source's, or the declared choices."""
    name = spec.extra.get("choices_from")
    if name:
        return list(sources().items.get(name, [(c, str(c)) for c in spec.choices]))
    return [(c, str(c)) for c in spec.choices]


def fill_combo(combo: QComboBox, items: Items) -> None:
    """Replace ``combo``'s items by ``items`` keeping its value (kept as an extra item when the
    new list lacks it), with its signals blocked: a refill edits no config."""
    current = combo.currentData()
    blocked = combo.blockSignals(True)
    try:
        combo.clear()
        for value, text in items:
            combo.addItem(text, value)
        if current is not None and combo.findData(current) < 0:
            combo.addItem(str(current), current)
        combo.setCurrentIndex(max(0, combo.findData(current)))
    finally:
        combo.blockSignals(blocked)


class _Follower(QObject):
    """Refills one combo when its source is published; a child of the combo, so the connection
    ends with it."""

    def __init__(self, combo: QComboBox, name: str) -> None:
        super().__init__(combo)
        self.combo, self.name = combo, name
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # GPU names
        sources().published.connect(self.refresh)

    def refresh(self, name: str) -> None:
        if name == self.name:
            fill_combo(self.combo, sources().items[name])


def follow_source(combo: QComboBox, spec: Any) -> None:
    """Keep ``combo`` listing the published choices of ``spec``'s source (if it names one)."""
    name = spec.extra.get("choices_from")
    if name:
        _Follower(combo, name)
