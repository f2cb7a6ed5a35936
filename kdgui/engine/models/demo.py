"""The bundled demo teacher: the ``cnn-teacher`` preset trained on scikit-learn digits.

It is stored as ``spec.json`` (architecture as data, plus input shape, classes and the
normalisation it was trained with) and ``weights.safetensors``, so loading it never unpickles
anything. ``scripts/build_demo_teacher.py`` writes both files.
"""

from __future__ import annotations

from kdgui.core.errors import ModelLoadError
from kdgui.core.resources import resource_path
from kdgui.engine.models.weights import LoadedModel, load_spec_with_weights

DEMO_DIR = "demo_teacher"
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"


def load_demo_teacher() -> LoadedModel:
    """The demo teacher in eval mode; metadata holds class names, normalisation and accuracy."""
    folder = resource_path(DEMO_DIR)
    spec, weights = folder / SPEC_FILE, folder / WEIGHTS_FILE
    if not (spec.is_file() and weights.is_file()):
        raise ModelLoadError(
            f"the bundled demo teacher is missing (looked for {spec} and {weights})",
            "Run 'python scripts/build_demo_teacher.py', or set KDGUI_RESOURCES to the folder "
            "holding demo_teacher/",
            source="demo")
    loaded = load_spec_with_weights(spec, weights)
    loaded.format = "demo"
    loaded.source = "demo"
    loaded.metadata["files"] = [str(spec), str(weights)]
    return loaded
