"""No import cycles between kdgui's modules, lazy (function-level) imports included.

A lazy import hides a cycle from Python at start-up but not from a reader: two modules that
import each other have no owner, and which one loads first decides whether it works. grimp
(installed with import-linter) records every import statement, including those inside
functions and under ``TYPE_CHECKING``, so the graph here is what a reader sees.
"""

from __future__ import annotations

import itertools

import grimp
import pytest


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other (strongly connected, two or more).

    Tarjan's algorithm, written iteratively so a deep package cannot hit the recursion limit.
    Each group is sorted, and the groups are sorted, so a failure reads the same every run.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    """One cycle of a group, as the chain of imports and the lines that make it."""
    first, second = group[0], group[1]  # in one strongly connected group: each reaches the other
    there = graph.find_shortest_chain(importer=first, imported=second) or ()
    back = graph.find_shortest_chain(importer=second, imported=first) or ()
    chain = [*there, *back[1:]]
    lines = []
    for importer, imported in itertools.pairwise(chain):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = (f"line {details[0]['line_number']}: {details[0]['line_contents']}"
                 if details else "")
        lines.append(f"    {importer} -> {imported}  ({where})")
    return f"{len(group)} modules import each other: {', '.join(group)}\n" + "\n".join(lines)


def test_cycle_finder_finds_a_lazy_cycle_and_only_cycles() -> None:
    """The finder itself: a two-module cycle and a three-module one found, a chain not."""
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c", "p.d", "p.e", "p.f"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b", line_number=1, line_contents="import p.b")
    graph.add_import(importer="p.b", imported="p.a", line_number=9, line_contents="import p.a")
    graph.add_import(importer="p.c", imported="p.d")
    graph.add_import(importer="p.d", imported="p.e")
    graph.add_import(importer="p.e", imported="p.c")
    graph.add_import(importer="p.e", imported="p.f")  # leaves the cycle: not part of it
    graph.add_import(importer="p", imported="p.a")
    assert import_cycles(graph) == [["p.a", "p.b"], ["p.c", "p.d", "p.e"]]
    assert "p.a -> p.b  (line 1: import p.b)" in describe(graph, ["p.a", "p.b"])


def test_kdgui_has_no_import_cycles() -> None:
    graph = grimp.build_graph("kdgui", cache_dir=None)
    if "kdgui.engine.models.demo" not in graph.modules:  # the graph must be the real package
        pytest.fail("grimp did not find kdgui's modules; is kdgui importable from the tests?")
    lazy = graph.get_import_details(importer="kdgui.engine.models.loading",
                                    imported="kdgui.engine.export")
    assert lazy, "grimp no longer records function-level imports; this test would miss cycles"
    groups = import_cycles(graph)
    assert not groups, "import cycles (move the shared piece into a third module):\n" + "\n".join(
        describe(graph, g) for g in groups)
