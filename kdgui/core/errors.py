"""Errors that KD Studio shows to people.

Every error a user can cause (a bad file, a wrong shape, a config value out of range) is a
:class:`UserError`. It carries *what* went wrong and *how to fix it* as separate strings, so the
CLI can print one line and exit 2, and the window can show a dialog with the fix on its own line,
without either front end parsing messages. Anything else that escapes is an internal error (a
bug): the CLI exits 1 and shows the traceback only with ``--debug``.
"""

from __future__ import annotations

import unicodedata

#: Longest "what" and "fix" parts :meth:`UserError.one_line` prints; longer ones are cut with an
#: ellipsis, so a huge value quoted from a file (a 50 MB name) never floods a terminal or a dialog.
MAX_WHAT = 320
MAX_FIX = 240


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every control or formatting character shown as an escape (``\\x1b``).

    Messages quote what users give us (names, paths, a file's first bytes). Printed raw, an
    ``ESC ] 0 ; ... BEL`` sequence in such a quote would retitle or reprogram the terminal, so
    everything that reaches a terminal or a log goes through this one function. ``limit`` cuts
    the result to that many characters, ending with ``…``.
    """
    out = []
    for ch in text:
        if ch == " " or (ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Co")):
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                       else f"\\U{code:08x}")
    result = "".join(out)
    if limit is not None and len(result) > limit:
        result = result[: max(0, limit - 1)] + "…"
    return result


def quote_bytes(data: bytes, limit: int = 40) -> str:
    """The first bytes of a file as safe text: decoded where possible, escapes elsewhere."""
    return printable(data.decode("utf-8", "replace").replace("\ufffd", "?"), limit)


class KDError(Exception):
    """Base class of every error raised on purpose by kdgui."""


class UserError(KDError):
    """An error the user can fix: bad input, a missing file, an impossible combination.

    ``what`` says what is wrong (naming the file or the field); ``fix`` says what to do.
    """

    exit_code = 2

    def __init__(self, what: str, fix: str = "", *, source: str | None = None) -> None:
        self.what = what
        self.fix = fix
        self.source = source
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message on a single line, as the CLI prints it."""
        head = f"{self.source}: {self.what}" if self.source else self.what
        head = printable(" ".join(head.split()), MAX_WHAT)
        fix = printable(" ".join(self.fix.split()), MAX_FIX)
        return f"{head}. {fix}" if fix else head

    def to_dict(self) -> dict[str, str]:
        """Plain data for events and run folders."""
        return {
            "type": type(self).__name__,
            "what": self.what,
            "fix": self.fix,
            "source": self.source or "",
            "message": self.one_line(),
        }


class ConfigError(UserError):
    """A config file or value is invalid (unknown key, value out of range, bad YAML)."""


class DataError(UserError):
    """A dataset cannot be found, read or used."""


class ModelLoadError(UserError):
    """A model file cannot be read, or is not what its name says."""


class TrustRequired(ModelLoadError):
    """Loading this file would execute code from it; the user must consent explicitly."""


class CompatibilityError(UserError):
    """Teacher, student and data disagree on input shape or class count."""


class CheckpointDamaged(UserError):
    """A run's checkpoint cannot be read (empty, truncated, foreign): resuming cannot continue."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite during training."""


class CompressionError(UserError):
    """A compression step cannot be applied with the given parameters."""


class ExportError(UserError):
    """A model cannot be written to, or verified in, the requested format."""


class InternalError(KDError):
    """A bug inside a job, raised again where the job is consumed as a call (CLI, Python API).

    The engine's traceback travels separately from the message, so a front end prints one line
    and shows the traceback only when asked (``--debug``)."""

    def __init__(self, message: str, engine_traceback: str = "") -> None:
        super().__init__(message)
        self.engine_traceback = engine_traceback


class RunStopped(KDError):
    """Raised inside a run when the user asked it to stop; not an error for the user."""
