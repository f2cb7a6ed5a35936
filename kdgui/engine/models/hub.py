"""Architectures from model libraries beyond torchvision: ``timm:NAME`` and Hugging Face folders.

Neither ever downloads anything unless asked: ``timm:NAME`` builds the architecture with random
weights (the weights come from the user's file, like ``--arch`` for torchvision names), and only
``pretrained: true`` lets timm fetch its weights. A Hugging Face image classifier is read from a
local folder (``config.json`` plus ``model.safetensors``); ``hf:FOLDER`` as an architecture builds
it from the config alone (random weights: the student family), a folder given as the model path
loads its weights too (the teacher). Hugging Face models return an output object, not a tensor, so
they are wrapped in :class:`HFClassifier`, an ordinary module whose ``forward`` returns the logits:
its layers stay hookable (feature losses) and prunable like any eager model.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from kdgui.core.errors import ModelLoadError

HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def build_timm(name: str, num_classes: int | None, kwargs: dict[str, Any],
               pretrained: bool) -> tuple[nn.Module, int | None]:
    """``timm.create_model(name)`` with ``num_classes``; a download only with ``pretrained``."""
    try:
        import timm
    except ImportError:
        raise ModelLoadError("timm is not installed", "pip install timm", source="arch") from None
    names = timm.list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"Did you mean {', '.join(close)}?" if close else "See timm.list_models()."
        raise ModelLoadError(f"timm has no model called '{name}'", hint, source="arch")
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    try:
        module = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"timm:{name} refused its arguments {kwargs}: {exc}",
                             "Check arch_kwargs against the timm model's constructor",
                             source="arch") from None
    except Exception as exc:  # the hub download
        if not pretrained:
            raise
        raise ModelLoadError(
            f"could not download the pretrained weights of timm:{name} ({type(exc).__name__})",
            "Connect to the network once, or turn 'pretrained' off and give a weights file",
            source="arch") from None
    return module, getattr(module, "num_classes", None) or kwargs.get("num_classes")


class HFClassifier(nn.Module):
    """A Hugging Face image classifier whose ``forward`` returns the logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=x).logits


def is_hf_folder(path: Path) -> bool:
    """A folder holding a Hugging Face ``config.json``."""
    return path.is_dir() and (path / "config.json").is_file()


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelLoadError(
            "Hugging Face folders need the 'transformers' package, which is not installed",
            "pip install transformers (or give the model as TorchScript, .pt2, ONNX or a "
            "state_dict with its architecture)", source="model") from None
    transformers.utils.logging.disable_progress_bar()  # no bars on the user's console
    return transformers


def _config(folder: Path, num_classes: int | None) -> Any:
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"the Hugging Face config in '{folder}' cannot be read: "
                             f"{str(exc).splitlines()[0][:200]}",
                             "Give a folder saved by save_pretrained()", source=str(folder)
                             ) from None
    if num_classes is not None and getattr(config, "num_labels", None) != num_classes:
        config.num_labels = num_classes
        config.id2label = {i: str(i) for i in range(num_classes)}
        config.label2id = {str(i): i for i in range(num_classes)}
    return config


def hf_input_shape(config: Any) -> tuple[int, int, int] | None:
    size = getattr(config, "image_size", None)
    channels = getattr(config, "num_channels", 3)
    if isinstance(size, (list, tuple)):
        return (int(channels), int(size[0]), int(size[-1]))
    return (int(channels), int(size), int(size)) if isinstance(size, int) else None


def build_hf(folder: Path, num_classes: int | None, *, weights: bool
             ) -> tuple[HFClassifier, tuple[int, int, int] | None, int]:
    """The classifier in ``folder``: with its saved weights, or fresh from its config."""
    if not is_hf_folder(folder):
        raise ModelLoadError(f"'{folder}' is not a Hugging Face model folder (no config.json)",
                             "Give the folder written by save_pretrained()", source=str(folder))
    transformers = _transformers()
    auto = transformers.AutoModelForImageClassification
    if weights:
        if not any((folder / name).is_file() for name in HF_WEIGHTS):
            raise ModelLoadError(f"the folder '{folder}' has a config.json but no weights "
                                 f"({' or '.join(HF_WEIGHTS)})",
                                 "Save the model with save_pretrained(), or use hf:FOLDER as an "
                                 "architecture for random weights", source=str(folder))
        config = _config(folder, None)
        try:
            model = auto.from_pretrained(str(folder), local_files_only=True,
                                         use_safetensors=(folder / HF_WEIGHTS[0]).is_file())
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"the Hugging Face model in '{folder}' cannot be loaded: "
                                 f"{str(exc).splitlines()[0][:200]}",
                                 "Give a folder saved by save_pretrained()",
                                 source=str(folder)) from None
    else:
        config = _config(folder, num_classes)
        try:
            model = auto.from_config(config)
        except ValueError as exc:
            raise ModelLoadError(f"'{folder}' is not an image-classification model: "
                                 f"{str(exc).splitlines()[0][:200]}",
                                 "Give an image-classification model folder",
                                 source=str(folder)) from None
    model.eval()
    return HFClassifier(model), hf_input_shape(model.config), int(model.config.num_labels)
