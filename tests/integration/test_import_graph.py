"""The integration's modules import one way, read from their source (nothing is imported).

Peblar's order: const, then the client, the coordinators, the entity base, the platforms, and
`__init__`, which wires them; runtime data names the coordinators and only `__init__`, the
platforms and the actions read it. Policy and the agent client stay free of Home Assistant.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "custom_components" / "joulegate"

# Pure Python: the benchmarks load them without Home Assistant, and the client could be a library.
HOME_ASSISTANT_FREE = (
    "surplus",
    "levels",
    "allocation",
    "batch_plan",
    "forecast",
    "deadline",
    "accounting",
    "ledger",
    "exceptions",
    "models",
    "client",
)
RUNTIME_DATA_READERS = {
    "__init__",
    "binary_sensor",
    "number",
    "select",
    "sensor",
    "diagnostics",
    "services",
}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """The package's modules and the outside packages that `module` imports (type-only included:
    a cycle hidden behind TYPE_CHECKING is still a cycle)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    own: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is None:
                own.update(alias.name for alias in node.names)
            else:
                own.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return own, outside


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path.stem)[0] for path in PACKAGE.glob("*.py")}


def _reached(module: str, graph: dict[str, set[str]]) -> set[str]:
    """`module` and every package module it imports, directly or not."""
    seen = {module}
    todo = [module]
    while todo:
        for name in graph[todo.pop()] - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_the_integrations_modules_import_each_other_one_way() -> None:
    try:
        TopologicalSorter(_graph()).prepare()
    except CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


@pytest.mark.parametrize("module", HOME_ASSISTANT_FREE)
def test_policy_and_the_client_import_nothing_of_home_assistant(module: str) -> None:
    graph = _graph()
    reached = _reached(module, graph)
    assert {name for name in reached if "homeassistant" in _imports(name)[1]} == set()


def test_only_setup_the_platforms_and_the_actions_read_the_runtime_data() -> None:
    readers = {module for module, imported in _graph().items() if "data" in imported}
    assert readers <= RUNTIME_DATA_READERS


def test_setup_imports_no_platform() -> None:
    """The platforms are Home Assistant's to load; `__init__` only names them."""
    assert _graph()["__init__"].isdisjoint({"binary_sensor", "number", "select", "sensor"})
