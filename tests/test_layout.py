"""The package's layout holds: who may import whom, no import cycles, modules of a readable size, and one target
per measured result, shared by a chapter's check cell and its bench entries."""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from cvcourse import config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cvcourse"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks (imports for type hints only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def imported(path: Path) -> set[str]:
    """The cvcourse modules ``path`` imports anywhere in its code at run time (a name imported from a package that is
    a submodule counts as that submodule)."""
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("cvcourse")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cvcourse"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found - {"cvcourse"}


IMPORTS = {name: imported(path) for name, path in MODULES.items()}


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_bench_imports_its_entries_and_nothing_imports_the_bench():
    for name, targets in IMPORTS.items():
        assert "cvcourse.bench" not in targets, name
        if name != "cvcourse.bench" and not in_package(name, "cvcourse.benchmarks"):
            assert not any(in_package(target, "cvcourse.benchmarks") for target in targets), name
        if in_package(name, "cvcourse.benchmarks"):  # an entry module imports its package, never a sibling
            assert not any(in_package(target, "cvcourse.benchmarks.") or target.startswith("cvcourse.benchmarks.")
                           for target in targets), name


@pytest.mark.parametrize("package, forbidden", [
    ("cvcourse.models", ("cvcourse.recipes", "cvcourse.cache", "cvcourse.train")),
    ("cvcourse.data", ("cvcourse.models", "cvcourse.recipes")),
    ("cvcourse.segmentation", ("cvcourse.recipes",)),
    ("cvcourse.detection", ("cvcourse.recipes",)),
    ("cvcourse.generative", ("cvcourse.recipes",)),
    ("cvcourse.diffusion", ("cvcourse.recipes",)),
    ("cvcourse.anomaly", ("cvcourse.recipes",)),
    ("cvcourse.forensics", ("cvcourse.recipes",)),
])
def test_methods_and_data_stay_below_the_recipes(package, forbidden):
    for name, targets in IMPORTS.items():
        if in_package(name, package):
            assert not {target for target in targets for other in forbidden if in_package(target, other)}, name


def test_no_import_cycles():
    graph = {name: {target for target in targets if target in MODULES and target != name}
             for name, targets in IMPORTS.items()}
    for package in graph:  # a package's __init__ imports its own modules; a module importing its package is a
        graph[package] = {t for t in graph[package] if not in_package(package, t)}  # cycle only through the others
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if in_package(target, name) or in_package(name, target):
                continue
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_400_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


def test_no_measured_history_in_the_code():
    """Dates and measured history belong in docs/results.md; the code says what and why."""
    for name, path in MODULES.items():
        text = path.read_text()
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), name
        assert "docs/results.md" not in text or name == "cvcourse.bench", name


def notebook_checks(notebook: Path) -> tuple[str, set[str]]:
    """The recipe a chapter notebook loads and the targets its check calls name."""
    source = "\n".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
                       if cell["cell_type"] == "code")
    recipe = re.search(r"from cvcourse\.recipes import (\w+) as recipe", source)
    return (recipe[1] if recipe else ""), set(re.findall(r"cfg\.check\(\"(\w+)\"", source))


CHAPTER_NOTEBOOKS = sorted([*(ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"),
                            *(ROOT / "chapters").glob("appendix_*.ipynb")])


@pytest.mark.parametrize("notebook", CHAPTER_NOTEBOOKS, ids=lambda path: path.stem)
def test_every_target_is_checked_by_the_notebook_or_judged_by_the_bench(notebook):
    recipe_name, checked = notebook_checks(notebook)
    assert recipe_name, f"{notebook.name} does not load its recipe as `from cvcourse.recipes import ... as recipe`"
    recipe = importlib.import_module(f"cvcourse.recipes.{recipe_name}")
    assert recipe.CHAPTER == notebook.stem
    declared = set().union(*(recipe.load(profile, device="cpu").settings.targets for profile in config.PROFILES))
    assert checked <= declared, f"{notebook.name} checks targets its recipe does not declare"
    bench_source = "\n".join(path.read_text() for path in (PACKAGE / "benchmarks").glob("*.py"))
    unused = {name for name in declared if name not in checked and f'"{name}"' not in bench_source}
    assert not unused, f"targets neither checked by {notebook.name} nor judged by a bench entry: {sorted(unused)}"
