"""Suite-wide guards: no test reaches the network, Qt never needs a display, and no test sees or
touches the clone, the user's home or another test's runs and settings (hermetic tests).

Why hermetic: the window lists the run folders under ``./runs`` and reads QSettings from the
user's config folder, so a test run after ``bash scripts/demo.sh`` in the same clone used to see
the demo's run folder. Every test now starts in its own empty working directory with its own
HOME, XDG folders, QSettings paths and runs root (``$KDGUI_RUNS``), all under pytest's basetemp.
Module- and session-scoped fixtures run before function-scoped ones, so a session-wide layer
isolates them too; each test then gets a fresh layer of its own on top.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Environment variables that point the app (or a library it uses) at per-user state.
HOME_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX sockets
    if not (isinstance(address, tuple) and address):
        return False
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections to anything but loopback; a test that needs the network fails."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded(fn):
        def connect(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
                raise OSError(f"tests must not touch the network (tried {address!r})")
            return fn(self, address, *args, **kwargs)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))


def _qsettings_paths(base: Path) -> None:
    """Point every QSettings scope and format at ``base``.

    Qt resolves its config folder once per process, so changing XDG_CONFIG_HOME is not enough:
    ``QSettings.setPath`` is what a ``QSettings("kdgui", "KD Studio")`` made afterwards obeys.
    """
    try:
        from PySide6.QtCore import QSettings
    except ImportError:  # the core tests run without the GUI extra
        return
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(base / scope.name))


def isolate(monkeypatch: pytest.MonkeyPatch, base: Path) -> Path:
    """Give the process a private cwd, home, XDG folders, QSettings and runs root under ``base``.

    Returns the new working directory; its ``runs`` folder (not created) is the runs root, both
    as ``$KDGUI_RUNS`` and as the relative ``runs`` the window and the CLI default to.
    """
    cwd = base / "cwd"
    for name in ("home", "config", "data", "cache", "state", "settings", "cwd"):
        (base / name).mkdir(parents=True, exist_ok=True)
    folders = dict(zip(HOME_VARS, ("home", "config", "data", "cache", "state"), strict=True))
    for var, name in folders.items():
        monkeypatch.setenv(var, str(base / name))
    monkeypatch.setenv("KDGUI_RUNS", str(cwd / "runs"))
    monkeypatch.chdir(cwd)
    _qsettings_paths(base / "settings")
    return cwd


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Isolate the whole session, so that module-scoped fixtures never see the clone or ~."""
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp_path_factory.mktemp("session-env"))
        # matplotlib's font cache is a cache, not state: build it once per session, not per test
        mp.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mplconfig")))
        yield


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test: its own empty cwd, home, settings and runs root (never its ``tmp_path``, whose
    contents some tests list)."""
    return isolate(monkeypatch, tmp_path_factory.mktemp("env"))


@pytest.fixture
def hermetic_isolate(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Path]:
    """Isolate again, on demand (tests of the isolation itself); returns the new cwd."""
    return lambda: isolate(monkeypatch, tmp_path_factory.mktemp("env"))
