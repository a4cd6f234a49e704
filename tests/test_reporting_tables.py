"""Tables 2-6: the paper's reported rows kept apart from the rows measured here, nothing made up."""

import pandas as pd
import pytest

from vfcross.reporting.reported import REPORTED, TABLE_TITLES
from vfcross.reporting.tables import build_table, pct, pct_ci, write_table

PROVENANCE = {"dataset": "synthetic n=6", "preset": "smoke", "seed": 0}
OURS = {"method": "ours: single stream + fusion + FOP", "EER": 35.0, "EER 95% CI": "[34.0, 35.9]",
        "AUC": 71.21, "AUC 95% CI": "[70.2, 72.2]"}
ORACLE = {"method": "oracle | ceiling", "EER": 19.36, "AUC": 89.06}  # no interval for the oracle


@pytest.fixture
def table2():
    return build_table("table2", [OURS, ORACLE], PROVENANCE)


def test_reported_rows_come_first_labelled_and_unchanged(table2):
    n = len(REPORTED["table2"])
    assert list(table2["source"]) == ["reported"] * n + ["measured"] * 2
    reported = table2[table2["source"] == "reported"]
    for (_, row), paper in zip(reported.iterrows(), REPORTED["table2"]):
        # a value the paper does not print stays empty (NaN in the frame, None in the source)
        assert {key: (None if pd.isna(row[key]) else row[key]) for key in paper} == paper
        assert row["dataset"] == "VoxCeleb1"
        # what the paper does not state stays empty: no preset, seed or interval is made up for it
        assert row[["preset", "seed", "EER 95% CI", "AUC 95% CI"]].isna().all()


def test_measured_rows_carry_their_provenance_and_columns_are_ordered(table2):
    assert list(table2.columns) == ["source", "method", "EER", "AUC", "EER 95% CI", "AUC 95% CI",
                                    "dataset", "preset", "seed"]
    ours, oracle = (table2[table2["source"] == "measured"].iloc[i] for i in (0, 1))
    assert (ours["EER"], ours["AUC"], ours["AUC 95% CI"]) == (35.0, 71.21, "[70.2, 72.2]")
    assert (ours["dataset"], ours["preset"], ours["seed"]) == ("synthetic n=6", "smoke", "0")  # '0', not 0.0
    assert pd.isna(oracle["EER 95% CI"]) and pd.isna(oracle["AUC 95% CI"])


def test_a_metric_only_the_paper_reports_is_kept_and_left_empty_for_us():
    table = build_table("table2", [{"method": "ours", "EER": 35.0}], PROVENANCE)
    assert "AUC" in table.columns
    reported = table[table["source"] == "reported"]
    assert reported["AUC"].notna().sum() == sum(row["AUC"] is not None for row in REPORTED["table2"])
    assert table.loc[table["source"] == "measured", "AUC"].isna().all()


def test_a_table_the_paper_does_not_have_holds_only_measured_rows():
    table = build_table("no_such_table", [{"method": "single", "params": 23.6}], {"seed": 1})
    assert list(table.columns) == ["source", "method", "params", "seed"]
    assert table.to_dict("records") == [{"source": "measured", "method": "single", "params": 23.6, "seed": "1"}]


def test_write_table_keeps_the_two_sources_apart_and_leaves_na_blank(table2, tmp_path):
    csv, md = write_table(table2, "table2", tmp_path)
    assert (csv, md) == (tmp_path / "tables" / "table2.csv", tmp_path / "tables" / "table2.md")

    back = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(back.columns) == list(table2.columns)
    assert list(back["source"]) == list(table2["source"])
    assert (back.loc[back["source"] == "reported", ["preset", "seed", "AUC 95% CI"]] == "").all().all()
    assert "nan" not in csv.read_text().lower()

    text = md.read_text()
    assert text.startswith(f"# {TABLE_TITLES['table2']}\n")
    reported_part, measured_part = text.split("## reported", 1)[1].split("## measured")
    # each part shows only the columns it fills: the paper's rows have no preset, seed or interval
    assert reported_part.count("| method | EER | AUC | dataset |") == 1 and "preset" not in reported_part
    assert "| method | EER | AUC | EER 95% CI | AUC 95% CI | dataset | preset | seed |" in measured_part
    assert "| oracle \\| ceiling | 19.36 | 89.06 |  |  | synthetic n=6 | smoke | 0 |" in measured_part
    assert "nan" not in text.lower()


def test_write_table_titles_an_unknown_table_by_its_name(tmp_path):
    _, md = write_table(build_table("extra", [{"method": "x", "AUC": 1.0}], {}), "extra", tmp_path)
    assert md.read_text().startswith("# extra\n")


def test_percent_helpers():
    assert pct(0.703788) == 70.38 and pct(1 / 3) == 33.33
    assert pct_ci([0.693392, 0.713433]) == "[69.3, 71.3]"


def test_reported_rows_name_the_configured_variants_and_keep_missing_values_missing():
    from vfcross.config import TABLE6_VARIANTS
    from vfcross.reporting.reported import PAPER, paper, paper_matching_curve

    # a renamed variant would silently lose its reported row and verdict: the names are one source
    assert [row["method"] for row in REPORTED["table6"]] == list(TABLE6_VARIANTS)
    assert paper("table6", list(TABLE6_VARIANTS)[-1]) == {"method": list(TABLE6_VARIANTS)[-1], "EER": 25.6, "AUC": 82.5}
    assert paper("table3") == {"method": PAPER, "G": 68.8, "N": 70.8, "A": 76.9, "GNA": 58.2}
    assert paper_matching_curve() == {2: 83.0, 4: 64.0, 6: 51.0, 8: 42.0, 10: 37.0}
    multi_view = next(r for r in REPORTED["table2"] if r["method"] == "Multi-view Approach")
    assert multi_view["AUC"] is None  # the paper prints no AUC for it: never filled in
    table = build_table("table2", [], {})
    assert table.loc[table.method == "Multi-view Approach", "AUC"].isna().all()
