"""Tables 2-6 as CSV and Markdown: reported rows of the paper apart from the rows measured here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vfcross.evaluation.protocols import GROUPED
from vfcross.reporting.reported import REPORTED, REPORTED_DATASET, TABLE_TITLES

#: Columns saying where a measured row's numbers came from, written after its metrics and intervals.
PROTOCOL_COLUMNS = ("protocol", "rows scored", "note")


def pct(value: float) -> float:
    """A fraction as a percentage rounded for tables."""
    return round(100.0 * value, 2)


def pct_ci(ci: list[float] | tuple[float, float] | None) -> str:
    """A confidence interval of fractions as '[lo, hi]' in %; 'n/a' where none could be made (None)."""
    return "n/a" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def build_table(name: str, measured: list[dict], provenance: dict[str, str]) -> pd.DataFrame:
    """Reported rows of ``name``, then our ``measured`` rows with their ``provenance``, labelled by ``source``."""
    reported = [{"source": "reported", "dataset": REPORTED_DATASET, **row} for row in REPORTED.get(name, [])]
    labels = {key: str(value) for key, value in provenance.items()}  # e.g. seed 0, not 0.0 beside NA
    ours = [{"source": "measured", **labels, **row} for row in measured]
    table = pd.DataFrame(reported + ours)
    # source and method first, then the metrics in the order our rows list them, then the
    # confidence intervals, provenance last
    first = ["source", "method"]
    tail = [c for c in dict.fromkeys([*PROTOCOL_COLUMNS, "dataset", *provenance]) if c in table.columns]
    columns = list(dict.fromkeys([*(k for row in ours for k in row), *table.columns]))
    cis = [c for c in columns if c.endswith("CI")]
    return table[first + [c for c in columns if c not in first + cis + tail] + cis + tail]


def markdown(table: pd.DataFrame) -> str:
    """``table`` as Markdown through ``DataFrame.to_markdown``: cells as written, NA blank, ``|`` escaped."""
    cells = table.astype(object).where(table.notna(), "").astype(str)
    cells = cells.apply(lambda column: column.str.replace("|", "\\|").str.replace("\n", " "))
    return cells.to_markdown(index=False, disable_numparse=True, stralign=None) + "\n"


def describe_skips(skipped: pd.DataFrame, name_column: str, report: Path | str | None, limit: int = 5) -> str:
    """One terminal line: how many files were skipped, the first few with their reasons, where the full list is."""
    if skipped.empty:
        return "nothing skipped"
    rows = skipped[[name_column, "reason"]].head(limit).itertuples(index=False)
    shown = "; ".join(f"{name} ({why})" for name, why in rows)
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    where = f"; every skipped file with its reason: {report}" if report else ""
    return f"skipped {len(skipped)} file(s): {shown}{more}{where}"


def write_table(table: pd.DataFrame, name: str, reports_dir: str | Path) -> tuple[Path, Path]:
    """Write ``reports/tables/<name>.csv`` and ``.md``; the Markdown has a section per ``source`` when there is one."""
    folder = Path(reports_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv, index=False)
    lines = [f"# {TABLE_TITLES.get(name, name)}", ""]
    if "source" not in table.columns:
        lines.append(markdown(table))
    for source, part in (table.groupby("source", sort=False) if "source" in table.columns else ()):
        part = part.dropna(axis=1, how="all").drop(columns="source")
        lines += [f"## {source}", "", markdown(part)]
    md.write_text("\n".join(lines))
    return csv, md


# --- Tables 2-5 from evaluation results ------------------------------------------------------------
ORACLE_ROW = "oracle: true attributes (synthetic ceiling)"
#: Directions as the paper's tables name them, by the suffix of their result keys.
DIRECTIONS = {"vf": "V-F", "fv": "F-V"}
_OFFICIAL = "official: "


def _grouped_text(values: Mapping[str, str]) -> str:
    """Values of named entries as text: the value alone when all agree, else ``"a, b: value; c: other"``."""
    by_value = {value: [n for n, v in values.items() if v == value] for value in dict.fromkeys(values.values())}
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{', '.join(names)}: {value}" for value, names in by_value.items())


def _where(entries: Mapping[str, Mapping]) -> dict:
    """The protocol columns of a row made from named result ``entries``: where their rows came from, how many
    were scored, and their notes (per entry where they differ)."""
    entries = {name: e for name, e in entries.items() if "protocol" in e}
    if not entries:
        return {}
    labels = list(dict.fromkeys(e["protocol"] for e in entries.values()))
    if len(labels) > 1 and all(label.startswith(_OFFICIAL) for label in labels):
        labels = [_OFFICIAL + ", ".join(label[len(_OFFICIAL):] for label in labels)]
    row = {"protocol": "; ".join(labels),
           "rows scored": _grouped_text({name: f"{e['coverage']['scored']} of {e['coverage']['rows']}"
                                         for name, e in entries.items()})}
    notes = {name: e["note"] for name, e in entries.items() if "note" in e}
    if notes:
        row["note"] = _grouped_text(notes) if len(notes) == len(entries) else \
            "; ".join(f"{name}: {note}" for name, note in notes.items())
    return row


def _verification_row(method: str, verification: dict) -> dict:
    """Table 2 columns of one system: EER and AUC with their intervals, its protocol (or its note)."""
    if "auc" not in verification:
        return {"method": method, **_where({"random": verification})}
    return {"method": method, "EER": pct(verification["eer"]), "AUC": pct(verification["auc"]),
            "EER 95% CI": pct_ci(verification.get("eer_ci")), "AUC 95% CI": pct_ci(verification.get("auc_ci")),
            **_where({"random": verification})}


def _grouped_row(method: str, verification: dict, grouped: dict) -> dict:
    """Table 3 columns of one system: AUC per negative restriction with intervals (a note's list left empty)."""
    entries = {"random": verification, **{key: grouped[key] for key in GROUPED if key in grouped}}
    scored = [key for key, entry in entries.items() if "auc" in entry]
    row = {"method": method, **{key: pct(entries[key]["auc"]) for key in scored}}
    row |= {f"{key} 95% CI": pct_ci(entries[key].get("auc_ci" if key == "random" else "ci")) for key in scored}
    return row | _where(entries)


def _matching_row(method: str, direction: str, by_n: dict, variant: str | None) -> dict:
    """One Table 4 row: accuracy for every N with intervals at N = 2 and the largest N (or the note)."""
    row = {"method": method, "direction": direction, **({"list": variant} if variant else {})}
    if "note" in by_n:
        return row | _where({direction: by_n})
    largest = max(by_n, key=int)
    row |= {f"N={n}": pct(v["accuracy"]) for n, v in by_n.items()}
    row |= {"N=2 95% CI": pct_ci(by_n["2"].get("ci")), f"N={largest} 95% CI": pct_ci(by_n[largest].get("ci"))}
    return row | _where({direction: by_n["2"]})


def _matching_rows(method: str, result: dict) -> list[dict]:
    """Table 4 rows of one system, both directions; with the official lists one row per list (U, G, N, GN)."""
    grouped = result.get("grouped_matching", {})
    rows = []
    for key, label in DIRECTIONS.items():
        by_n = result.get(f"matching_{key}", {})
        if by_n:
            rows.append(_matching_row(method, label, by_n, "U" if grouped else None))
        rows += [_matching_row(method, label, entry, name) for name, entry in grouped.get(key, {}).items()]
    return rows


def _retrieval_row(method: str, result: dict) -> dict:
    """Table 5 columns of one system: mAP both ways with intervals and the chance level of this gallery."""
    entries = {label: result["map"][key] for key, label in DIRECTIONS.items()}
    row = {"method": method}
    row |= {label: pct(e["map"]) for label, e in entries.items() if "map" in e}
    row |= {f"{label} chance": pct(e["chance"]) for label, e in entries.items() if "map" in e}
    row |= {f"{label} 95% CI": pct_ci(e.get("ci")) for label, e in entries.items() if "map" in e}
    return row | _where(entries)


def coverage_table(result: dict, provenance: dict[str, str]) -> pd.DataFrame:
    """One row per protocol of an evaluation result: its rows, how many were scored and left out, and why."""
    labels = {key: str(value) for key, value in provenance.items()}
    columns = ["source", "protocol", "results", "rows", "scored", "missing", "missing because", "note", *labels]
    rows = [{"source": "measured", "protocol": c["protocol"], "results": ", ".join(c["results"]), "rows": c["rows"],
             "scored": c["scored"], "missing": c["missing"],
             "missing because": "; ".join(f"{why}: {n}" for why, n in c.get("missing_by_reason", {}).items()),
             "note": c.get("note", ""), **labels} for c in result.get("coverage", [])]
    return pd.DataFrame(rows, columns=columns)


def evaluation_tables(results: dict[str, dict], oracle: dict[str, dict] | None,
                      provenance: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Tables 2-5 and the protocols' coverage from ``{system: evaluate(...) result}``; every measured row names
    its protocol and how many rows were scored; ``oracle`` (synthetic data) adds a ceiling row to Tables 2 and 3."""
    table2 = [_verification_row(name, r["verification"]) for name, r in results.items()]
    table3 = [_grouped_row(name, r["verification"], r["grouped_auc"]) for name, r in results.items()]
    if oracle and "random" in oracle:
        table2.append(_verification_row(ORACLE_ROW, oracle["random"]))
        table3.append(_grouped_row(ORACLE_ROW, oracle["random"],
                                   {k: {"auc": v["auc"], "ci": v.get("auc_ci")} for k, v in oracle.items()}))
    table4 = [row for name, r in results.items() for row in _matching_rows(name, r)]
    table5 = [_retrieval_row(name, r) for name, r in results.items()]
    tables = {name: build_table(name, rows, provenance)
              for name, rows in (("table2", table2), ("table3", table3), ("table4", table4), ("table5", table5))}
    return tables | {"coverage": coverage_table(next(iter(results.values()), {}), provenance)}


def grouped_bars(results: dict[str, dict], oracle: dict[str, dict] | None, paper_grouped: dict,
                 paper_random: float) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple]]]:
    """Bars (AUC %, per list) and their intervals for :func:`~vfcross.reporting.figures.grouped_auc_figure`:
    our systems, the oracle, the paper; a list a system could not be scored on has no bar."""
    lists = ("random", *GROUPED)
    bars, intervals = {}, {}
    for name, r in results.items():
        entries = {"random": {"auc": r["verification"].get("auc"), "ci": r["verification"].get("auc_ci")},
                   **r["grouped_auc"]}
        bars[name] = {k: 100 * entries[k]["auc"] for k in lists if entries.get(k, {}).get("auc") is not None}
        intervals[name] = {k: tuple(100 * x for x in entries[k]["ci"]) for k in bars[name]
                           if entries[k].get("ci") is not None}
    if oracle:
        bars[ORACLE_ROW] = {k: 100 * v["auc"] for k, v in oracle.items()}
        intervals[ORACLE_ROW] = {k: tuple(100 * x for x in v["auc_ci"]) for k, v in oracle.items()
                                 if v.get("auc_ci") is not None}
    bars[f"paper (reported, {REPORTED_DATASET})"] = {"random": paper_random, **{k: paper_grouped[k] for k in GROUPED}}
    bars = {k: v for k, v in bars.items() if v}
    return bars, {k: v for k, v in intervals.items() if k in bars and v}


# --- tables of systems trained with several seeds (Table 6, single vs dual) ------------------------
def _seed_columns(summary: dict) -> dict:
    """AUC and EER of one system (its :func:`vfcross.evaluation.evaluate.seed_summaries` entry): mean over
    training seeds, seed spread, the interval of the mean (identities resampled, seed spread counted), the seeds."""
    row = {}
    for metric in ("auc", "eer"):
        entry, name = summary[metric], metric.upper()
        row[name] = pct(entry["mean"])
        row[f"{name} seed SD"] = pct(entry["sd"])
        row[f"{name} seed range"] = f"{pct(entry['min']):.1f}-{pct(entry['max']):.1f}"
        row[f"{name} 95% CI"] = pct_ci(entry["ci"])
    row["seeds"] = " ".join(str(s) for s in summary["auc"]["per_seed"])
    return row


def seed_table(summaries: dict, systems: list[str], name: str, provenance: dict[str, str]) -> pd.DataFrame:
    """``systems`` trained with several seeds: AUC and EER as the mean over seeds, their SD and range, and the
    interval of the mean (identities resampled, seed spread counted); reported rows of ``name`` first."""
    rows = [{"method": system, **_seed_columns(summaries[system])} for system in systems]
    return build_table(name, rows, provenance)


def single_vs_dual_table(summaries: dict, cost: pd.DataFrame, provenance: dict[str, str]) -> pd.DataFrame:
    """Single vs dual stream: parameters, step time, peak memory (``cost``, by architecture) and verification."""
    from vfcross.reporting.claims import DUAL_BACKBONE, SINGLE_BACKBONE

    rows = []
    for system, arch in ((SINGLE_BACKBONE, "single"), (DUAL_BACKBONE, "dual")):
        c = cost.loc[arch]
        rows.append({"method": system, "params (M)": round(float(c["params"]) / 1e6, 2),
                     "step time (s)": round(float(c["step_time_s"]), 3),
                     "peak memory (MB)": round(float(c["peak_memory_mb"]), 1),
                     **_seed_columns(summaries[system])})
    return build_table("single_vs_dual", rows, provenance)
