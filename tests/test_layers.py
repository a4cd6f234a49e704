"""Imports run one way: a stage may use the stages before it, never a later one (every import, lazy ones too)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vfcross"
#: The stages in order; the top-level helpers (configuration, files, metrics, losses, the training loop) come first.
ORDER = ("", "data", "preprocess", "backbone", "fusion", "evaluation", "reporting", "workflows")


def _stage(module: str) -> int:
    """The rank of a dotted vfcross module: its first folder, or 0 for a top-level module."""
    parts = module.split(".")[1:]
    return ORDER.index(parts[0]) if len(parts) > 1 or (parts and parts[0] in ORDER) else 0


def _imports(path: Path) -> set[str]:
    """Every vfcross module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vfcross"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vfcross")}
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")  # vfcross.load: a lazy shortcut


def _name(path: Path) -> str:
    return "vfcross." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def test_no_module_imports_a_later_stage():
    later = {_name(p): sorted(m for m in _imports(p) if _stage(m) > _stage(_name(p))) for p in MODULES}
    assert len(MODULES) > 50 and not {k: v for k, v in later.items() if v}


def test_evaluation_and_reporting_train_nothing():
    """They score and format vectors they are given: no backbone or fusion model (training them is the workflows')."""
    models = ("vfcross.backbone", "vfcross.fusion")
    found = {_name(p): sorted(m for m in _imports(p) if m.startswith(models)) for p in MODULES
             if _stage(_name(p)) in (ORDER.index("evaluation"), ORDER.index("reporting"))}
    assert len(found) > 20 and not {k: v for k, v in found.items() if v}


def test_the_rule_catches_a_climbing_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from vfcross.reporting.tables import seed_table\n")
    assert _stage("vfcross.backbone.task") < max(_stage(m) for m in _imports(module)) == ORDER.index("reporting")
