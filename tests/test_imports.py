"""bpcheck's imports are one-way: read from the source with ast (nothing is imported), so a cycle, a stray
torch/jax import or an import of the entry points fails here, naming the modules and the import lines.

An import under `if TYPE_CHECKING:` never runs, so it is not an edge; every other import counts, those inside
functions too (a function-level import is a cycle deferred to call time, not a cycle removed).
"""

from __future__ import annotations

import ast
import collections
import functools
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "bpcheck"

# The only modules that may import torch or jax (at call time, inside a function, so `import bpcheck` works without
# them): the two references, the baselines, and the layer check's adapters. The layers get the framework as an
# argument and import neither.
FRAMEWORK_MODULES = {
    "bpcheck.references.torch_ref",
    "bpcheck.references.jax_ref",
    "bpcheck.baselines",
    "bpcheck.layercheck.frameworks",
    "bpcheck.layercheck.references",
}
FRAMEWORKS = ("torch", "jax")
ENTRY_POINTS = ("bpcheck.cli", "bpcheck.plugin")
LAUNCHERS = {"bpcheck.__main__"}  # `python -m bpcheck` runs the cli: the one module that may import it


def module_files() -> dict[str, pathlib.Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = module_files()


def _imports(tree: ast.AST, in_function: bool = False):
    """Every Import/ImportFrom node with whether it sits in a function, skipping `if TYPE_CHECKING:` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield from _imports(child, in_function)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        yield from _imports(node, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


@functools.cache
def imports_of(module: str) -> list[tuple[str, int, str, bool]]:
    """(imported module, line, source line, in a function) for each module an import statement of `module` names.
    `from pkg import name` names pkg.name when that is a module, else pkg."""
    path = MODULES[module]
    text = path.read_text()
    lines = text.splitlines()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node, in_function in _imports(ast.parse(text)):
        where = (node.lineno, lines[node.lineno - 1].strip(), in_function)
        if isinstance(node, ast.Import):
            out += [(alias.name, *where) for alias in node.names]
            continue
        if node.level:
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append((sub if sub in MODULES else base, *where))
    return out


def edges() -> dict[str, dict[str, list[str]]]:
    """module -> {bpcheck module it imports -> the import lines}."""
    graph: dict[str, dict[str, list[str]]] = {m: collections.defaultdict(list) for m in MODULES}
    for module in MODULES:
        for target, lineno, line, _ in imports_of(module):
            if target in MODULES and target != module:
                entry = f"{MODULES[module].relative_to(ROOT.parent)}:{lineno}: {line}"
                if entry not in graph[module][target]:
                    graph[module][target].append(entry)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_package():
    graph = edges()
    assert {"bpcheck", "bpcheck.cli", "bpcheck.layers", "bpcheck.layers.registry", "bpcheck.references.finite_diff"} <= set(graph)
    # a relative `from .. import ops` resolves to the submodule bpcheck.ops, not to the package bpcheck
    assert "bpcheck.ops" in graph["bpcheck.layers.activation"]
    assert "bpcheck" not in graph["bpcheck.layers.activation"]
    assert "bpcheck.layers.registry" in graph["bpcheck.layers.dense"]


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b": ["a:1"]}, "b": {"c": ["b:1"]}, "c": {"a": ["c:1"]}, "d": {"a": ["d:1"]}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = edges()
    found = cycles(graph)
    report = []
    for component in found:
        report.append(" <-> ".join(component))
        for module in component:
            for target in component:
                report += [f"    {line}" for line in graph[module].get(target, [])]
    assert not found, "import cycles among bpcheck modules:\n" + "\n".join(report)


def test_torch_and_jax_only_in_the_framework_modules_at_call_time():
    stray, at_top = [], []
    for module in sorted(MODULES):
        for target, lineno, line, in_function in imports_of(module):
            if target.split(".")[0] not in FRAMEWORKS:
                continue
            where = f"{MODULES[module].relative_to(ROOT.parent)}:{lineno}: {line}"
            if module not in FRAMEWORK_MODULES:
                stray.append(where)
            elif not in_function:
                at_top.append(where)
    assert not stray, f"only {sorted(FRAMEWORK_MODULES)} may import torch or jax:\n" + "\n".join(stray)
    assert not at_top, "torch/jax imported at module level (import bpcheck must work without them):\n" + "\n".join(at_top)


def test_framework_modules_exist():
    assert FRAMEWORK_MODULES <= set(MODULES)


def test_nothing_imports_the_entry_points():
    offenders = [line for module, targets in edges().items() for target, lines in targets.items()
                 if target in ENTRY_POINTS and module not in LAUNCHERS
                 and not (module + ".").startswith(target + ".") for line in lines]
    assert not offenders, "bpcheck.cli and bpcheck.plugin are entry points; nothing may import them:\n" + "\n".join(offenders)
