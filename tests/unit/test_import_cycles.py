"""No import cycles in Ferry's packages (issue 13).

The graph is grimp's (import-linter's engine): every ``import`` in ``events``, ``services``,
``ferry`` and ``infra``, at module level or inside a function, ``TYPE_CHECKING`` blocks included.
A cycle is a strongly connected component of more than one module (or a module importing
itself); the failure names each cycle's modules and one closed path through them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grimp
import pytest

PACKAGES = ("events", "services", "ferry", "infra")


def import_graph(*packages: str) -> dict[str, set[str]]:
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def closed_path(graph: Mapping[str, set[str]], component: Sequence[str]) -> list[str]:
    """One cycle through the component's first module, by breadth-first search inside it."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & members):
                if nxt == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = previous[node]
                    return [start, *reversed(path[1:]), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return list(component)


def describe(graph: Mapping[str, set[str]]) -> list[str]:
    return [" -> ".join(closed_path(graph, c)) for c in cycles(graph)]


def test_no_import_cycles_in_ferry() -> None:
    graph = import_graph(*PACKAGES)
    assert len(graph) > 100  # the real packages were scanned
    found = describe(graph)
    assert not found, "import cycles:\n  " + "\n  ".join(found)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, ["a -> b -> a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, ["a -> b -> c -> a"]),
        ({"a": {"a"}}, ["a -> a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"p"}}, ["p -> q -> p", "x -> y -> x"]),
    ],
)
def test_the_detector_names_each_cycle(graph: dict[str, set[str]], expected: list[str]) -> None:
    assert describe(graph) == expected


def test_a_cycle_through_a_function_level_import_is_found(tmp_path, monkeypatch) -> None:
    """The kind of cycle issue 13 found (bootstrap imports its entry point inside a function)."""
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bootstrap.py").write_text(
        "def build():\n    from cyclepkg.handlers import add_routes\n    return add_routes\n"
    )
    (package / "handlers.py").write_text(
        "def add_routes():\n    pass\n\ndef _build():\n    from cyclepkg.bootstrap import build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert describe(import_graph("cyclepkg")) == [
        "cyclepkg.bootstrap -> cyclepkg.handlers -> cyclepkg.bootstrap"
    ]
