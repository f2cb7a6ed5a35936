"""Serve a model file with Netron on 127.0.0.1 only, on a free port, and give the port back.

Why a wrapper around ``netron.start``/``netron.stop``:

* **Loopback only.** ``netron.start`` binds whatever host it is given; here it is always
  ``127.0.0.1``, so nothing on the network can read the model.
* **Only loopback names.** A web page elsewhere can point a name it controls at 127.0.0.1 (DNS
  rebinding) and read the model through the victim's browser; such requests carry the foreign
  name in their ``Host`` header, so only ``127.0.0.1``, ``localhost`` and ``[::1]`` (any port)
  are answered and everything else gets 403. Request lines over :data:`MAX_URL` characters get
  414, and a client that hangs up early is logged at debug level, never as a traceback.
* **Only the model.** Netron serves every file in the model's folder under ``/data/``; the
  model is therefore copied (hard-linked where possible) into a private temporary folder first.
  The folders go when the server stops, when Python exits and on SIGTERM.
* **Ports come back.** ``stop`` closes the listening socket and waits until the port can be bound
  again, so a test, a CLI session or a window tab never leaves a port in use; servers still
  running when Python exits are stopped by an ``atexit`` hook.
* **Expiry.** Netron's page refuses to work 180 days after its release (it reads a ``date`` meta
  in its ``index.html`` and then loops on "Please update to the newest version"). The check
  below reads the same date, so kdgui can say so, and how to update, instead of showing a page
  that never draws.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdgui.core.errors import UserError
from kdgui.engine.netron_guard import LOOPBACK_NAMES, MAX_URL, guard, host_is_loopback

HOST = "127.0.0.1"
#: Netron's page stops working this many days after its release date (``browser.js``: days > 180).
LIFETIME_DAYS = 180
UPDATE_HINT = "Update it: pip install --upgrade netron (in the environment kdgui runs in)"


class NetronError(UserError):
    """Netron is missing, expired, or cannot serve the model."""


@dataclass(frozen=True)
class NetronInfo:
    """Whether netron can be used, and until when.

    ``usable`` is False when netron is missing or its page has expired; ``problem`` then says
    why and ``fix`` what to do (both are also set, as a warning, in the last 14 days before
    expiry). ``message`` is the two as one sentence for a notice or the terminal.
    """

    installed: bool
    version: str | None
    released: dt.datetime | None
    expires: dt.datetime | None
    expired: bool
    problem: str = ""
    fix: str = ""

    @property
    def usable(self) -> bool:
        return self.installed and not self.expired

    @property
    def message(self) -> str:
        return f"{self.problem}. {self.fix}" if self.problem else ""

    def error(self) -> NetronError:
        return NetronError(self.problem, self.fix)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def netron_dir() -> Path | None:
    """The installed netron package folder (where its page lives), or None."""
    spec = importlib.util.find_spec("netron")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def release_date(package_dir: Path) -> dt.datetime | None:
    """The ``date`` meta of netron's ``index.html`` (UTC), as the page itself reads it."""
    try:
        html = (package_dir / "index.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r'<meta\s+name="date"\s+content="([^"]+)"', html)
    if not match:
        return None
    try:
        return dt.datetime.fromisoformat(match.group(1).strip().replace(" ", "T"))
    except ValueError:
        return None


def _package_date(package_dir: Path) -> dt.datetime | None:
    """Fallback when the page has no date: the install time of the package's files."""
    with contextlib.suppress(OSError):
        return dt.datetime.fromtimestamp((package_dir / "index.html").stat().st_mtime)
    return None


def netron_info(now: dt.datetime | None = None) -> NetronInfo:
    """What :func:`start` would run into, without starting anything (``now`` is for tests)."""
    package = netron_dir()
    if package is None:
        return NetronInfo(False, None, None, None, False,
                          "Netron is not installed, so models cannot be drawn as graphs",
                          "Install it: pip install netron (in the environment kdgui runs in).")
    version = _version(package)
    released = release_date(package) or _package_date(package)
    if released is None:
        return NetronInfo(True, version, None, None, False)
    expires = released + dt.timedelta(days=LIFETIME_DAYS)
    now = now or _utcnow()
    name = f"netron {version}" if version else "netron"
    if now > expires:
        return NetronInfo(
            True, version, released, expires, True,
            f"The installed {name} (released {released:%Y-%m-%d}) is too old: its viewer stops "
            f"working {LIFETIME_DAYS} days after release, on {expires:%Y-%m-%d}, and then only "
            "shows 'Please update to the newest version'", UPDATE_HINT)
    left = (expires - now).days
    if left < 14:
        return NetronInfo(True, version, released, expires, False,
                          f"The installed {name} stops working in {left} days "
                          f"({expires:%Y-%m-%d})", UPDATE_HINT)
    return NetronInfo(True, version, released, expires, False)


def _version(package: Path) -> str | None:
    with contextlib.suppress(OSError):
        text = (package / "server.py").read_text(encoding="utf-8", errors="replace")
        match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
        if match:
            return match.group(1)
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version("netron")
    return None


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a new socket can listen on ``host:port`` (what a restarted server needs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the system considers free now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_LIVE: set[NetronServer] = set()
_LOCK = threading.Lock()
_SIGTERM_HOOKED = False


def _on_sigterm(signum: int, frame: Any) -> None:
    """Remove the servers' folders, then terminate as SIGTERM would have."""
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _hook_sigterm() -> None:
    """Clean up on SIGTERM too (atexit does not run then), unless the program handles it."""
    global _SIGTERM_HOOKED
    if _SIGTERM_HOOKED or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _SIGTERM_HOOKED = True


class NetronServer:
    """One Netron server for one model file, on ``127.0.0.1``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``port=None`` picks a free
    port; a given port that is taken is a :class:`NetronError` naming it.
    """

    def __init__(self, model_path: str | os.PathLike[str], port: int | None = None, *,
                 check_expiry: bool = True) -> None:
        self.model_path = Path(model_path)
        self.requested_port = port
        self.check_expiry = check_expiry
        self.address: tuple[str, int] | None = None
        self._folder: Path | None = None

    @property
    def url(self) -> str:
        if self.address is None:
            raise RuntimeError("the Netron server is not running")
        return f"http://{self.address[0]}:{self.address[1]}/"

    @property
    def port(self) -> int | None:
        return self.address[1] if self.address else None

    @property
    def running(self) -> bool:
        if self.address is None:
            return False
        import netron

        return bool(netron.status(self.address))

    def start(self) -> str:
        """Start serving; returns the URL (``http://127.0.0.1:PORT/``)."""
        if self.address is not None:
            return self.url
        info = netron_info()
        if not info.installed or (self.check_expiry and info.expired):
            raise info.error()
        if not self.model_path.is_file():
            raise NetronError(f"the model file '{self.model_path}' does not exist",
                              "Check the path.")
        import netron

        self._folder = Path(tempfile.mkdtemp(prefix="kdgui-netron-"))
        served = self._folder / self.model_path.name
        try:
            os.link(self.model_path, served)
        except OSError:
            shutil.copyfile(self.model_path, served)
        attempts = 1 if self.requested_port else 5
        last: Exception | None = None
        for _ in range(attempts):
            port = self.requested_port or free_port()
            if self.requested_port and not port_is_free(port):
                self._cleanup()
                raise NetronError(f"port {port} on {HOST} is already in use",
                                  "Pick another with --port, or leave it out to use a free one.")
            try:
                with _quiet_root_logging():
                    address = tuple(netron.start(str(served), address=(HOST, port),
                                                 browse=False))
                guard(address)  # type: ignore[arg-type]
                self.address = address  # type: ignore[assignment]
                break
            except OSError as exc:  # lost the race for the port: try another
                last = exc
        if self.address is None:
            self._cleanup()
            raise NetronError(f"Netron could not listen on {HOST}: {last}",
                              "Close other programs using ports, or pass --port.")
        with _LOCK:
            _LIVE.add(self)
        _hook_sigterm()
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait (up to ``timeout`` s) until the port can be bound again."""
        address, self.address = self.address, None
        with _LOCK:
            _LIVE.discard(self)
        if address is not None:
            import netron

            netron.stop(address)
            deadline = time.monotonic() + timeout
            while (netron.status(address) or not port_is_free(address[1])) and (
                    time.monotonic() < deadline):
                time.sleep(0.02)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> NetronServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextlib.contextmanager
def _quiet_root_logging() -> Any:
    """``netron.serve`` calls ``logging.basicConfig`` when the root logger has no handler,
    which would change the logging of the whole app; a placeholder handler prevents that."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        if added:
            root.removeHandler(placeholder)


def stop_all() -> None:
    """Stop every server started here (also run when Python exits)."""
    with _LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop(timeout=1.0)


atexit.register(stop_all)

__all__ = [
    "HOST",
    "LIFETIME_DAYS",
    "LOOPBACK_NAMES",
    "MAX_URL",
    "NetronError",
    "NetronInfo",
    "NetronServer",
    "free_port",
    "host_is_loopback",
    "netron_info",
    "port_is_free",
    "release_date",
    "stop_all",
]
