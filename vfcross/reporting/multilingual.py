"""The heard/unheard table and figure of the FAME protocol (notebook 06), from
:func:`vfcross.evaluation.fame.fame_evaluation`'s result: the reported FAME baseline first, then our rows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vfcross.evaluation.fame import HEARD, UNHEARD
from vfcross.reporting.figures import REFERENCE, WIDTH, _bars, _check_interval, _colours, _figure, _legend
from vfcross.reporting.tables import build_table, pct, pct_ci

#: The name of the table (reports/tables/multilingual.csv|md).
TABLE = "multilingual"
GAP = "unheard - heard"


def fame_rows(result: dict, method: str) -> list[dict]:
    """Our rows for one system's result: heard, unheard and their gap per training language, then the overall score."""
    def row(train: str, test: str, condition: str, e: dict, pairs="", identities="") -> dict:
        return {"method": method, "trained on": train, "tested on": test, "condition": condition,
                "EER": pct(e["eer"]), "AUC": pct(e["auc"]), "EER 95% CI": pct_ci(e["eer_ci"]),
                "AUC 95% CI": pct_ci(e["auc_ci"]), "pairs": pairs, "test identities": identities}

    rows = []
    for train in result["languages"]:
        rows += [row(train, e["test"], e["condition"], e, e["pairs"], e["identities"])
                 for e in result["results"] if e["train"] == train]
        if result["gaps"].get(train):
            rows.append(row(train, "", GAP, result["gaps"][train]))
    overall = result["overall"]
    if overall is not None:
        rows.append({"method": method, "trained on": "both", "tested on": "both",
                     "condition": "overall (mean of the 4 EERs)", "EER": pct(overall["eer"]),
                     "EER 95% CI": pct_ci(overall["ci"]), "pairs": "", "test identities": ""})
    return rows


def fame_table(results: dict[str, dict], provenance: dict[str, str]) -> pd.DataFrame:
    """The ``multilingual`` table: the reported FAME baseline rows, then each system's rows (``{method: result}``)."""
    measured = [row for method, result in results.items() for row in fame_rows(result, method)]
    return build_table(TABLE, measured, provenance)


def fame_figure(result: dict, title: str = "FAME protocol") -> plt.Figure:
    """EER and AUC (%) on the heard and the unheard language per training language, with identity-level
    intervals, chance and the overall score (mean of the four EERs)."""
    entries = result["results"]
    if not entries:
        raise ValueError("fame_figure: the result has no entries")
    trains = list(dict.fromkeys(e["train"] for e in entries))
    hues = [HEARD, UNHEARD]
    fig, axes = _figure(1, 2, (WIDTH, 3.0))
    for ax, metric in zip(axes[0], ("eer", "auc")):
        data = pd.DataFrame([{"trained on": e["train"], "test": e["condition"], "value": 100 * e[metric],
                              "low": 100 * e[f"{metric}_ci"][0] if e[f"{metric}_ci"] else np.nan,
                              "high": 100 * e[f"{metric}_ci"][1] if e[f"{metric}_ci"] else np.nan} for e in entries])
        for e in data.dropna().itertuples():
            _check_interval(e.low, e.high, f"fame_figure: trained on {e[1]}, tested {e.test}")
        _bars(ax, data, "trained on", "value", "test", trains, hues, _colours(hues))
        ax.axhline(50, **REFERENCE, label="chance (50%)")
        if metric == "eer" and result["overall"] is not None:
            ax.axhline(100 * result["overall"]["eer"], color="0.15", lw=1.0, ls="--",
                       label=f"overall score {100 * result['overall']['eer']:.1f}% (mean of the 4 EERs)")
        values = data[["value", "low", "high"]].to_numpy()
        ylim = ((0, max(60, 10 * np.ceil(np.nanmax(values) / 10))) if metric == "eer"
                else (min(40, 10 * np.floor(np.nanmin(values) / 10)), 100))
        ax.set(ylim=ylim, ylabel=f"{metric.upper()} (%)", xlabel="trained on",
               title=f"{metric.upper()}: heard vs unheard language")
    fig.suptitle(title)
    _legend(fig, axes[0, 0])
    return fig


def fame_record(source: str, languages: tuple[str, ...] | list[str], results: dict[str, dict], training: dict,
                note: str = "", notes: tuple[str, ...] | list[str] = ()) -> dict:
    """Notebook 06's part of ``summary.json``: the data, the languages, each system's result, or why it was
    skipped (``note``)."""
    record: dict = {"source": source, "languages": list(languages), "skipped": note or None,
                    "notes": [*notes, *(n for r in results.values() for n in r["notes"])], "training": training,
                    "systems": {method: {key: r[key] for key in ("results", "gaps", "overall", "settings")}
                                for method, r in results.items()}}
    return {"multilingual": record}
