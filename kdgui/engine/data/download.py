"""Root folders and downloads for the torchvision datasets.

Downloads only happen when the config says ``download: true``; then torchvision's own download
code runs, and any failure becomes a :class:`DataError` that says the network is unreachable
instead of a urllib traceback. The folders a failed download created are removed again when
they are empty, so a failed ``--download`` does not leave a dataset folder that looks present.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kdgui.core.errors import DataError


def require_root(kind: str, path: str | None, download: bool) -> Path:
    """The root folder of a ``kind:ROOT`` spec; it must exist unless a download will create it."""
    if not path:
        raise DataError(
            f"The dataset '{kind}' needs a folder: write '{kind}:ROOT'",
            f"Point ROOT to the folder that holds (or, with --download, will hold) the {kind} "
            "files, e.g. 'mnist:./data'.",
            source="data.spec",
        )
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder",
            f"Point '{kind}:ROOT' at the folder that contains the {kind} files.",
            source="data.spec",
        )
    if not root.exists() and not download:
        raise DataError(
            f"The folder {root} does not exist",
            f"Pass --download (needs network) to fetch {kind} there, or point '{kind}:ROOT' to "
            "an existing folder.",
            source="data.spec",
        )
    return root


def run_download(name: str, root: Path, fetch: Callable[[], object]) -> None:
    """Call torchvision's download (``fetch``) for dataset ``name`` into ``root``.

    Every failure is reported as a :class:`DataError`: a folder we may not write to gets its own
    message; anything else during a download means the server could not be reached (offline,
    proxy, firewall, server down) or sent something broken.
    """
    existed = _existing_dirs(root)
    done = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch()
        done = True
    except PermissionError as exc:
        raise DataError(
            f"Cannot download {name} into {root}: no permission to write there ({exc})",
            "Choose a writable folder as the dataset root.",
            source="data.download",
        ) from exc
    except Exception as exc:  # urllib, http.client, ssl, checksum errors all land here
        detail = " ".join(str(exc).split())[:300]
        raise DataError(
            f"Cannot download {name} into {root}: the network is offline or the server is "
            f"unreachable ({type(exc).__name__}: {detail})",
            f"Connect to the network and retry, or download the {name} files on another "
            f"machine and copy them into {root}.",
            source="data.download",
        ) from exc
    finally:
        if not done:  # a failed download leaves no empty dataset folders behind
            _remove_new_empty_dirs(root, existed)


def _existing_dirs(root: Path) -> set[Path]:
    """The folders under (and including) ``root`` and its ancestors that exist now."""
    found = {p for p in (root, *root.parents) if p.is_dir()}
    if root.is_dir():
        found.update(p for p in root.rglob("*") if p.is_dir())
    return found


def _remove_new_empty_dirs(root: Path, existed: set[Path]) -> None:
    """Remove the folders a failed download created and left empty (never any file)."""
    candidates = [p for p in root.rglob("*") if p.is_dir()] if root.is_dir() else []
    candidates += [root, *root.parents]
    for folder in sorted(candidates, key=lambda p: len(p.parts), reverse=True):
        if folder in existed:
            continue
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            continue
