"""The package layering of src/tuwen, read from the source (nothing imported): no import cycles between modules, and
no package importing one above it. The flow, bottom to top: util → store → ingest / encoders → predict →
search / recommend → service / distributed → shop → serve → cli."""

from __future__ import annotations

import ast
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# Packages (and top-level modules) by layer; a module may import its own package and anything on a lower layer.
LAYERS = {
    "util": 0, "choices": 0, "metrics": 0,
    "store": 1,
    "ingest": 2, "encoders": 2,
    "predict": 3,
    "search": 4, "recommend": 4,
    "service": 5,  # question answering, message routing, review insight: below the shop façade that calls them
    "distributed": 5,  # the stages on a Ray cluster (the optional `ray` extra)
    "shop": 6,
    "serve": 7,
    "cli": 8,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "tuwen").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _parse_files(paths: list[Path]) -> list[ast.Module]:
    return [ast.parse(path.read_text(encoding="utf-8")) for path in paths]


@functools.cache
def _trees() -> dict[str, ast.Module]:
    """Every module's syntax tree, parsed in a fresh process: Python 3.11's AST recursion guard is shared by all
    threads (fixed in 3.11.8), so a parse here can fail with "AST constructor recursion depth mismatch" while
    another test's leftover thread (Ray's, for one) compiles code in this process."""
    modules = _modules()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        trees = pool.submit(_parse_files, list(modules.values())).result(timeout=120)
    return dict(zip(modules, trees, strict=True))


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every tuwen module each module imports, wherever the import sits (functions and TYPE_CHECKING included)."""
    edges: dict[str, set[str]] = {}
    trees = _trees()
    for name in modules:
        targets: set[str] = set()
        for node in ast.walk(trees[name]):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tuwen"):
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("tuwen")}
        edges[name] = {t for t in targets if t != name and not t.startswith(name + ".")}
    return edges


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_no_package_imports_a_higher_layer() -> None:
    modules = _modules()
    unknown = sorted({_package(m) for m in modules if m != "tuwen"} - set(LAYERS))
    assert not unknown, f"packages with no layer in this test: {unknown}"
    wrong = []
    for module, targets in _imports(modules).items():
        if module == "tuwen":  # the package root re-exports tuwen.Workspace (the shop) lazily
            continue
        for target in targets:
            here, there = _package(module), _package(target)
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} (layer {LAYERS[here]}) imports {target} (layer {LAYERS[there]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    edges = _imports(_modules())
    for module in edges:  # the package root's lazy re-export is not a dependency of design
        edges[module].discard("tuwen")
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_checks_see_a_violation() -> None:
    """The walk itself finds imports (a check that finds nothing would pass on any tree)."""
    edges = _imports(_modules())
    assert "tuwen.store.workspace" in edges["tuwen.shop"]
    assert "tuwen.predict.registry" in edges["tuwen.shop"]


def test_workspace_parameters_are_typed() -> None:
    """Every stage states which workspace it takes (the store's, a path, or the shop), never ``Any``."""
    untyped = []
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                    if arg.arg in ("workspace", "ws") and (arg.annotation is None
                                                           or ast.unparse(arg.annotation) in ("Any", "typing.Any")):
                        untyped.append(f"{name}.{node.name}({arg.arg})")
    assert not untyped, untyped
