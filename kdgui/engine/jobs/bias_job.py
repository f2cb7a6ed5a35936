"""Raising the output bias of classes a run's transfer set excluded (see
:mod:`kdgui.engine.bias_correction`), measured on the run's validation data."""

from __future__ import annotations

from kdgui.engine.bias_correction import correct_run as bias_correction

__all__ = ["bias_correction"]
