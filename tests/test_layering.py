"""The layering rules hold: core has no torch or Qt, engine and CLI no Qt, front ends independent."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(import_stmt: str) -> set[str]:
    code = (
        f"import sys; {import_stmt}; "
        "print('\\n'.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_neither_torch_nor_qt() -> None:
    loaded = _loaded_after(
        "import kdgui.core.config, kdgui.core.config_io, kdgui.core.events, "
        "kdgui.core.registry, kdgui.core.errors; "
        "from kdgui.core.registry import losses; losses.names()"
    )
    assert not loaded & {"torch", "torchvision", "PySide6", "pyqtgraph"}


def test_cli_help_imports_no_qt() -> None:
    loaded = _loaded_after("import kdgui.cli.main")
    assert not loaded & {"PySide6", "pyqtgraph"}


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
