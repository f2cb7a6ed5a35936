"""The one way the engine loads a TorchScript file, without torch's deprecation noise.

Loading an int8 TorchScript model (a ``dynamic-int8`` or ``static-int8`` stage) makes torch's C++
side print ``[W… Quantizer.cpp] Warning: torch.quantize_per_tensor … are deprecated`` straight to
file descriptor 2. It does not pass through Python's ``warnings``, so the precise filters of
:mod:`kdgui.engine.compress.quantize.ao_warnings` cannot reach it, and ``torch.jit.load`` adds a
Python ``FutureWarning`` of its own. Neither says anything a user can act on (the int8 path is
ours, chosen by measurement), so while the file loads, fd 2 is captured and everything *except*
that one notice is written back: no other message is lost, only delayed by the load.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

#: Native (C++) notices that are dropped; anything else printed during a load is written back.
NATIVE_NOTICES: tuple[re.Pattern[str], ...] = (
    re.compile(r"Warning: torch\.quantize_per_tensor, torch\.quantize_per_channel and other "
               r"quantized tensor creation functions"),
)

_FD_LOCK = threading.RLock()  # fd 2 is process-wide: one capture at a time (nesting is fine)


@contextlib.contextmanager
def native_notices_dropped(fd: int = 2) -> Iterator[None]:
    """Capture ``fd`` while the body runs and write back every line but :data:`NATIVE_NOTICES`.

    Where the descriptor can't be duplicated (no stderr, e.g. a windowed app on Windows), the
    body simply runs: nothing is printed there anyway.
    """
    with _FD_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(fd)
        except (OSError, ValueError, AttributeError):
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), fd)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, fd)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
                kept = [line for line in text.splitlines(keepends=True)
                        if not any(p.search(line) for p in NATIVE_NOTICES)]
                if kept:
                    os.write(fd, "".join(kept).encode("utf-8", errors="replace"))


def load_script_module(path: str | Path) -> torch.jit.ScriptModule:
    """``torch.jit.load(path)`` on the CPU, in eval mode, without the deprecation notices."""
    with warnings.catch_warnings(), native_notices_dropped():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    return module.eval()
