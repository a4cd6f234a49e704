"""nbval that can fail: the sanitizers of ``make nbval`` and a demonstration that a changed number fails.

``make nbval`` re-runs the smoke run's executed notebooks and compares the
outputs of the cells marked for checking (tag ``nbval-check-output`` or a
``# NBVAL_CHECK_OUTPUT`` comment) with the stored ones, after
``tests/nbval_sanitize.cfg`` has masked what legitimately varies.
"""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

pytest.importorskip("nbval")
from nbval.plugin import get_sanitize_patterns  # noqa: E402  (after the skip)

CFG = Path(__file__).resolve().parent / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """``text`` as nbval sees it: every pattern of the config file applied in order."""
    for regex, replace in get_sanitize_patterns(CFG.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


# --- what the sanitizers mask and what they keep ----------------------------------------------------


@pytest.mark.parametrize("volatile, masked", [
    ("epoch 3/20:  44%|████▍     | 4/9 [00:02<00:02,  1.68it/s]", "PROGRESS-BAR"),
    ("dataset ready in 34.9 s: 300 identities", "dataset ready in DURATION: 300 identities"),
    ("reproduce took 1 min 38 s", "reproduce took DURATION DURATION"),
    ("dual stream trained in 193 s this session", "dual stream trained in DURATION this session"),
    ("started 2026-05-14 11:49:25.123", "started DATETIME"),
    ("at 11:49:25", "at TIME"),
    ("PosixPath('/tmp/fresh/p/reports.new/figures/fig6_matching.png')", "PosixPath('PATH')"),
    ("wrote /work/smoke/reports/tables/table2.md", "wrote PATH"),
    ("<Figure at 0x7f3a2c1d90>", "<Figure at 0xADDRESS>"),
    ("config fingerprint 3f9a0c1be4d2", "config fingerprint HASH"),
    ("widget 5f0c3c1e-8a2b-4c1d-9e3f-0a1b2c3d4e5f", "widget UUID"),
    ("peak memory 842.5 MB, budget 1.5GiB, 65536 bytes", "peak memory SIZE, budget SIZE, SIZE"),
    ("faces at 60.31img/s", "faces at RATE"),
])
def test_sanitizers_mask_what_varies_between_runs(volatile, masked):
    assert sanitize(volatile) == masked


@pytest.mark.parametrize("result", [
    "AUC 70.38 [69.34, 71.34] %, EER 35.86 [34.99, 36.85] %",
    "Table 4 V-F, N = 2/4/6/8/10: 82/61/49/43/36",
    "300 identities, 4500 samples, 0 files skipped; epoch 20/20, seed 0",
    "single  23593432  0.703788  [0.693392, 0.713433]",
    "mAP V-F 5.47, F-V 6.04 (chance 1/250)",
    "modality  face  voice\nsplit\ntest       540    360",
    "decade faced accede",  # hex letters without digits are words
    "https://arxiv.org/abs/1234.5678",
])
def test_sanitizers_keep_the_results(result):
    assert sanitize(result) == result


# --- a changed number makes nbval fail ----------------------------------------------------------------


def notebook(path: Path, cells: list[tuple[str, str, bool]]) -> Path:
    """A notebook of code cells ``(source, stored stdout, tagged for checking)``, as if executed."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for count, (source, stored, checked) in enumerate(cells, 1):
        cell = new_code_cell(source, execution_count=count,
                             outputs=[new_output("stream", name="stdout", text=stored)])
        if checked:
            cell.metadata["tags"] = ["nbval-check-output"]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def run_nbval(folder: Path, *notebooks: Path, sanitize_with: Path | None = CFG) -> dict[str, str]:
    """Run nbval as ``make nbval`` does; the outcome of each cell, by test id ("<notebook>::Cell <n>")."""
    (folder / "pytest.ini").write_text("[pytest]\n")  # keep the repository's settings out
    report = folder / "report.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
            "--junitxml", str(report), "--rootdir", str(folder), "-c", str(folder / "pytest.ini")]
    if sanitize_with:
        args += ["--nbval-sanitize-with", str(sanitize_with)]
    done = subprocess.run(args + [str(nb) for nb in notebooks], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[f"{case.get('classname').removesuffix('.ipynb')}::{case.get('name')}"] = \
            "failed" if failed else "passed"
    assert (done.returncode != 0) == ("failed" in outcomes.values()), done.stdout + done.stderr
    return outcomes


def test_nbval_fails_when_a_checked_number_changes_and_only_then(tmp_path):
    stable = [
        # a checked cell that prints what it printed before
        ('print("AUC 70.4 %")', "AUC 70.4 %\n", True),
        # checked too, and only the time and the absolute path differ: masked, so it passes
        ('import os, time\nprint(f"wrote {os.getcwd()}/fig6.png in {1 + time.perf_counter() % 5:.1f} s")',
         "wrote /home/someone/else/fig6.png in 93.2 s\n", True),
        # unchecked: nbval --nbval-lax only runs it
        ('print("EER", 35.9)', "EER 31.0\n", False),
    ]
    changed = [stable[0], ('print("AUC 71.2 %")', "AUC 70.4 %\n", True), stable[2]]
    good = notebook(tmp_path / "good.ipynb", stable)
    bad = notebook(tmp_path / "bad.ipynb", changed)

    outcomes = run_nbval(tmp_path, good, bad)
    assert outcomes == {"good::Cell 0": "passed", "good::Cell 1": "passed", "good::Cell 2": "passed",
                        "bad::Cell 0": "passed", "bad::Cell 1": "failed", "bad::Cell 2": "passed"}

    # without the sanitizers the time and path of the stable notebook fail it: they are what makes it pass
    assert run_nbval(tmp_path, good, sanitize_with=None)["good::Cell 1"] == "failed"
