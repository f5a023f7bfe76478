"""The two install paths (pip/pyproject and conda/environment.yml) ask for the same runtime packages."""

from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI's


def pyproject_runtime() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {req.name.lower(): str(req.specifier) for req in requirements}


def conda_runtime() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = [entry for entry in environment["dependencies"]
             if isinstance(entry, str) and entry.split("=")[0] not in {"python", "pip"}]
    requirements = [Requirement(spec) for spec in specs]  # ">=" specs read the same in conda and pip
    return {CONDA_TO_PIP.get(req.name.lower(), req.name.lower()): str(req.specifier) for req in requirements}


def test_environment_yml_lists_the_same_runtime_dependencies_as_pyproject():
    assert conda_runtime() == pyproject_runtime()


def test_environment_yml_installs_cvcourse_with_its_dev_extra():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert "-e .[dev]" in pip_section


def test_torch_pair_constraints_pin_matching_releases():
    constraints = [Requirement(line) for line in (ROOT / "requirements" / "torch-pair.txt").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    assert {req.name for req in constraints} == {"torch", "torchvision"}
    runtime = pyproject_runtime()
    for req in constraints:  # the pinned pair must satisfy pyproject's loose ranges
        pinned = str(req.specifier).removeprefix("==").replace(".*", ".0")
        assert Requirement(f"{req.name}{runtime[req.name]}").specifier.contains(pinned)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
