"""Run the numbered notebooks headlessly with papermill and publish ``reports/``.

The run is written to ``reports.new`` and swapped in only when every notebook succeeded; a failure leaves the
previous reports alone and keeps the executed notebook, with its traceback, in the staging folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from vfcross.reporting.readme import reports_readme
from vfcross.reporting.session import NOTEBOOK_DIR
from vfcross.reporting.summary import merge_summary

#: Seconds each notebook took, by its number, in the committed default run (reports/summary.json,
#: ``wall_time_s``): the progress bar's weights when no earlier run of the same preset left timings.
TYPICAL_SECONDS = {"01": 87.0, "02": 387.6, "03": 104.0, "04": 38.7, "05": 582.4, "06": 29.0}
_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}  # the cells papermill adds


class NotebookFailed(RuntimeError):
    """A notebook raised while running; the message is one line naming the cell and the ``executed`` copy."""

    def __init__(self, message: str, executed: Path):
        super().__init__(message)
        self.executed = executed


def notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks in run order (``01_…`` before ``02_…``)."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks in {folder} (the notebooks come with a checkout of vfcross)")
    return found


def notebook_weights(names: list[str], reports: str | Path, preset: str) -> list[float]:
    """Expected seconds of each notebook: the last run of ``preset`` in ``reports/summary.json`` where it timed
    them all, else :data:`TYPICAL_SECONDS` by number (another preset's times would mislead)."""
    try:
        summary = json.loads((Path(reports) / "summary.json").read_text())
        times = summary["wall_time_s"] if summary["preset"] == preset else {}
        if names and all(times[name] > 0 for name in names):
            return [float(times[name]) for name in names]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    average = sum(TYPICAL_SECONDS.values()) / len(TYPICAL_SECONDS)
    return [TYPICAL_SECONDS.get(name[:2], average) for name in names]


def reproduce(preset: str, reports: str | Path, work_dir: str | Path = "work",
              data_root: str = "", splits_file: str = "", overrides: dict | None = None, *,
              notebook_dir: str | Path = NOTEBOOK_DIR,
              say: Callable[[str], None] | None = None) -> dict[str, float]:
    """Execute every notebook with ``preset`` (and ``overrides``) and replace ``reports`` on success; seconds per
    notebook and total. ``say`` gets the start and end lines (default: stderr). On failure :class:`NotebookFailed`."""
    import papermill  # only this command needs the notebook stack

    say = say or (lambda line: tqdm.write(line, file=sys.stderr))
    reports = Path(reports).resolve()
    staging = reports.with_name(reports.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "notebooks").mkdir(parents=True)
    # the notebooks run in notebooks/ and get every path relative to it, as their parameters cell has them
    notebook_dir = Path(notebook_dir).resolve()
    params = {"preset": preset, "work_dir": _relative(work_dir, notebook_dir),
              "reports_dir": _relative(staging, notebook_dir), "data_root": _relative(data_root, notebook_dir),
              "splits_file": _relative(splits_file, notebook_dir),
              "overrides": {k: _relative(v, notebook_dir) if isinstance(v, str) and os.path.isabs(v) else v
                            for k, v in (overrides or {}).items()}}
    found = notebooks(notebook_dir)
    weights = notebook_weights([nb.stem for nb in found], reports, preset)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with tqdm(total=sum(weights), file=sys.stderr, smoothing=0, mininterval=0,
              bar_format="{desc}{percentage:3.0f}% of the run [{elapsed} elapsed, {remaining} left]") as bar:
        for i, (nb, weight) in enumerate(zip(found, weights), 1):
            bar.set_description(f"[{i}/{len(found)}] {nb.stem}")
            say(f"[{i}/{len(found)}] {nb.stem}: started")
            t0 = time.perf_counter()
            executed = staging / "notebooks" / nb.name
            try:
                papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name="python3",
                                           progress_bar=False, log_output=False, cwd=str(nb.parent),
                                           extra_arguments=["--IPKernelApp.log_level=ERROR"])
            except papermill.PapermillExecutionError as err:
                raise _failure(nb, executed, err) from None
            timings[nb.stem] = round(time.perf_counter() - t0, 1)
            bar.update(weight)
            say(f"[{i}/{len(found)}] {nb.stem}: done in {tqdm.format_interval(timings[nb.stem])}")
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = merge_summary(staging, timings, preset)
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (staging / "README.md").write_text(reports_readme(summary))
    published = _relative(reports, notebook_dir)  # where the notebooks' reports_dir is once the run is published
    paths = {str(staging): published, params["reports_dir"]: published,
             str(Path(work_dir).resolve()): params["work_dir"], str(notebook_dir): "."}
    for executed in (staging / "notebooks").glob("*.ipynb"):
        _replace_paths(executed, paths)
    old = reports.with_name(reports.name + ".old")  # the old reports are removed only once the new are in place
    shutil.rmtree(old, ignore_errors=True)
    if reports.exists():
        reports.rename(old)
    staging.rename(reports)
    shutil.rmtree(old, ignore_errors=True)
    say(f"all {len(found)} notebooks ran in {tqdm.format_interval(timings['total'])}; reports in {reports}")
    return timings


def _relative(path: str | Path, start: Path) -> str:
    """``path`` (against the current folder) relative to ``start``, or absolute where it cannot be (another
    Windows drive); "" stays "" (no dataset, no split file)."""
    if not str(path):
        return ""
    try:
        return Path(os.path.relpath(Path(path).resolve(), start)).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _replace_paths(notebook: Path, paths: dict[str, str]) -> None:
    """Rewrite an executed ``notebook`` (its parameters, outputs, metadata) with ``paths``: the staging folder
    becomes the published one, absolute paths relative ones (never inside a relative path)."""
    escaped = {json.dumps(old)[1:-1]: json.dumps(new)[1:-1] for old, new in paths.items()}  # as JSON holds them
    pattern = re.compile(r"(?<![\w.])(?:" + "|".join(map(re.escape, sorted(escaped, key=len, reverse=True))) + ")")
    notebook.write_text(pattern.sub(lambda found: escaped[found.group()], notebook.read_text()))


def _failure(nb: Path, executed: Path, err) -> NotebookFailed:
    """One-line description of a papermill execution error in ``nb``; the cell is counted in the source notebook,
    found in the executed copy without papermill's own cells."""
    first = next((line.strip() for line in (err.source or "").splitlines() if line.strip()), "")
    first = first if len(first) <= 80 else first[:77] + "..."
    error = f"{err.ename}: {err.evalue}".strip().rstrip(":") if err.evalue else err.ename
    error = error.splitlines()[0] if error else "error"
    index = err.cell_index
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        cells = []
    own = [c for c in cells if not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    for i, cell in enumerate(own):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])) or \
                cell.get("metadata", {}).get("papermill", {}).get("exception"):
            index = i
            break
    return NotebookFailed(f"{nb.name} failed in cell {index} ({first!r}): {error}; the traceback is in {executed}",
                          executed)
