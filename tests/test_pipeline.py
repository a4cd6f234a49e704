"""The notebook runner: a run that reports its progress, and one line that points at a failure."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vfcross.workflows import pipeline
from vfcross.workflows.pipeline import (
    NotebookFailed,
    clock,
    notebooks,
    previous_timings,
    reproduce,
    run_weights,
    time_left,
)

REPO = Path(__file__).resolve().parents[1]
PARAMETERS = 'preset = "default"\nwork_dir = ""\nreports_dir = ""\ndata_root = ""\nsplits_file = ""'


def write_notebook(path, *sources):
    """A notebook with a markdown title, the runner's parameters cell and code cells ``sources``."""
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"), params, *map(new_code_cell, sources)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


# --- estimates ------------------------------------------------------------------------------------


def test_time_left_scales_the_pending_weights_by_this_runs_pace():
    weights = {"01_a": 1.0, "02_b": 3.0, "03_c": 6.0}
    # 01 took 20 s against a weight of 1: the rest (3 + 6) should take 9 x 20 s
    assert time_left({"01_a": 20.0}, ["02_b", "03_c"], weights, absolute=False) == pytest.approx(180.0)
    assert time_left({"01_a": 20.0, "02_b": 40.0}, ["03_c"], weights, absolute=False) == pytest.approx(90.0)
    # before the first notebook, only a previous run's seconds can say anything
    assert time_left({}, ["01_a", "02_b", "03_c"], weights, absolute=True) == pytest.approx(10.0)
    assert time_left({}, ["01_a", "02_b", "03_c"], weights, absolute=False) is None
    assert time_left({"01_a": 20.0}, [], weights, absolute=False) == 0.0


def test_weights_come_from_the_previous_run_of_the_same_preset(tmp_path):
    record = {"preset": "default", "wall_time_s": {"01_a": 100.0, "02_b": 300.0, "total": 400.0}}
    (tmp_path / "summary.json").write_text(json.dumps(record))
    assert previous_timings(tmp_path, "default") == {"01_a": 100.0, "02_b": 300.0}
    assert previous_timings(tmp_path, "smoke") == {}  # another preset's times would mislead
    assert previous_timings(tmp_path / "absent", "default") == {}
    (tmp_path / "summary.json").write_text("{not json")
    assert previous_timings(tmp_path, "default") == {}

    assert run_weights(["01_a", "02_b"], {"01_a": 100.0, "02_b": 300.0}) == ({"01_a": 100.0, "02_b": 300.0}, True)
    # a notebook the previous run did not time: fall back to the typical shares, by number
    weights, absolute = run_weights(["01_a", "02_b", "07_new"], {"01_a": 100.0, "02_b": 300.0})
    average = sum(pipeline.TYPICAL_SECONDS.values()) / len(pipeline.TYPICAL_SECONDS)
    assert not absolute
    assert weights == {"01_a": pipeline.TYPICAL_SECONDS["01"], "02_b": pipeline.TYPICAL_SECONDS["02"],
                       "07_new": pytest.approx(average)}


def test_without_a_previous_run_the_estimate_shares_are_those_of_the_committed_default_run():
    """The fallback weights must be what reports/summary.json says a default run took, not a hand-typed older run."""
    summary = json.loads((REPO / "reports" / "summary.json").read_text())
    assert summary["preset"] == "default"
    measured = {name: t for name, t in summary["wall_time_s"].items() if name != "total"}
    weights, absolute = run_weights(list(measured), {})
    assert not absolute  # another machine's seconds are only relative weights
    total_weight, total_measured = sum(weights.values()), sum(measured.values())
    assert {n: w / total_weight for n, w in weights.items()} == \
        pytest.approx({n: t / total_measured for n, t in measured.items()}, abs=0.03)


def test_clock_reads_like_a_person_would_say_it():
    assert [clock(s) for s in (0, 44.6, 60, 187, 3599, 3720)] == [
        "0 s", "45 s", "1 min 00 s", "3 min 07 s", "59 min 59 s", "1 h 02 min"]


def test_notebooks_are_the_numbered_ones_in_order(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "1_short.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    with pytest.raises(FileNotFoundError, match="no numbered notebooks"):
        notebooks(tmp_path / "empty")


# --- a run ----------------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """Run tiny notebooks in ``tmp_path/nbs`` into ``tmp_path/reports``; returns (run, lines)."""
    monkeypatch.setattr(pipeline, "reports_readme", lambda summary: "readme\n")  # tested on its own
    (tmp_path / "nbs").mkdir()
    lines: list[str] = []

    def run(preset="smoke"):
        lines.clear()
        return reproduce(preset, tmp_path / "reports", tmp_path / "work", notebook_dir=tmp_path / "nbs",
                         say=lines.append)

    return run, lines


def test_a_run_says_when_each_notebook_starts_and_ends(tmp_path, runner):
    run, lines = runner
    write_notebook(tmp_path / "nbs" / "01_first.ipynb", "print(preset)")
    write_notebook(tmp_path / "nbs" / "02_second.ipynb", "from pathlib import Path\n"
                   "Path(reports_dir, 'marker.txt').write_text(preset)")
    timings = run()
    assert set(timings) == {"01_first", "02_second", "total"}
    assert [line.split(":")[0] for line in lines[:4]] == ["[1/2] 01_first", "[1/2] 01_first",
                                                         "[2/2] 02_second", "[2/2] 02_second"]
    assert "started (0 s elapsed, no estimate yet)" in lines[0]  # no earlier smoke run to go by
    assert " done in " in lines[1] and " elapsed" in lines[1]
    assert "left" in lines[2]  # after the first notebook, the shares give an estimate
    assert lines[-1].startswith("all 2 notebooks ran in ")
    reports = tmp_path / "reports"
    assert (reports / "marker.txt").read_text() == "smoke"  # the parameters reached the notebook
    assert json.loads((reports / "summary.json").read_text())["wall_time_s"] == timings
    assert sorted(p.name for p in (reports / "notebooks").iterdir()) == ["01_first.ipynb", "02_second.ipynb"]

    run()  # a second run of the same preset estimates from the first one's times
    assert "no estimate" not in lines[0] and "left" in lines[0]


def test_a_failing_notebook_ends_the_run_with_one_line_pointing_at_its_traceback(tmp_path, runner):
    run, lines = runner
    write_notebook(tmp_path / "nbs" / "01_first.ipynb", "print('fine')")
    run()  # reports of a good run, which a failing one must leave alone
    write_notebook(tmp_path / "nbs" / "02_broken.ipynb", "x = 1",
                   "\n# the pairs of this split\nraise ValueError('need both positive and negative pairs')")
    with pytest.raises(NotebookFailed) as caught:
        run()
    failure = caught.value
    message = str(failure)
    assert "\n" not in message
    assert message.startswith("02_broken.ipynb failed in cell 3 ('# the pairs of this split'): ")
    assert "ValueError: need both positive and negative pairs" in message
    executed = tmp_path / "reports.new" / "notebooks" / "02_broken.ipynb"
    assert failure.executed == executed and message.endswith(f"the traceback is in {executed}")
    # the executed copy holds the traceback, in the cell the message names
    cells = [c for c in nbformat.read(executed, as_version=4).cells
             if not {"injected-parameters", "papermill-error-cell-tag"} & set(c.metadata.get("tags", []))]
    errors = [o for o in cells[3].outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "ValueError" and errors[0].traceback
    assert lines[-1].startswith("[2/2] 02_broken: started")  # no 'done' line for it
    assert sorted(p.name for p in (tmp_path / "reports" / "notebooks").iterdir()) == ["01_first.ipynb"]
