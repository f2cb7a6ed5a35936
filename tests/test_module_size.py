"""No module under kdgui/ is over 400 lines (issue 18: one owner per concept, small modules).

A module that grows past this usually holds more than one concept; split it into modules that
say what they hold, keeping its public names importable from the old name.
"""

from __future__ import annotations

from pathlib import Path

MAX_LINES = 400
PACKAGE = Path(__file__).resolve().parents[1] / "kdgui"


def too_long(package: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules of ``package`` over ``limit`` lines, as {path relative to its parent: lines}."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            out[path.relative_to(package.parent).as_posix()] = lines
    return out


def test_too_long_counts_lines(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "ok.py").write_text("x = 1\n" * 400, encoding="utf-8")
    (pkg / "sub" / "big.py").write_text("x = 1\n" * 401, encoding="utf-8")
    assert too_long(pkg) == {"pkg/sub/big.py": 401}


def test_no_kdgui_module_is_over_400_lines() -> None:
    assert (PACKAGE / "__init__.py").is_file()
    over = too_long(PACKAGE)
    assert not over, f"modules over {MAX_LINES} lines (split them by concept): " + ", ".join(
        f"{name} ({n})" for name, n in over.items())
