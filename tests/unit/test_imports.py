"""Import discipline between tetra's packages, read from the source (ast), not from a running import.

Every import counts, those under ``if TYPE_CHECKING:`` and inside functions too:
a cycle that only the type checker or a lazy import follows is still two
packages that cannot be understood, tested or moved apart.
"""

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "tetra"

Edges = dict[str, dict[str, list[str]]]  # package -> imported package -> where ("file:line")


def _package(module: str) -> str | None:
    """``tetra.agent.runner`` -> ``agent``; ``tetra.errors`` -> ``errors``; None for ``tetra`` itself
    (its __init__ holds the version only) and for anything not tetra's."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tetra" and len(parts) > 1 else None


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # ``from tetra import node`` imports the module tetra.node
        return [f"{node.module}.{alias.name}" if node.module == "tetra" else node.module for alias in node.names]
    return []


@cache
def import_graph(root: Path = ROOT) -> Edges:
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent)
        here = _package(".".join(relative.with_suffix("").parts))
        if here is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for there in {_package(module) for module in _imported(node)}:
                if there is not None and there != here:
                    edges[here][there].append(f"{relative}:{node.lineno}")
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(package: str) -> None:
        index[package] = low[package] = len(index)
        stack.append(package)
        for other in edges.get(package, {}):
            if other not in index:
                visit(other)
                low[package] = min(low[package], low[other])
            elif other in stack:
                low[package] = min(low[package], index[other])
        if low[package] == index[package]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == package:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for package in sorted(edges):
        if package not in index:
            visit(package)
    return found


def _evidence(edges: Edges, component: list[str]) -> str:
    return "\n".join(f"  {a} -> {b}: {', '.join(edges[a][b])}" for a in component for b in component
                     if b in edges.get(a, {}))


def test_no_cycle_between_packages() -> None:
    edges = import_graph()
    found = cycles(edges)
    assert not found, "import cycles between tetra's packages:\n" + "\n".join(
        f"{' <-> '.join(c)}\n{_evidence(edges, c)}" for c in found)


def test_the_agent_does_not_know_the_api_or_its_builder() -> None:
    edges = import_graph()
    for above in ("api", "app", "cli"):
        assert above not in edges["agent"], f"tetra.agent imports tetra.{above}: {edges['agent'][above]}"


def test_only_the_cli_reaches_the_composition_root() -> None:
    edges = import_graph()
    importers = sorted(package for package, targets in edges.items() if "app" in targets)
    assert importers == ["cli"], importers


def test_the_status_model_is_below_its_readers() -> None:
    """agent fills it, api, export (metrics) and the exit summary read it: it imports none of them."""
    assert not set(import_graph()["status"]) & {"agent", "api", "export", "app", "cli"}


def test_a_cycle_is_found_and_shown(tmp_path: Path) -> None:
    """The checker itself: two packages that import each other (one only for the type checker)."""
    for package, other, guarded in (("a", "b", False), ("b", "a", True)):
        (tmp_path / "tetra" / package).mkdir(parents=True)
        import_line = f"from tetra.{other}.x import X\n"
        if guarded:
            import_line = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    " + import_line
        (tmp_path / "tetra" / package / "x.py").write_text(import_line)
    (tmp_path / "tetra" / "c.py").write_text("from tetra.a.x import X\n")
    edges = import_graph(tmp_path / "tetra")
    assert cycles(edges) == [["a", "b"]]
    assert "tetra/b/x.py:3" in _evidence(edges, ["a", "b"])
