"""MkDocs hooks: fill the generated parts of the guide from the code at every build.

A page asks for generated content with an HTML comment on a line of its own::

    <!-- gen: methods -->            every registered loss/pruner/quantizer/... (gen_methods.py)
    <!-- gen: classroom -->          every classroom lesson of kdgui.engine.classroom (gen_classroom.py)
    <!-- gen: cli -->                the ``--help`` of every command (gen_cli.py)
    <!-- gen: config-example -->     ``kdgui config --example``
    <!-- gen: events -->             the fields of every ``metrics.jsonl`` event (kdgui.core.events)
    <!-- gen: errors FAMILY -->      the messages of one UserError family (gen_errors.py)
    <!-- gen: errors-other -->       families no page describes yet
    <!-- gen: file PATH -->          a file of the repository, e.g. an example config

An unknown name fails the build, so a typo cannot silently leave a hole in the guide. Listed in
``mkdocs.yml`` under ``hooks:``; MkDocs runs them without any plugin.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import gen_classroom  # noqa: E402  (needs HERE on sys.path)
import gen_cli  # noqa: E402
import gen_errors  # noqa: E402
import gen_methods  # noqa: E402

#: Sphinx roles left in docstrings (``:class:`~kdgui.api.run` ``) as rendered by mkdocstrings,
#: which reads docstrings as Markdown: shown as plain code, the last component when ``~``-prefixed.
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([^<]+)</code>")
MARKER = re.compile(r"^<!-- gen: (?P<name>[\w-]+)(?: (?P<arg>[^>]*?))? -->$", re.MULTILINE)
FENCE_LANG = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".py": "python", ".sh": "bash"}


def _file(arg: str) -> str:
    path = (ROOT / arg).resolve()
    if ROOT not in path.parents or not path.is_file():
        raise PluginError(f"gen: file {arg!r} is not a file of the repository")
    lang = FENCE_LANG.get(path.suffix, "text")
    return f"```{lang} title=\"{arg}\"\n{path.read_text(encoding='utf-8').rstrip()}\n```\n"


def _config_example() -> str:
    from kdgui.core.config_io import example_yaml

    return f"```yaml\n{example_yaml().rstrip()}\n```\n"


#: Said for event classes that have no docstring of their own (theirs wins once written).
EVENT_NOTES = {
    "started": "The run began: the validated config, dataset and model summaries, the layer "
               "pairs of feature/attention losses, and whether teacher outputs are cached.",
    "artifact": "A file was written (checkpoint, student, stage model, export) and where.",
    "log": "A message for the user (warnings such as a deprecated export format).",
    "finished": "The run ended; `summary` is what `summary.json` holds. `stopped` is true when "
                "the user stopped it early.",
}


def _events() -> str:
    """One row per event kind: its fields, in the order ``metrics.jsonl`` writes them."""
    import dataclasses

    from kdgui.core.events import EVENT_TYPES

    rows = ["| `event` | fields (besides `event` and `time`) | what it reports |", "|---|---|---|"]
    for kind, cls in EVENT_TYPES.items():
        names = [f.name for f in dataclasses.fields(cls) if f.name != "time"]
        cells = ", ".join(f"`{n}`" for n in names)
        doc = (cls.__doc__ or "").strip()
        # a dataclass without a docstring gets its signature as __doc__: not worth showing
        doc = "" if doc.startswith(cls.__name__ + "(") else " ".join(doc.split())
        doc = (doc or EVENT_NOTES.get(kind, "")).replace("|", "\\|").replace("``", "`")
        rows.append(f"| `{kind}` | {cells} | {doc} |")
    return "\n".join(rows) + "\n"


def _documented_families(markdown: str) -> set[str]:
    return {m["arg"].strip() for m in MARKER.finditer(markdown) if m["name"] == "errors"}


def generate(name: str, arg: str, markdown: str) -> str:
    """The Markdown for one marker; ``markdown`` is the whole page (for ``errors-other``)."""
    if name == "methods":
        return gen_methods.render()
    if name == "cli":
        return gen_cli.render()
    if name == "classroom":
        return gen_classroom.render()
    if name == "config-example":
        return _config_example()
    if name == "events":
        return _events()
    if name == "errors":
        families, messages = gen_errors.collect()
        if arg not in families:
            raise PluginError(f"gen: errors {arg!r} is not a UserError subclass in kdgui/")
        return gen_errors.render_family(arg, messages)
    if name == "errors-other":
        return gen_errors.render_other(_documented_families(markdown))
    if name == "file":
        return _file(arg)
    raise PluginError(f"gen: unknown generator {name!r}")


def on_post_build(config: Any, **_: Any) -> None:
    """Give the site the app's own icon (favicon and logo), copied from resources/icons."""
    import shutil

    target = Path(config["site_dir"]) / "images" / "kdgui-icon.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "resources" / "icons" / "kdgui-64.png", target)


def on_page_content(html: str, **_: Any) -> str:
    """Show the docstrings' Sphinx roles as code instead of raw ``:class:`` text."""
    return SPHINX_ROLE.sub(
        lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>", html
    )


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace each ``<!-- gen: ... -->`` line of the page by what it names."""
    if "<!-- gen:" not in markdown:
        return markdown
    return MARKER.sub(lambda m: generate(m["name"], (m["arg"] or "").strip(), markdown), markdown)
