"""Ranges for the library, exact pins for a reproduction, and the files that state them agree."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def constraints() -> dict[str, Version]:
    """``constraints.txt``: canonical package name -> exact version."""
    pins = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt:{number}: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def requirements() -> list[Requirement]:
    """The dependencies of pyproject.toml, its extras included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(r) for r in project["dependencies"] + [r for group in extras.values() for r in group]]


def test_pyproject_gives_ranges_and_the_constraints_satisfy_them():
    pins = constraints()
    for req in requirements():
        assert not any(spec.operator == "==" for spec in req.specifier), f"{req} is pinned in pyproject.toml"
        assert req.specifier, f"{req.name} has no range in pyproject.toml"
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints.txt pins {req.name}=={pins[name]}, outside {req}"


def test_constraints_pin_what_setup_installs_outside_pyproject():
    pins = constraints()
    assert "facenet-pytorch" in pins  # installed by make setup with --no-deps
    assert "ipywidgets" in pins and "seaborn" in pins


def test_environment_yml_lists_the_direct_dependencies_at_the_constrained_versions():
    listed = dict(re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "environment.yml").read_text(), re.M))
    listed = {canonicalize_name(name): Version(version) for name, version in listed.items()}
    assert set(listed) == {canonicalize_name(req.name) for req in requirements()}
    pins = constraints()
    assert {name: pins[name] for name in listed} == listed
