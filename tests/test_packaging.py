"""The installed entry points start, and the packaging files are well-formed.

These run what a person or a packager runs first: ``kdgui --version``, ``python -m kdgui --help``,
the console script on PATH; the desktop entry and AppStream metainfo parse and agree on the app
id; the icons exist in every size; and, when PyInstaller is installed (the ``package`` extra), the
spec's Analysis step finds every module and data file the app needs.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import kdgui

ROOT = Path(__file__).resolve().parents[1]
LINUX = ROOT / "packaging" / "linux"
APP_ID = "org.kdgui.KDStudio"
DESKTOP = LINUX / f"{APP_ID}.desktop"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"


def _run(*args: str, timeout: float = 120, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=ROOT, env=env)


def _console_script() -> str:
    """The ``kdgui`` script installed beside this interpreter (the venv's bin/)."""
    candidate = Path(sys.executable).with_name("kdgui")
    found = str(candidate) if candidate.exists() else shutil.which("kdgui")
    if not found:
        pytest.fail("the 'kdgui' console script is not installed: pip install -e .")
    return found


def test_console_script_prints_the_package_version() -> None:
    proc = _run(_console_script(), "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kdgui {kdgui.__version__}"


def test_python_dash_m_kdgui_shows_every_subcommand() -> None:
    proc = _run(sys.executable, "-m", "kdgui", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kdgui")
    for command in ("demo", "run", "inspect", "config", "presets", "methods", "compress"):
        assert f"\n    {command} " in proc.stdout, f"'{command}' missing from --help"


def test_cli_help_does_not_import_torch_or_qt() -> None:
    """`kdgui --help` must answer fast: neither torch nor Qt may be imported for it."""
    code = ("import sys; from kdgui.cli.main import build_parser; build_parser().format_help(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6'}))")
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_user_error_exits_2_with_one_line() -> None:
    proc = _run(_console_script(), "config", "--check", "does-not-exist.yaml")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("kdgui: error: ")
    assert "does-not-exist.yaml" in proc.stderr


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_desktop_entry_parses_and_launches_the_console_script() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "KD Studio"
    assert entry["Exec"].split()[0] == "kdgui"  # the name [project.scripts] installs
    assert entry["Icon"] == APP_ID
    assert entry["Categories"].endswith(";")
    assert entry["Terminal"] == "false"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-utils is not installed")
def test_desktop_entry_validates() -> None:
    proc = _run("desktop-file-validate", str(DESKTOP))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metainfo_is_well_formed_and_matches_the_desktop_entry() -> None:
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == DESKTOP.name
    assert root.find("provides/binary").text == _desktop_entry()["Exec"].split()[0]
    releases = [r.get("version") for r in root.iter("release")]
    assert kdgui.__version__ in releases, "add a <release> for the new version to the metainfo"
    assert root.find("description/p") is not None


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream is not installed")
def test_metainfo_validates_with_appstreamcli() -> None:
    proc = _run("appstreamcli", "validate", "--no-net", str(METAINFO))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_icons_exist_in_every_size_and_are_pngs_of_that_size() -> None:
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import make_icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert make_icons.SVG.is_file()
    assert make_icons.missing() == []
    for size in make_icons.SIZES:
        data = make_icons.png_path(size).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (size, size)


def test_resources_are_found_inside_a_frozen_app(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """A PyInstaller app has sys._MEIPASS; its resources/ must win over sys.prefix."""
    from kdgui.core import resources

    (tmp_path / "resources" / "demo_teacher").mkdir(parents=True)
    monkeypatch.delenv("KDGUI_RESOURCES", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resource_roots()[0] == tmp_path / "resources"
    assert resources.resource_path("demo_teacher") == tmp_path / "resources" / "demo_teacher"


@pytest.mark.slow
def test_pyinstaller_analysis_finds_what_the_app_needs(tmp_path: Path) -> None:
    """The spec's Analysis step (a few minutes: it follows torch's imports); no bundle is built.

    The spec itself fails when a module or data file on its required list is missing.
    """
    pytest.importorskip("PyInstaller", reason="PyInstaller is in the 'package' extra")
    env = dict(os.environ, KDGUI_ANALYSIS_ONLY="1")
    proc = _run(sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                "--distpath", str(tmp_path / "dist"), "--workpath", str(tmp_path / "build"),
                str(ROOT / "packaging" / "kdgui.spec"), timeout=1200, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "kdgui.spec: analysis ok" in proc.stdout + proc.stderr
