"""No import cycles among the package's modules; each module imports on its own.

The static check reads every ``import`` in the source (top level and inside functions, outside
``if TYPE_CHECKING:``), builds the graph of project modules and asserts it has no cycle: a lazy
import inside a function still ties two modules together. The dynamic check imports every
module alone in a fresh interpreter state, which is what a user's first import does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "recsim_llm": REPO / "recsim_llm",
    "recsim_llm.envs": REPO / "envs",
    "recsim_llm.agents": REPO / "agents",
    "recsim_llm.dashboard": REPO / "dashboard",
}


def project_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the package."""
    modules: dict[str, Path] = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if "assets" in parts or name in modules:
                continue
            modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = current.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports anywhere (TYPE_CHECKING blocks excluded)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = _imported_names(tree, name, path.name == "__init__.py")
        # ``from pkg import mod`` names a module; ``from mod import func`` names ``mod``.
        graph[name] = {t for t in targets if t in modules and t != name}
        # A module importing its own parent package is not a cycle (the package runs first).
        graph[name] -= {p for p in graph[name] if name.startswith(p + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_known_edges():
    graph = import_graph()
    assert "recsim_llm.lm.metrics" in graph["recsim_llm.lm.evaluate"]
    assert "recsim_llm.lm.evaluate" in graph["recsim_llm.lm.finetune"]  # a function-level import
    assert "recsim_llm.registry" in graph["recsim_llm.encoders"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    names = [n for n in project_modules() if not n.startswith("recsim_llm.dashboard")]
    script = f"""
import importlib, sys, traceback, warnings
warnings.simplefilter("ignore")
failed = []
for name in {names!r}:
    for loaded in [m for m in sys.modules if m == "recsim_llm" or m.startswith("recsim_llm.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_recsim_llm_name_imported_anywhere_exists():
    """A ``from recsim_llm... import name`` in the package or a benchmark resolves (benchmarks are
    not run by the suite, so a renamed function would otherwise break them silently)."""
    import ast
    import importlib

    missing = []
    files = [p for p in REPO.rglob("*.py") if not set(p.parts) & {".ci-venv", "build", ".venv"}]
    for path in sorted(files):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recsim_llm")
            ):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name == "*" or hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{path.relative_to(REPO)}: {node.module}.{alias.name}")
    assert not missing, missing


def test_envs_never_import_agents():
    """The envs sit below the policies: no module under ``envs/`` imports the agents package,
    not even in a function or a ``TYPE_CHECKING`` block (the context policies get lives in
    ``recsim_llm.context``)."""
    offenders = []
    for name, path in project_modules().items():
        if not name.startswith("recsim_llm.envs"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                if target in ("agents", "recsim_llm.agents") or target.startswith(
                    ("agents.", "recsim_llm.agents.")
                ):
                    offenders.append(f"{name}: {target}")
    assert not offenders, offenders
    assert "recsim_llm.context" in import_graph()["recsim_llm.envs.core"]
