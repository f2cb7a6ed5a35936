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


# -------------------------------------------------------- front ends reach the engine via its facade

KDGUI = ROOT / "kdgui"
FACADE = "kdgui.engine.jobs"

#: Each front end: the files it is made of.
FRONT_ENDS = {
    "cli": sorted((KDGUI / "cli").rglob("*.py")),
    "api": [KDGUI / "api.py"],
    "launcher": [KDGUI / "launcher.py", KDGUI / "__main__.py"],
    "gui": sorted((KDGUI / "gui").rglob("*.py")),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (functions too), relative imports resolved,
    and every ``importlib.import_module``/``__import__`` call (which would hide an edge).
    ``module`` is the file's dotted name (default: from its place under the repository)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from kdgui.engine import session" imports kdgui.engine.session
            found += [(node.lineno, f"{base}.{alias.name}" if base in ("kdgui", "kdgui.engine")
                       else base) for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = getattr(func, "attr", None) or getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.append((node.lineno, "<dynamic import>"))
    return found


def _engine_edges(files: list[Path], as_module: str | None = None) -> list[str]:
    bad = []
    for path in files:
        for line, module in _imported(path, as_module):
            hidden = module == "<dynamic import>"
            engine = module == "kdgui.engine" or module.startswith("kdgui.engine.")
            if hidden or (engine and module != FACADE and not module.startswith(FACADE + ".")):
                bad.append(f"{path.name}:{line} imports {module}")
    return bad


def _facade_submodule_edges(files: list[Path]) -> list[str]:
    """Front ends use the facade's public names, not its submodules (which may move)."""
    return [f"{path.name}:{line} imports {module}"
            for path in files for line, module in _imported(path)
            if module.startswith(FACADE + ".")]


@pytest.mark.parametrize("front_end", ["cli", "gui", "api", "launcher"])
def test_front_end_imports_the_engine_only_through_its_facade(front_end: str) -> None:
    files = FRONT_ENDS[front_end]
    assert files, f"no files found for the {front_end} front end"
    bad = _engine_edges(files) + _facade_submodule_edges(files)
    assert not bad, "front ends may import only kdgui.engine.jobs (+ kdgui.core):\n" + "\n".join(bad)


def test_the_check_sees_hidden_and_relative_engine_imports(tmp_path: Path) -> None:
    """The AST check itself: a dynamic import and a relative import into the engine are caught,
    the facade is allowed."""
    sample = tmp_path / "probe.py"
    sample.write_text("import importlib\nfrom kdgui.engine.jobs import run\n"
                      "def f():\n    from ..engine import session\n"
                      "    return importlib.import_module('kdgui.gui.app')\n")
    bad = _engine_edges([sample], "kdgui.cli.probe")
    assert [b.split(" imports ")[1] for b in bad] == ["kdgui.engine.session", "<dynamic import>"]


def test_launcher_is_the_only_module_that_imports_both_front_ends() -> None:
    """cli and gui never import each other; kdgui.launcher imports both, statically."""
    edges = {m for _, m in _imported(KDGUI / "launcher.py")}
    assert "kdgui.cli.main" in edges and "kdgui.gui.app" in edges
    for front, other in (("cli", "kdgui.gui"), ("gui", "kdgui.cli")):
        leaks = [f"{p.relative_to(ROOT)} imports {m}" for p in FRONT_ENDS[front]
                 for _, m in _imported(p) if m == other or m.startswith(other + ".")]
        assert not leaks, leaks
