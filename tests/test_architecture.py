"""The package's shape: layers that import only downwards, no import circle, modules of a readable size.

The layers, lowest first (docs/design.md, "Source modules"): ``core`` (errors, names, paths,
deadlines, versions), the domain packages ``charts``, ``registry``, ``images``, ``bundle``,
``flux``, ``gitlab``, then the ``door`` and the front ends (``cli``, ``main`` and their helpers).
A module may import its own layer and the layers below it, never one above.
"""

from __future__ import annotations

import pytest

from support.imports import project_imports, source_modules

#: The layers, lowest first; a top-level module (not in a subpackage) is a front end.
LAYERS = ("core", "charts", "registry", "images", "bundle", "flux", "gitlab", "door", "front end")
#: The most lines a source module may have: beyond it, a module holds more than one concern.
MAX_LINES = 500


def layer_of(module: str) -> str:
    """``core.errors`` -> ``core``; ``door`` -> ``door``; ``cli`` -> ``front end``."""
    first = module.split(".")[0]
    if first not in LAYERS:
        return "front end"
    return first


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every ``module -> imported`` edge of ``graph`` that goes to a higher layer."""
    rank = {name: n for n, name in enumerate(LAYERS)}
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if rank[layer_of(target)] > rank[layer_of(module)])


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(circles)


def package_graph() -> dict[str, set[str]]:
    """Every source module's project imports, wherever they are made (a deferred import counts), except
    those only a type checker reads (``if TYPE_CHECKING:``)."""
    modules = source_modules()
    return {name: project_imports(path, runtime_only=True) - {name} for name, path in modules.items()}


def test_every_module_imports_only_its_layer_and_below():
    graph = package_graph()
    assert len(graph) > 50 and {"core", "charts", "registry", "images", "bundle", "flux", "gitlab", "door"} <= {
        layer_of(m) for m in graph}
    assert upward_imports(graph) == []


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in source_modules().items()}
    assert max(sizes.values()) > MAX_LINES // 2  # the count sees real modules
    assert sorted(f"{name}: {size} lines" for name, size in sizes.items() if size > MAX_LINES) == []


def test_the_package_has_no_import_circle():
    assert import_circles(package_graph()) == []


@pytest.mark.parametrize("graph, found", [
    ({"core.names": {"door.workspace"}, "door.workspace": set()}, ["core.names -> door.workspace"]),
    ({"charts.config": {"gitlab.plan"}, "gitlab.plan": {"charts.config"}}, ["charts.config -> gitlab.plan"]),
    ({"door.charts": {"cli"}, "cli": {"door.charts"}}, ["door.charts -> cli"]),
    ({"flux.deploy": {"bundle.admin_api", "core.errors"}}, []),
])
def test_the_layer_check_sees_an_upward_import(graph, found):
    assert upward_imports(graph) == found


def test_the_circle_check_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_circles(graph) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []
