"""Every message the app can show for a user error, read from the source code itself.

Every failure a user can cause is a :class:`kdgui.core.errors.UserError` subclass built with
``what`` (what went wrong) and ``fix`` (what to do). This module walks the source tree with
:mod:`ast`, finds every call that builds one (``raise DataError(...)``, ``return ConfigError(...)``)
and lists its message pattern and fix, grouped by family (the subclass). f-string parts that are
only known at run time are shown as ``{name}``.

``docs/troubleshooting.md`` explains each family by hand and places ``<!-- gen: errors FAMILY -->``
where that family's messages go; families it does not mention yet are listed by
``<!-- gen: errors-other -->``, so a new error class shows up in the guide on the next build
instead of going missing. Run it directly for a summary: ``.venv/bin/python docs/gen_errors.py``.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kdgui"
#: A run-time expression longer than this is shown as ``{…}`` rather than spelled out.
MAX_EXPR = 24
#: A message with no literal word outside ``{...}`` placeholders only forwards another one.
PLAIN_TEXT = re.compile(r"(?:^|})[^{]*[A-Za-z]{2}")


@dataclass(frozen=True)
class Message:
    """One place that builds a user error: its family, message pattern and fix."""

    family: str
    what: str
    fix: str
    module: str
    line: int


def _families(files: list[Path]) -> dict[str, str]:
    """Names of ``UserError`` and its subclasses defined in ``files`` → their docstrings."""
    bases: dict[str, list[str]] = {}
    docs: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = [_name(b) for b in node.bases]
                docs[node.name] = (ast.get_docstring(node) or "").split("\n\n")[0]
    found = {"UserError"}
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            if name not in found and any(p in found for p in parents):
                found.add(name)
                changed = True
    return {name: docs.get(name, "") for name in sorted(found)}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level string constants (``ARCH_FORMS = "..."``), spelled out in messages."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            text = _text(value, out)
            if "{" not in text and isinstance(value, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                out[target.id] = text
    return out


def _text(node: ast.expr | None, consts: dict[str, str] | None = None) -> str:
    """A string expression as a pattern: literals verbatim, run-time parts as ``{expr}``."""
    consts = consts or {}
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v, consts) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        if isinstance(node.value, ast.Name) and node.value.id in consts and not node.format_spec:
            return consts[node.value.id]
        return _placeholder(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left, consts) + _text(node.right, consts)
    return _placeholder(node)


def _placeholder(node: ast.expr) -> str:
    expr = ast.unparse(node)
    return "{" + (expr if len(expr) <= MAX_EXPR else "…") + "}"


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(call.args) > index and not isinstance(call.args[index], ast.Starred):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def collect(package: Path = PACKAGE) -> tuple[dict[str, str], list[Message]]:
    """The error families (name → docstring) and every message built in ``package``."""
    files = sorted(package.rglob("*.py"))
    families = _families(files)
    messages: list[Message] = []
    for path in files:
        module = path.relative_to(package.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        consts = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            family = _name(node.func)
            if family not in families:
                continue
            what = _text(_argument(node, 0, "what"), consts)
            # Skip calls that only forward another error's text (``ConfigError(exc.what, ...)``,
            # a subclass's ``super().__init__``): the original message is listed where it is made.
            if not PLAIN_TEXT.search(what):
                continue
            fix = _text(_argument(node, 1, "fix"), consts)
            messages.append(Message(family, what, fix, module, node.lineno))
    return families, messages


def _md(text: str) -> str:
    """Plain text safe in Markdown prose (no accidental emphasis, links or HTML)."""
    text = " ".join(text.split())
    for ch in "\\`*_[]<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _code(text: str) -> str:
    text = " ".join(text.split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_family(family: str, messages: list[Message] | None = None) -> str:
    """The messages of one family, grouped by the module that raises them."""
    if messages is None:
        messages = collect()[1]
    by_module: dict[str, list[Message]] = defaultdict(list)
    for msg in messages:
        if msg.family == family:
            by_module[msg.module].append(msg)
    if not by_module:
        return "_No message of this family is raised at the moment._\n"
    count = sum(len(v) for v in by_module.values())
    lines = [f"??? note \"All {count} messages of `{family}`, by where they come from\"", ""]
    for module in sorted(by_module):
        lines += [f"    **`{module}`**", ""]
        seen: set[tuple[str, str]] = set()
        for msg in by_module[module]:
            if (msg.what, msg.fix) in seen:
                continue
            seen.add((msg.what, msg.fix))
            fix = f" — {_md(msg.fix)}" if msg.fix else ""
            lines.append(f"    - {_code(msg.what)}{fix}")
        lines.append("")
    return "\n".join(lines) + "\n"


def render_other(documented: set[str]) -> str:
    """Sections for the families that ``troubleshooting.md`` does not describe yet."""
    families, messages = collect()
    used = {m.family for m in messages}
    out: list[str] = []
    for family in sorted(used - documented):
        out += [f"### `{family}`", "", _md(families.get(family, "")), "",
                render_family(family, messages)]
    return "\n".join(out) if out else "_Every error family is described above._\n"


if __name__ == "__main__":
    fams, msgs = collect()
    counts: dict[str, int] = defaultdict(int)
    for m in msgs:
        counts[m.family] += 1
    for fam in fams:
        print(f"{fam:20} {counts.get(fam, 0):4} messages  {fams[fam]}")
