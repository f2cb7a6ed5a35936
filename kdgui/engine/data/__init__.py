"""The data layer: datasets by spec string, split, normalized, ready for fast batch indexing.

``load_data(cfg)`` turns a :class:`~kdgui.core.config.DataConfig` into a :class:`DataBundle`;
``parse_data_spec`` splits ``"kind:PATH"`` specs; ``sample_grid`` renders a preview.
"""

from kdgui.engine.data.augment import BatchAugment
from kdgui.engine.data.bundle import DataBundle
from kdgui.engine.data.load import load_data
from kdgui.engine.data.preview import sample_grid
from kdgui.engine.data.spec import KNOWN_KINDS, parse_data_spec

__all__ = [
    "KNOWN_KINDS",
    "BatchAugment",
    "DataBundle",
    "load_data",
    "parse_data_spec",
    "sample_grid",
]
