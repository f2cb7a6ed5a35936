"""Loading a model or a dataset for a script (the Python API): the engine's own loaders, the
ones a run uses, so a script sees exactly what a run would. (Inspecting a file is
``probes.inspect_model``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdgui.core.config import DataConfig, ModelRef


def model_reference(spec: ModelRef | str, *, arch: str | None = None,
                    num_classes: int | None = None, trust: bool = False) -> ModelRef:
    """What a MODEL argument means (``kdgui compress MODEL``, ``kdgui sensitivity MODEL``): an
    existing file (with ``arch`` for a bare state_dict), ``'demo'``, or an architecture such as
    ``torchvision:resnet18`` (a ``:`` in something that is not a file)."""
    if isinstance(spec, ModelRef):
        return spec
    if ":" in spec and not Path(spec).exists():
        return ModelRef(arch=spec, num_classes=num_classes)
    return ModelRef(path=spec, arch=arch, num_classes=num_classes, trust=trust)


def load_model(ref: ModelRef | str, *, input_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None, **fields: Any) -> Any:
    """Load a model the way a run does; returns the engine's ``LoadedModel`` (``module``,
    ``format``, ``source``, ``input_shape``, ``metadata``). ``ref`` is a ``ModelRef`` or a path
    (then ``fields`` are the other ``ModelRef`` fields: ``arch``, ``trust``, ...)."""
    from kdgui.engine.models import load_model as engine_load

    if isinstance(ref, str):
        ref = ModelRef(path=ref, **fields)
    return engine_load(ref, input_shape=input_shape, num_classes=num_classes)


def load_data(spec: DataConfig | str = "digits", **options: Any) -> Any:
    """Load a dataset (a ``DataConfig`` or a spec string plus its options); returns the
    engine's ``DataBundle`` (train, val, input_shape, num_classes, ...)."""
    from kdgui.engine.data import load_data as engine_load

    config = spec if isinstance(spec, DataConfig) else DataConfig(spec=spec, **options)
    return engine_load(config)


__all__ = ["load_data", "load_model", "model_reference"]
