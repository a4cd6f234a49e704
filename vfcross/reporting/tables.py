"""Tables 2-6 as CSV and Markdown: reported rows of the paper apart from the rows measured here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vfcross.io import markdown_table
from vfcross.reporting.reported import REPORTED, TABLE_TITLES


def pct(value: float) -> float:
    """A fraction as a percentage rounded for tables."""
    return round(100.0 * value, 2)


def pct_ci(ci: list[float] | tuple[float, float] | None) -> str:
    """A confidence interval of fractions as '[lo, hi]' in %; 'n/a' where none could be made (None)."""
    if ci is None:
        return "n/a"
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def build_table(name: str, measured: list[dict], provenance: dict[str, str]) -> pd.DataFrame:
    """Reported rows of ``name`` followed by our measured rows, labelled by ``source``.

    ``measured`` rows hold metric columns in % (and optional ``*_ci`` columns);
    ``provenance`` (dataset, preset, seed) is attached to every measured row.
    """
    reported = [{"source": "reported", "dataset": "VoxCeleb1", **row} for row in REPORTED.get(name, [])]
    labels = {key: str(value) for key, value in provenance.items()}  # e.g. seed 0, not 0.0 beside NA
    ours = [{"source": "measured", **labels, **row} for row in measured]
    table = pd.DataFrame(reported + ours)
    # source and method first, then the metrics in the order our rows list them, then the
    # confidence intervals, provenance last
    first = ["source", "method"]
    tail = [c for c in dict.fromkeys(["dataset", *provenance]) if c in table.columns]
    columns = list(dict.fromkeys([*(k for row in ours for k in row), *table.columns]))
    cis = [c for c in columns if c.endswith("CI")]
    return table[first + [c for c in columns if c not in first + cis + tail] + cis + tail]


def write_table(table: pd.DataFrame, name: str, reports_dir: str | Path) -> tuple[Path, Path]:
    """Write ``reports/tables/<name>.csv`` and ``.md`` (reported and measured rows kept apart)."""
    folder = Path(reports_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv, index=False)
    lines = [f"# {TABLE_TITLES.get(name, name)}", ""]
    for source, part in table.groupby("source", sort=False):
        part = part.dropna(axis=1, how="all").drop(columns="source")
        lines += [f"## {source}", "", markdown_table(part)]
    md.write_text("\n".join(lines))
    return csv, md
