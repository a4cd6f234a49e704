"""What every notebook needs first: ``s = setup(preset, work_dir, reports_dir, data_root, splits_file,
overrides)`` gives the run's configuration, the reports folder, the provenance of every measured row, and
writers for figures, tables and its part of ``summary.json``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from vfcross import config as C
from vfcross.reporting.summary import write_part
from vfcross.reporting.tables import write_table

#: The numbered notebooks' folder in a checkout of vfcross: their parameters' paths are relative to it.
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class Session:
    """One notebook's run: configuration, reports folder and provenance."""

    cfg: C.RunConfig
    reports: Path

    @property
    def synthetic(self) -> bool:
        """Whether the run uses the embedded synthetic population (not a user's dataset)."""
        return not self.cfg.data_root

    @property
    def dataset(self) -> str:
        """A short name of the dataset for tables."""
        return (f"synthetic n={self.cfg.synth.identities}" if self.synthetic
                else f"VoxCeleb1 layout at {Path(self.cfg.data_root).name}")

    @property
    def provenance(self) -> dict[str, str]:
        """What every measured table row says about how it was made."""
        return {"dataset": self.dataset, "preset": self.cfg.preset, "eval seed": str(self.cfg.eval.seed)}

    def figure(self, fig: Any, name: str) -> Path:
        """Save ``fig`` as ``reports/figures/<name>.png`` and return the path."""
        from vfcross.reporting.figures import save_figure

        return save_figure(fig, self.reports / "figures" / f"{name}.png")

    def table(self, table: pd.DataFrame, name: str) -> pd.DataFrame:
        """Write ``reports/tables/<name>.csv`` and ``.md``; returns the table for display."""
        write_table(table, name, self.reports)
        return table

    def part(self, name: str, data: Mapping[str, Any]) -> Path:
        """Record this notebook's contribution to ``summary.json``."""
        return write_part(self.reports, name, dict(data))


def setup(preset: str, work_dir: str, reports_dir: str, data_root: str = "", splits_file: str = "",
          overrides: Mapping[str, Any] | None = None) -> Session:
    """The notebook's :class:`Session`: the preset with the parameters and dotted ``overrides`` applied; relative
    paths are relative to the checkout's ``notebooks/`` (:data:`NOTEBOOK_DIR`), which becomes the working folder."""
    if NOTEBOOK_DIR.is_dir():  # absent where vfcross was installed without its checkout
        os.chdir(NOTEBOOK_DIR)
    cfg = C.override(C.preset(preset), {"work_dir": work_dir, "data_root": data_root, "splits_file": splits_file,
                                        **(overrides or {})})
    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    return Session(cfg, reports)
