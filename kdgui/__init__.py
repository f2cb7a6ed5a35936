"""KD Studio: visual knowledge distillation and model compression for PyTorch.

The package is layered: :mod:`kdgui.core` (config, events, errors, registries; no torch, no Qt),
:mod:`kdgui.engine` (torch, no Qt), and two front ends over the engine, :mod:`kdgui.cli` and
:mod:`kdgui.gui`. The Python API lives in :mod:`kdgui.api`.
"""

__version__ = "0.1.0"
