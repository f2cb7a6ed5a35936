"""Sensitivity analysis of a model from a run folder or the config's teacher (for the window).

The window and the CLI share :func:`kdgui.engine.compress.prune.sensitivity.sensitivity`; this
module only finds the model and the data a person means by "the student of my last run".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import ConfigError


def analyze(config: ExperimentConfig, which: str, ratios: list[float],
            run_dir: str | Path | None = None) -> dict[str, Any]:
    """Sensitivity of the run's distilled student (``which="student"``) or of the teacher."""
    from kdgui.core.config import ModelRef
    from kdgui.engine.compress.prune.sensitivity import sensitivity
    from kdgui.engine.data import load_data
    from kdgui.engine.metrics import evaluate
    from kdgui.engine.models import load_model

    data = load_data(config.data)
    if which == "student":
        if run_dir is None:
            raise ConfigError("there is no run with a distilled student yet",
                              "Run a distillation first, or analyze the teacher.")
        path = Path(run_dir) / "student" / "student.safetensors"
        if not path.is_file():
            raise ConfigError(f"'{run_dir}' has no saved student",
                              "Pick a run that finished, or analyze the teacher.")
        ref = ModelRef(path=str(path))
    else:
        ref = config.teacher
    model = load_model(ref, input_shape=data.input_shape, num_classes=data.num_classes).module
    result = sensitivity(model.eval(), None, ratios,
                         lambda m: float(evaluate(m, data.val)["accuracy"]))
    result["model"] = which
    result["source"] = str(ref.path or ref.arch)
    return result
