"""The user guide stays true to the code: generated pages cover everything, pictures are reproducible.

``mkdocs build --strict`` (run by scripts/test.sh after pytest) checks links and anchors; these
tests check what it cannot: that every screenshot embedded in a page is one that
``scripts/screenshots.py`` produces, that every ``<!-- gen: ... -->`` marker renders, and that the
generated references list every method, command and error family.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "dev" not in p.relative_to(DOCS).parts)
IMAGE_REF = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def _load(path: Path) -> ModuleType:
    name = f"_kdgui_docs_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    pytest.importorskip("mkdocs", reason="the docs tools are in the 'dev' extra")
    return _load(DOCS / "hooks.py")


def test_every_embedded_screenshot_is_made_by_the_screenshot_script() -> None:
    shots = _load(ROOT / "scripts" / "screenshots.py")
    produced = {s.path.resolve() for s in shots.SHOTS}
    used = set()
    for page in PAGES:
        for ref in IMAGE_REF.findall(page.read_text(encoding="utf-8")):
            image = (page.parent / ref).resolve()
            used.add(image)
            assert image in produced, f"{page.name} shows {ref}, which scripts/screenshots.py " \
                                      "does not produce: add a Shot for it"
            assert image.is_file(), f"{ref} is missing: run scripts/screenshots.py"
    assert used, "the guide shows no screenshot at all"
    stale = {p.name for p in (DOCS / "images").glob("*.png")} - {p.name for p in produced}
    assert not stale, f"images no shot produces (remove or add a Shot): {sorted(stale)}"


def test_screenshot_panels_are_panels_the_window_has() -> None:
    pytest.importorskip("PySide6")
    from kdgui.gui.main_window import PANEL_KEYS

    shots = _load(ROOT / "scripts" / "screenshots.py")
    for shot in shots.SHOTS:
        assert shot.panel in PANEL_KEYS
        command = shot.command(Path("runs"))
        assert {"--demo", "--screenshot", "--exit-when-done", "--panel"} <= set(command)


def test_every_generation_marker_renders(hooks: ModuleType) -> None:
    seen = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in hooks.MARKER.finditer(text):
            out = hooks.generate(match["name"], (match["arg"] or "").strip(), text)
            assert out.strip(), f"{page.name}: {match.group(0)} rendered nothing"
            seen += 1
    assert seen >= 10


def test_methods_page_lists_every_registered_component() -> None:
    from kdgui.core.registry import REGISTRIES

    page = _load(DOCS / "gen_methods.py").render()
    for registry in REGISTRIES.values():
        for component in registry:
            assert f"— `{component.name}`" in page
            for spec in component.param_specs():
                assert f"| `{spec.name}` |" in page
            if component.paper:
                assert component.paper.split(";")[0].strip() in page


def test_cli_page_lists_every_subcommand() -> None:
    gen_cli = _load(DOCS / "gen_cli.py")
    from kdgui.cli.main import build_parser

    page = gen_cli.render()
    names = gen_cli.subcommands(build_parser())
    assert {"demo", "run", "inspect", "config", "methods"} <= set(names)
    for name in names:
        assert f"## `kdgui {name}`" in page


def test_error_catalogue_finds_the_messages_and_troubleshooting_explains_core_families() -> None:
    from kdgui.core import errors

    gen_errors = _load(DOCS / "gen_errors.py")
    families, messages = gen_errors.collect()
    core = {name for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, errors.UserError)}
    assert core <= set(families)
    by_family = {m.family for m in messages}
    # Each core family that the code raises has its own hand-written section.
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    for family in core & by_family:
        assert f"<!-- gen: errors {family} -->" in page, f"describe {family} in troubleshooting.md"
    # The AST walk really reads messages: a known one, with its run-time part as a placeholder.
    trust = [m for m in messages if m.family == "TrustRequired"]
    assert trust and "pickled" in trust[0].what and "--trust" in trust[0].fix
    assert any("{" in m.what for m in messages)


def test_classroom_page_shows_every_lesson_from_the_code() -> None:
    from kdgui.engine.classroom import LESSONS

    assert "<!-- gen: classroom -->" in (DOCS / "classroom.md").read_text(encoding="utf-8")
    page = _load(DOCS / "gen_classroom.py").render()
    for lesson in LESSONS:
        assert f"— `{lesson.name}` {{#lesson-{lesson.name}}}" in page
        assert lesson.formula in page
        assert all(item in page for item in lesson.look_at)
        assert f"kdgui classroom run {lesson.name} --out" in page
        if lesson.vary:
            assert f"A sweep of `{lesson.vary}`" in page
