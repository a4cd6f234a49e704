"""Ranges for the library, exact pins for a reproduction, and the files that state them agree.

The README's statements about installing and testing are checked against the
code, the Makefile and the committed run they describe.
"""

import ast
import importlib.metadata
import re
import sys
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


def readme_section(title: str) -> str:
    """The text of README.md's ``## title`` section, its whitespace collapsed to single spaces."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return " ".join(text[start:end if end > 0 else None].split())


def makefile_variable(name: str) -> str:
    """The value of ``name := value`` in the Makefile."""
    return re.search(rf"^{name} := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).strip()


def imported_distributions() -> set[str]:
    """Canonical names of the installed distributions whose modules vfcross/ imports (anywhere in a module)."""
    modules = set()
    for path in (ROOT / "vfcross").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    providers = importlib.metadata.packages_distributions()
    modules -= set(sys.stdlib_module_names) | {"vfcross"}
    missing = sorted(m for m in modules if m not in providers)
    assert not missing, f"vfcross imports {missing}, which no installed distribution provides"
    return {canonicalize_name(d) for m in modules for d in providers[m]}


def test_the_readme_says_vfcross_is_used_from_a_checkout_and_names_what_pip_cannot_bring():
    """`pip install vfcross` cannot install what the library imports but pyproject.toml does not declare."""
    undeclared = imported_distributions() - {canonicalize_name(req.name) for req in requirements()}
    no_deps = {canonicalize_name(makefile_variable(var))
               for var in re.findall(r"--no-deps \$\((\w+)\)", (ROOT / "Makefile").read_text())}
    assert undeclared <= no_deps, f"{sorted(undeclared - no_deps)}: imported, neither declared nor installed by setup"
    notes = readme_section("Installation notes")
    assert "vfcross is used from a checkout, installed by `make setup`" in notes
    for name in sorted(undeclared):
        assert f"the library needs {name}, which `pip install vfcross` cannot bring" in notes, name


def test_the_readme_quotes_what_make_test_prints_without_the_shared_slice():
    skipped = re.search(r'echo "(smoke-slice: \$\(SLICE\) not found, skipped)"', (ROOT / "Makefile").read_text())
    assert skipped, "the Makefile's smoke-slice no longer prints its skip line"
    line = skipped.group(1).replace("$(SLICE)", makefile_variable("SLICE"))
    assert f"`make test` still passes: `smoke-slice` prints `{line}`" in readme_section("Notebooks and the command line")


def test_the_readmes_oracle_figures_are_those_of_the_run_it_points_at():
    """The README quotes no oracle AUC of its own: it points at the column of the committed reports that has them."""
    text = " ".join((ROOT / "README.md").read_text().split())
    assert 'in the "oracle ceiling" column of its `reports/README.md`' in text
    header = next(line for line in (ROOT / "reports" / "README.md").read_text().splitlines()
                  if line.startswith("| metric"))
    assert "| oracle ceiling (synthetic) |" in header
    assert not re.search(r"oracle[^.]*≈ 0\.\d", text), "the README states an oracle AUC by hand"


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links {target}, which is missing"
