"""The names ``training.device`` accepts, checked without torch (the engine resolves them).

``auto``, ``cpu``, ``cuda`` (the current GPU), ``mps`` (Apple), or ``cuda:N`` for GPU number N
(``cuda:0`` is the first). Whether that GPU exists is the engine's question
(:func:`kdgui.engine.device.pick_device`); the window lists this machine's devices from
:func:`kdgui.engine.jobs.available_devices`.
"""

from __future__ import annotations

import re

#: The device names with no number, in the order the window and ``--help`` show them.
DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")
#: What ``--help`` and error messages add after the named ones.
NUMBERED_DEVICE = "cuda:N (GPU number N, from 0)"

_NUMBERED = re.compile(r"cuda:(\d+)")


def check_device(value: object) -> str:
    """``value`` as a device name (``cuda:01`` reads as ``cuda:1``), or a one-line ValueError."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in DEVICE_KINDS:
        return str(text)
    match = _NUMBERED.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"unknown device {value!r} (a GPU is cuda:N with N = 0, 1, ...)")
    return f"cuda:{int(match.group(1))}"


def gpu_index(device: str) -> int | None:
    """N of ``cuda:N``; None for every other name."""
    match = _NUMBERED.fullmatch(device)
    return int(match.group(1)) if match else None
