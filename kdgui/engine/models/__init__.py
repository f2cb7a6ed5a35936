"""Models: safe loading of teachers, students from specs/presets/teachers, compatibility checks.

The public names live here; the modules are named after what they hold (``loading``, ``sniff``,
``arch``, ``spec_build``, ``derive``, ``student``, ``compat``, ``demo``, ``inspect_file``, ``frozen``
for TorchScript/.pt2/ONNX models, ``hub`` for timm and Hugging Face, ``rebuild`` for compressed
architectures recorded in weights files, ``weights`` for LoadedModel and pickle-free weights).
"""

from kdgui.engine.models.compat import check_compatibility
from kdgui.engine.models.demo import load_demo_teacher
from kdgui.engine.models.derive import derive_spec, derive_student
from kdgui.engine.models.frozen import FrozenTeacher, OnnxModel
from kdgui.engine.models.inspect_file import describe_module, inspect_file
from kdgui.engine.models.loading import load_model
from kdgui.engine.models.spec_build import SpecNet, build_from_spec, count_params, spec_of
from kdgui.engine.models.student import make_student
from kdgui.engine.models.weights import LoadedModel, load_weights, set_mode

__all__ = [
    "FrozenTeacher",
    "LoadedModel",
    "OnnxModel",
    "SpecNet",
    "build_from_spec",
    "check_compatibility",
    "count_params",
    "derive_spec",
    "derive_student",
    "describe_module",
    "inspect_file",
    "load_demo_teacher",
    "load_model",
    "load_weights",
    "make_student",
    "set_mode",
    "spec_of",
]
