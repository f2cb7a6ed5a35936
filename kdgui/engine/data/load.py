"""``load_data``: one entry point from a :class:`DataConfig` to a :class:`DataBundle`."""

from __future__ import annotations

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data.build import build_bundle
from kdgui.engine.data.bundle import DataBundle
from kdgui.engine.data.spec import parse_data_spec


def load_data(cfg: DataConfig) -> DataBundle:
    """Load, split and normalize the dataset named by ``cfg.spec``.

    Nothing touches the network unless ``cfg.download`` is true. Every problem a user can cause
    (missing folder or files, damaged file, unknown kind) raises :class:`DataError`.
    """
    kind, path = parse_data_spec(cfg.spec)
    if kind == "digits":
        if path:
            raise DataError(
                f"'digits' is embedded and takes no path (got 'digits:{path}')",
                "Write just 'digits'.",
                source="data.spec",
            )
        from kdgui.engine.data.digits import load_digits_raw

        return build_bundle(load_digits_raw(), cfg)
    if kind in ("mnist", "fashionmnist", "kmnist"):
        from kdgui.engine.data.mnist import load_idx_family

        return build_bundle(load_idx_family(kind, path, cfg), cfg)
    if kind in ("cifar10", "cifar100"):
        from kdgui.engine.data.cifar import load_cifar

        return build_bundle(load_cifar(kind, path, cfg), cfg)
    if kind == "svhn":
        from kdgui.engine.data.svhn import load_svhn

        return build_bundle(load_svhn(path, cfg), cfg)
    if kind == "folder":
        from kdgui.engine.data.folder import load_folder

        return load_folder(path, cfg)
    raise AssertionError(f"parse_data_spec accepted an unhandled kind {kind!r}")
