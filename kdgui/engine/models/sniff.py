"""Tell a model file's format from its bytes, not from its name.

People rename files (a TorchScript archive saved as ``.pth``, a state_dict as ``.bin``) and
download HTML error pages as ``.pt``; reading the content first lets every such case get its own
clear message instead of an unpickling traceback.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from kdgui.core.errors import ModelLoadError, quote_bytes

TORCHSCRIPT = "torchscript"
EXPORT = "pt2"
TORCH_SAVE = "torch_save"
SAFETENSORS = "safetensors"
ONNX = "onnx"
KDC = "deepc"  # KD Studio's Deep Compression file (model.kdc), reloaded by its exporter

TITLES = {
    TORCHSCRIPT: "TorchScript archive",
    EXPORT: "torch.export program (.pt2)",
    TORCH_SAVE: "torch.save file",
    SAFETENSORS: "safetensors weights",
    ONNX: "ONNX model",
    KDC: "Deep Compression file (.kdc)",
}

_FIX_FORMAT = (
    "Give a TorchScript file, a torch.export .pt2 file, an .onnx file, a torch.save state_dict "
    "(.pt/.pth/.bin), a .safetensors file or a Hugging Face model folder"
)


def sniff(path: Path) -> str:
    """The format of ``path`` (one of the constants above) or a :class:`ModelLoadError`."""
    src = str(path)
    if not path.exists():
        raise ModelLoadError(f"the model file '{path}' does not exist",
                             "Check the path (relative paths start at the current folder)",
                             source=src)
    if path.is_dir():
        raise ModelLoadError(f"'{path}' is a folder, not a model file",
                             "Give the model file inside it", source=src)
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError("the file is empty (0 bytes)",
                             "The download or save did not finish; get the file again",
                             source=src)
    with path.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK"):
        return _sniff_zip(path)
    if head.startswith(b"KDC1"):
        return KDC
    if head[:1] == b"\x08" and _is_onnx(path):  # protobuf field 1 (ir_version) of a ModelProto
        return ONNX
    if _looks_like_safetensors(path, head, size):
        return SAFETENSORS
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        # A pickle stream: the legacy torch.save format (or a bare pickle).
        return TORCH_SAVE
    if _is_text(head):
        lines = head.strip().splitlines()
        first = quote_bytes(lines[0], 40) if lines else ""  # escaped: no raw ESC/BEL to a tty
        raise ModelLoadError(
            f"this is a text file (it starts with '{first}'), not a model",
            "Perhaps a download saved an error page; " + _FIX_FORMAT,
            source=src,
        )
    raise ModelLoadError("the file is not a model format PyTorch can read", _FIX_FORMAT,
                         source=src)


def _sniff_zip(path: Path) -> str:
    src = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        raise ModelLoadError(
            "the file is a damaged or truncated archive",
            "The download or save did not finish; get or save the file again",
            source=src,
        ) from None
    leaves = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "archive_format" in leaves or any(n.startswith("models/") for n in leaves):
        return EXPORT
    if "constants.pkl" in leaves or any(n.startswith("code/") for n in leaves):
        return TORCHSCRIPT
    if "data.pkl" in leaves:
        return TORCH_SAVE
    shown = ", ".join(sorted(names)[:3]) or "nothing"
    raise ModelLoadError(
        f"the file is a zip archive but not a PyTorch file (it holds {shown})",
        _FIX_FORMAT,
        source=src,
    )


def _is_onnx(path: Path) -> bool:
    """Whether the file parses as an ONNX ModelProto with a graph (weights left on disk)."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not protobuf, or not an ONNX model
        return False
    return len(proto.graph.node) > 0


def _looks_like_safetensors(path: Path, head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if n < 2 or head[8:9] != b"{":
        return False
    if 8 + n > size:
        raise ModelLoadError(
            "the file is a truncated safetensors file (its header is cut off)",
            "The download or save did not finish; get or save the file again",
            source=str(path),
        )
    with path.open("rb") as fh:
        fh.seek(8)
        try:
            json.loads(fh.read(n))
        except ValueError:
            return False
    return True


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the 64-byte boundary is still text
        try:
            head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
