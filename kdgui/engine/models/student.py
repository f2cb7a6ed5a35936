"""Make the student a :class:`StudentConfig` asks for.

Priority, most explicit first: ``cfg.model`` (a file or architecture) > ``cfg.spec`` (drawn) >
``cfg.derive_from_teacher`` > ``cfg.preset`` scaled by ``cfg.width``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from kdgui.core.config import StudentConfig
from kdgui.core.errors import ConfigError, ModelLoadError
from kdgui.core.presets import get_preset
from kdgui.engine.models.spec_build import build_from_spec, count_params, spec_of


def make_student(cfg: StudentConfig, teacher: nn.Module | None,
                 input_shape: tuple[int, int, int], num_classes: int
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The student module (train mode) and a plain description of where it came from."""
    info: dict[str, Any]
    if cfg.model is not None:
        from kdgui.engine.models.loading import load_model

        loaded = load_model(cfg.model, input_shape=input_shape, num_classes=num_classes)
        module = loaded.module
        info = {"source": "model", "format": loaded.format, "ref": cfg.model.model_dump(),
                "name": loaded.metadata.get("arch") or loaded.source}
    elif cfg.spec is not None:
        module = build_from_spec(cfg.spec, input_shape, num_classes)
        info = {"source": "spec", "name": cfg.spec.name}
    elif cfg.derive_from_teacher:
        if teacher is None:
            raise ConfigError("derive_from_teacher is on but there is no teacher",
                              "Give a teacher, or turn derive_from_teacher off and pick a preset",
                              source="student.derive_from_teacher")
        from kdgui.engine.models.derive import derive_student

        module = derive_student(teacher, input_shape, num_classes, cfg.width, cfg.depth)
        info = {"source": "derived", "name": f"derived (width {cfg.width:g}, depth {cfg.depth:g})",
                "width": cfg.width, "depth": cfg.depth,
                "derivation": getattr(module, "kdgui_derived", None)}
    elif cfg.preset:
        spec = get_preset(cfg.preset).build(input_shape, num_classes, cfg.width)
        module = build_from_spec(spec, input_shape, num_classes)
        info = {"source": "preset", "name": cfg.preset, "width": cfg.width}
    else:
        raise ConfigError("no student given", "Set student.preset (e.g. cnn-small), a spec, "
                          "a model, or derive_from_teacher", source="student")
    spec = spec_of(module)
    if spec is not None:
        info["spec"] = spec.model_dump()
    info["params"] = count_params(module)
    if getattr(module, "kdgui_trainable", True) is False:  # a .pt2 program or an ONNX file
        raise ModelLoadError(
            f"this {getattr(module, 'kdgui_opaque', 'compiled')} model cannot be trained as a "
            "student (it keeps its export mode and has no trainable layers)",
            "Give the student as a state_dict or .safetensors file with its architecture, a "
            "TorchScript file, or pick a preset", source="student.model")
    try:
        module.train()
    except Exception as exc:  # a torch.export module refuses train(): say so plainly
        raise ModelLoadError(f"this student cannot be trained ({exc})",
                             "Use a state_dict + architecture or a TorchScript file",
                             source="student.model") from None
    return module, info
