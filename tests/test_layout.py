"""The package layout's import directions, read from the source: each wing imports only the wings below it,
the analysis wing imports no model or training code, and no module imports another that imports it back.

    python -m pytest tests/test_layout.py -q     # or: python tests/test_layout.py, which prints the graph
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scaling"
BASE = {"errors", "config_io", "records", "console", "stops"}
# What each wing may import besides itself and the base modules.
ALLOWED = {
    "base": set(),
    "data": set(),
    "model": set(),
    "fitting": set(),
    "track": set(),
    "train": {"data", "model", "track"},
    "use": {"data", "model", "train"},
    "sweep": {"data", "model", "train", "fitting", "track"},
    "cli": {"data", "model", "train", "use", "sweep", "fitting", "track"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    return parts[1]


def imports() -> dict[str, set[str]]:
    """Every scaling module and the scaling modules it imports (at any depth of the file, lazy ones too)."""
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        found = set()
        tree = ast.parse(path.read_text())
        # Module names as strings count only where importlib loads them (not `python -m scaling.cli`).
        dynamic = any(
            isinstance(n, ast.Import) and any(a.name == "importlib" for a in n.names) for n in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaling"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names} & known
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("scaling")}
            elif (
                dynamic
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in known
            ):
                found.add(node.value)
        graph[name] = {m for m in found & known if m != name and not name.startswith(m + ".")}
    return graph


def test_wings_import_only_downward():
    bad = []
    for module, targets in imports().items():
        own = wing(module) if module != "scaling.cli" else "cli"
        for target in targets:
            other = wing(target)
            if other not in ("base", own) and other not in ALLOWED[own]:
                bad.append(f"{module} -> {target}")
    assert not bad, "imports against the layout:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


if __name__ == "__main__":
    for module, targets in sorted(imports().items()):
        print(f"{module}: {', '.join(sorted(targets)) or '-'}")
