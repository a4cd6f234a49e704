"""The notebook runner: a run that reports its progress, and one line that points at a failure."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vfcross.workflows import pipeline
from vfcross.workflows.pipeline import NotebookFailed, notebook_weights, notebooks, reproduce

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


def test_weights_come_from_the_previous_run_of_the_same_preset(tmp_path):
    record = {"preset": "default", "wall_time_s": {"01_a": 100.0, "02_b": 300.0, "total": 400.0}}
    (tmp_path / "summary.json").write_text(json.dumps(record))
    assert notebook_weights(["01_a", "02_b"], tmp_path, "default") == [100.0, 300.0]
    typical = [pipeline.TYPICAL_SECONDS["01"], pipeline.TYPICAL_SECONDS["02"]]
    assert notebook_weights(["01_a", "02_b"], tmp_path, "smoke") == typical  # another preset's times would mislead
    assert notebook_weights(["01_a", "02_b"], tmp_path / "absent", "default") == typical
    (tmp_path / "summary.json").write_text("{not json")
    assert notebook_weights(["01_a", "02_b"], tmp_path, "default") == typical
    # a notebook the previous run did not time: the typical shares, by number (an unknown number weighs the average)
    (tmp_path / "summary.json").write_text(json.dumps(record))
    average = sum(pipeline.TYPICAL_SECONDS.values()) / len(pipeline.TYPICAL_SECONDS)
    assert notebook_weights(["01_a", "02_b", "07_new"], tmp_path, "default") == [*typical, pytest.approx(average)]


def test_without_a_previous_run_the_weights_are_the_shares_of_the_committed_default_run(tmp_path):
    """The fallback weights must be what reports/summary.json says a default run took, not a hand-typed older run."""
    summary = json.loads((REPO / "reports" / "summary.json").read_text())
    assert summary["preset"] == "default"
    measured = {name: t for name, t in summary["wall_time_s"].items() if name != "total"}
    weights = dict(zip(measured, notebook_weights(list(measured), tmp_path, "default")))
    total_weight, total_measured = sum(weights.values()), sum(measured.values())
    assert {n: w / total_weight for n, w in weights.items()} == \
        pytest.approx({n: t / total_measured for n, t in measured.items()}, abs=0.03)


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


def test_a_run_says_when_each_notebook_starts_and_ends(tmp_path, runner, capsys):
    run, lines = runner
    write_notebook(tmp_path / "nbs" / "01_first.ipynb", "print(preset)")
    write_notebook(tmp_path / "nbs" / "02_second.ipynb", "from pathlib import Path\n"
                   "Path(reports_dir, 'marker.txt').write_text(preset)")
    timings = run()
    assert set(timings) == {"01_first", "02_second", "total"}
    assert [line.split(":")[0] for line in lines[:4]] == ["[1/2] 01_first", "[1/2] 01_first",
                                                         "[2/2] 02_second", "[2/2] 02_second"]
    assert lines[0].endswith("started") and " done in 00:0" in lines[1]
    bar = capsys.readouterr().err.split("\r")  # tqdm's bar: no estimate before the first notebook is done, then one
    assert any(b.startswith("[1/2] 01_first:   0% of the run [00:00 elapsed, ? left]") for b in bar)
    assert any(b.startswith("[2/2] 02_second: ") and "elapsed, 00:" in b for b in bar)
    assert lines[-1].startswith("all 2 notebooks ran in ")
    reports = tmp_path / "reports"
    assert (reports / "marker.txt").read_text() == "smoke"  # the parameters reached the notebook
    assert json.loads((reports / "summary.json").read_text())["wall_time_s"] == timings
    assert sorted(p.name for p in (reports / "notebooks").iterdir()) == ["01_first.ipynb", "02_second.ipynb"]


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
