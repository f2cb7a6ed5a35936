"""Saying out loud what ``--trust`` let run: the file, its hash and the time, at load time.

Unpickling a whole model runs code from the file. ``trust`` is the user's consent to that, and
the least the program owes them is a record of what exactly they consented to: one line on
stderr naming the file, the SHA-256 of the bytes that were loaded, and when. The hash lets a
person check later that the file they trusted is the file they meant (and not one swapped in the
same place), and the line also goes to the ``kdgui.trust`` logger for applications that keep
logs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import sys
from pathlib import Path

from kdgui.core.errors import printable

_log = logging.getLogger("kdgui.trust")
#: (file, hash) pairs already announced: a command that loads one file twice (inspect reads it,
#: then builds it) says so once.
_ANNOUNCED: set[tuple[str, str]] = set()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def announce_trusted_load(path: str | os.PathLike[str]) -> str:
    """Print (stderr, once per file and content) and log that ``path`` is about to be unpickled
    with trust; returns the line."""
    p = Path(path)
    try:
        sha = file_sha256(p)
    except OSError as exc:
        sha = f"unreadable ({exc.strerror or exc})"
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    name = str(p.resolve())
    line = (f"kdgui: trusted: unpickling '{printable(name, 200)}' "
            f"(sha256 {sha}) at {when}; its code runs with your permissions")
    if (name, sha) not in _ANNOUNCED:
        _ANNOUNCED.add((name, sha))
        print(line, file=sys.stderr, flush=True)
    _log.info("%s", line)
    return line
