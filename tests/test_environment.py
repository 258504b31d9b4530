"""The pinned dependency list is written once in pyproject.toml; environment.yml must agree."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins(*, tiers: tuple[str, ...] = ("notebooks", "test")) -> dict[str, str]:
    """The pins of the library's own list and of the optional tiers ``tiers``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [req for tier in tiers for req in project["optional-dependencies"][tier]]
    return dict(_split(req) for req in [*project["dependencies"], *extras])


def _split(requirement: str) -> tuple[str, str]:
    name, sep, version = requirement.partition("==")
    assert sep, f"{requirement!r} is not pinned with =="
    return name.strip().lower(), version.strip()


def test_environment_yml_pins_exactly_the_pyproject_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    env_pins = dict(_split(req) for req in pip_lists[0])
    assert env_pins == _pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_torch_pins_are_the_ones_this_project_supports():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_installed_versions_match_the_pins():
    for name, version in _pyproject_pins().items():
        installed = metadata.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"


def test_a_training_box_needs_neither_the_notebooks_nor_the_tests():
    library = _pyproject_pins(tiers=())
    assert {"torch", "torchvision", "torchmetrics", "opencv-python", "cityscapesscripts"} <= set(library)
    assert not {"jupyterlab", "papermill", "ipykernel", "pytest", "playwright"} & set(library)
    assert {"jupyterlab", "papermill"} <= set(_pyproject_pins(tiers=("notebooks",)))
