"""The flow runs one way: no module of src/vqscope imports, directly or through others, a
module that imports it back. Imports inside functions count too (a lazy import is still a
dependency, only a later one); imports under `if TYPE_CHECKING:` do not."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "vqscope").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(n) for n in ast.walk(node))
    return skipped


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of vqscope it imports (the most specific name each import gives)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found = next((c for c in candidates if c in modules), None)  # `from .x import y`: y if a module
            if found is not None and found != name:
                graph[name].add(found)
    return graph


def test_src_vqscope_has_no_import_cycle():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_cycle_check_sees_a_cycle():
    graph = import_graph()
    graph["vqscope.model"].add("vqscope.service.app")
    graph["vqscope.service.app"].add("vqscope.model")
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError:
        return
    raise AssertionError("a cycle went unseen")


def test_the_graph_holds_real_edges():
    graph = import_graph()
    assert "vqscope.model" in graph["vqscope.zoo"]  # a module-level import
    assert "vqscope.export.providers" in graph["vqscope.export.onnx"]  # an import inside a function
