"""Errors that KD Studio shows to people.

Every error a user can cause (a bad file, a wrong shape, a config value out of range) is a
:class:`UserError`. It carries *what* went wrong and *how to fix it* as separate strings, so the
CLI can print one line and exit 2, and the window can show a dialog with the fix on its own line,
without either front end parsing messages. Anything else that escapes is an internal error (a
bug): the CLI exits 1 and shows the traceback only with ``--debug``.
"""

from __future__ import annotations


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
        text = f"{head}. {self.fix}" if self.fix else head
        return " ".join(text.split())

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


class TrainingDiverged(UserError):
    """The loss became NaN or infinite during training."""


class CompressionError(UserError):
    """A compression step cannot be applied with the given parameters."""


class ExportError(UserError):
    """A model cannot be written to, or verified in, the requested format."""


class RunStopped(KDError):
    """Raised inside a run when the user asked it to stop; not an error for the user."""
