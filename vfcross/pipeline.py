"""Run the numbered notebooks headlessly with papermill and publish ``reports/``.

A reproduction writes everything into a fresh temporary folder beside the
reports folder and swaps it in only when every notebook succeeded, so a failed
run leaves the previous reports untouched.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from vfcross.reporting.readme import reports_readme
from vfcross.reporting.summary import merge_summary

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks in run order (``01_…`` before ``02_…``)."""
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks in {folder}")
    return found


def reproduce(preset: str, reports: str | Path, work_dir: str | Path = "work",
              data_root: str = "", splits_file: str = "", overrides: dict | None = None) -> dict[str, float]:
    """Execute every notebook with ``preset`` and replace ``reports`` on success.

    ``overrides`` (dotted configuration keys) reach every notebook's
    ``overrides`` parameter.

    Returns the wall time in seconds per notebook (and ``total``), which is
    also written to ``reports/timings.json``.
    """
    import papermill  # imported here: only this command needs the notebook stack

    reports = Path(reports).resolve()
    staging = reports.with_name(reports.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "notebooks").mkdir(parents=True)
    params = {"preset": preset, "work_dir": str(Path(work_dir).resolve()), "reports_dir": str(staging),
              "data_root": data_root, "splits_file": splits_file, "overrides": dict(overrides or {})}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for nb in notebooks():
        t0 = time.perf_counter()
        papermill.execute_notebook(str(nb), str(staging / "notebooks" / nb.name), parameters=params,
                                   kernel_name="python3", progress_bar=False, cwd=str(nb.parent))
        timings[nb.stem] = round(time.perf_counter() - t0, 1)
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = merge_summary(staging, timings, preset)
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (staging / "README.md").write_text(reports_readme(summary))
    _swap_in(staging, reports)
    return timings


def _swap_in(staging: Path, reports: Path) -> None:
    """Replace ``reports`` by ``staging`` (the old copy is removed only afterwards)."""
    old = reports.with_name(reports.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if reports.exists():
        reports.rename(old)
    staging.rename(reports)
    shutil.rmtree(old, ignore_errors=True)
