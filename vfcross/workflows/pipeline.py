"""Run the numbered notebooks headlessly with papermill and publish ``reports/``.

A reproduction writes everything into a fresh staging folder beside the reports
folder (``reports.new``) and swaps it in only when every notebook succeeded, so a
failed run leaves the previous reports untouched and keeps the partly executed
notebook, with its traceback, in the staging folder.

The run talks: one line as each notebook starts and ends, with the elapsed time
and an estimate of the time left, and a failing notebook ends the run with one
line (:class:`NotebookFailed`) that names the notebook, the cell and the
executed copy to open.
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

from vfcross.reporting.readme import reports_readme
from vfcross.reporting.session import NOTEBOOK_DIR
from vfcross.reporting.summary import merge_summary

#: Seconds each notebook took, by its number, in the committed default run (reports/summary.json,
#: ``wall_time_s``: 763 s on a 2-core CPU with native bfloat16, the bfloat16 path). Their shares
#: estimate the time left when no earlier run of the same preset left timings; tests/test_pipeline.py
#: keeps them within 3 points of share of the committed run's.
TYPICAL_SECONDS = {"01": 78.7, "02": 213.0, "03": 66.6, "04": 25.0, "05": 356.2, "06": 23.1}

#: Command-line options of the notebooks' kernels: the kernel's own log (e.g.
#: ipykernel's warning that it talks over local TCP) stays off the terminal;
#: what a notebook prints or warns goes into its executed copy as usual.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]

# Tags papermill gives the cells it adds to an executed notebook.
_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


class NotebookFailed(RuntimeError):
    """A notebook raised while running; the message is one line for the terminal.

    Attributes name the notebook, the failing cell (its index in the source
    notebook and its first source line), the error and the executed copy whose
    outputs hold the full traceback.
    """

    def __init__(self, notebook: str, cell_index: int, first_line: str, error: str, executed: Path):
        self.notebook, self.cell_index, self.first_line = notebook, cell_index, first_line
        self.error, self.executed = error, executed
        super().__init__(f"{notebook} failed in cell {cell_index} ({first_line!r}): {error}; "
                         f"the traceback is in {executed}")


def notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks in run order (``01_…`` before ``02_…``)."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks in {folder} (the notebooks come with a checkout of vfcross)")
    return found


def reproduce(preset: str, reports: str | Path, work_dir: str | Path = "work",
              data_root: str = "", splits_file: str = "", overrides: dict | None = None, *,
              notebook_dir: str | Path = NOTEBOOK_DIR,
              say: Callable[[str], None] | None = None) -> dict[str, float]:
    """Execute every notebook with ``preset`` and replace ``reports`` on success.

    ``overrides`` (dotted configuration keys) reach every notebook's
    ``overrides`` parameter. ``say`` receives the progress lines (default:
    printed to stderr at once).

    Returns the wall time in seconds per notebook (and ``total``), which is
    also recorded in ``reports/summary.json`` and feeds the next run's estimates.
    Raises :class:`NotebookFailed` when a notebook fails; the staging folder
    ``<reports>.new`` then keeps the executed copies.
    """
    import papermill  # imported here: only this command needs the notebook stack

    say = say or _print_now
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
    weights, absolute = run_weights([nb.stem for nb in found], previous_timings(reports, preset))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for i, nb in enumerate(found, 1):
        pending = [later.stem for later in found[i - 1:]]
        say(f"[{i}/{len(found)}] {nb.stem}: started"
            f" ({_status(time.perf_counter() - start, time_left(timings, pending, weights, absolute))})")
        t0 = time.perf_counter()
        executed = staging / "notebooks" / nb.name
        try:
            papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name="python3",
                                       progress_bar=False, log_output=False, cwd=str(nb.parent),
                                       extra_arguments=KERNEL_ARGUMENTS)
        except papermill.PapermillExecutionError as err:
            raise _failure(nb, executed, err) from None
        timings[nb.stem] = round(time.perf_counter() - t0, 1)
        say(f"[{i}/{len(found)}] {nb.stem}: done in {clock(timings[nb.stem])}"
            f" ({_status(time.perf_counter() - start, time_left(timings, pending[1:], weights, absolute))})")
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = merge_summary(staging, timings, preset)
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (staging / "README.md").write_text(reports_readme(summary))
    published = _relative(reports, notebook_dir)  # where the notebooks' reports_dir is once the run is published
    paths = {str(staging): published, params["reports_dir"]: published,
             str(Path(work_dir).resolve()): params["work_dir"], str(notebook_dir): "."}
    for executed in (staging / "notebooks").glob("*.ipynb"):
        _replace_paths(executed, paths)
    _swap_in(staging, reports)
    say(f"all {len(found)} notebooks ran in {clock(timings['total'])}; reports in {reports}")
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


def previous_timings(reports: str | Path, preset: str) -> dict[str, float]:
    """Per-notebook wall times of the last run of ``preset`` recorded in ``reports/summary.json``.

    Empty when there is no readable record of that preset (another preset's
    times would mislead: the smoke preset is dominated by kernel start-ups).
    """
    path = Path(reports) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict) or summary.get("preset") != preset:
        return {}
    times = summary.get("wall_time_s", {})
    return {name: float(t) for name, t in times.items()
            if name != "total" and isinstance(t, (int, float)) and t > 0}


def run_weights(names: list[str], previous: dict[str, float]) -> tuple[dict[str, float], bool]:
    """Expected relative cost of each notebook, and whether the weights are seconds.

    The previous run's seconds when it timed every notebook of this run;
    otherwise :data:`TYPICAL_SECONDS` by notebook number, as relative weights
    only (a notebook with an unknown number weighs as much as an average one).
    """
    if names and all(name in previous for name in names):
        return {name: previous[name] for name in names}, True
    average = sum(TYPICAL_SECONDS.values()) / len(TYPICAL_SECONDS)
    return {name: TYPICAL_SECONDS.get(name[:2], average) for name in names}, False


def time_left(done: dict[str, float], pending: list[str], weights: dict[str, float],
              absolute: bool) -> float | None:
    """Seconds the ``pending`` notebooks should take, or None where nothing supports a guess.

    After at least one notebook, the weights of the pending ones are scaled by
    how this run's finished notebooks compared with their weights (a slower
    machine or a busier one scales every estimate alike). Before the first, only
    weights in seconds (a previous run's) give an estimate.
    """
    if not pending:
        return 0.0
    ahead = sum(weights[name] for name in pending)
    finished = [name for name in done if name in weights]
    expected = sum(weights[name] for name in finished)
    if finished and expected > 0:
        return sum(done[name] for name in finished) * ahead / expected
    return ahead if absolute else None


def clock(seconds: float) -> str:
    """A duration as people read it: '45 s', '3 min 07 s', '1 h 02 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _status(elapsed: float, left: float | None) -> str:
    """'3 min 07 s elapsed, about 8 min 40 s left' (or no estimate yet, or nothing left)."""
    if left == 0:
        return f"{clock(elapsed)} elapsed"
    guess = ("no estimate yet" if left is None else "under 10 s left" if left < 10
             else f"about {clock(10 * round(left / 10))} left")
    return f"{clock(elapsed)} elapsed, {guess}"


def _failure(nb: Path, executed: Path, err) -> NotebookFailed:
    """One-line description of a papermill execution error in ``nb``."""
    first = next((line.strip() for line in (err.source or "").splitlines() if line.strip()), "")
    first = first if len(first) <= 80 else first[:77] + "..."
    error = f"{err.ename}: {err.evalue}".strip().rstrip(":") if err.evalue else err.ename
    error = error.splitlines()[0] if error else "error"
    return NotebookFailed(nb.name, _source_index(executed, err.cell_index), first, error, executed)


def _source_index(executed: Path, fallback: int) -> int:
    """Index of the failing cell in the source notebook, from the executed copy.

    The executed copy has papermill's own cells (injected parameters, error
    banners) among the notebook's; they are not counted.
    """
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return fallback
    own = [c for c in cells if not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(own):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])) or \
                cell.get("metadata", {}).get("papermill", {}).get("exception"):
            return index
    return fallback


def _print_now(line: str) -> None:
    """Print a progress line to stderr at once (the run's stdout stays for its result)."""
    print(line, file=sys.stderr, flush=True)


def _swap_in(staging: Path, reports: Path) -> None:
    """Replace ``reports`` by ``staging`` (the old copy is removed only afterwards)."""
    old = reports.with_name(reports.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if reports.exists():
        reports.rename(old)
    staging.rename(reports)
    shutil.rmtree(old, ignore_errors=True)
