"""``reports/README.md``: the template ``README.md.tmpl`` filled from ``summary.json``.

Jinja2 lets sections come and go with the run, so the prose stays in the template; this module formats numbers
and tables, and reads intervals only through the rules of :mod:`vfcross.evaluation.intervals`."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pandas as pd

from vfcross.evaluation import intervals
from vfcross.evaluation.protocols import GROUPED
from vfcross.reporting.claims import EQUIVALENCE_MARGIN
from vfcross.reporting.reported import REPORTED, paper, paper_matching_curve
from vfcross.reporting.tables import markdown

TEMPLATE = Path(__file__).with_name("README.md.tmpl")
#: How the kept epoch reads against the last, by the side of 0 of its interval of kept - last.
SELECTION = {"above": "the last epoch is worse beyond noise", "across": "the selection could not tell it from the "
             "last epoch", "below": "the last epoch is better", "same": "the kept epoch is the last one"}


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage for prose, or 'n/a'."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def ci(pair: list[float] | None) -> str:
    """An interval of fractions in %, e.g. ' [1.0, 2.0]' (' [no interval]' where None was recorded)."""
    return " [no interval]" if pair is None else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def signed_ci(pair: list[float]) -> str:
    """An interval of differences in points, e.g. ' [-1.2, +3.4]'."""
    return f" [{100 * pair[0]:+.1f}, {100 * pair[1]:+.1f}]"


def _measured(entry: dict, key: str, ci_key: str) -> str:
    """A measured percentage with its interval, or 'n/a' with the reason the protocol gave."""
    if entry.get(key) is None:
        return f"n/a ({entry['note']})" if entry.get("note") else "n/a"
    return f"{pct(entry[key])}{ci(entry.get(ci_key))}"


def _headline(s: dict) -> str:
    """The headline table: measured with identity-level intervals, the paper's, the oracle's and the share of it."""
    v, g, oracle, share = (s.get(k, {}) for k in ("verification", "grouped_auc", "oracle", "share_of_oracle_gain"))
    t2, t3, t5, curve = paper("table2"), paper("table3"), paper("table5"), paper_matching_curve()
    shared = {k: f"{pct(share[k], 0)}%" if k in share else "" for k in ("random", *GROUPED)}
    chance = oracle.get("random", {})
    rows = [("verification EER %", _measured(v, "eer", "eer_ci"), t2["EER"], pct(chance.get("eer")), ""),
            ("verification AUC %", _measured(v, "auc", "auc_ci"), t2["AUC"], pct(chance.get("auc")), shared["random"])]
    rows += [(f"AUC, {k} negatives %", _measured(g.get(k, {}), "auc", "ci"), t3[k], pct(oracle.get(k, {}).get("auc")),
              shared[k]) for k in GROUPED]
    rows += [(f"1:{n} matching V-F % (chance {100 / n:.0f})", _measured(s.get("matching_vf", {}).get(str(n), {}),
                                                                       "accuracy", "ci"), curve.get(n, ""), "", "")
             for n in (2, 10)]
    for key, label in (("vf", "V-F"), ("fv", "F-V")):
        e = s.get("map", {}).get(key, {})
        rows.append((f"retrieval mAP {label} % (chance {pct(e.get('chance'), 2)} for this gallery)",
                     f"{pct(e.get('map'), 2)}{ci(e.get('ci'))}", t5[label], "", ""))
    columns = ["metric", "measured", "paper (VoxCeleb1, reported)", "oracle ceiling (synthetic)",
               "share of the oracle's gain"]
    return markdown(pd.DataFrame(rows, columns=columns))


def _probes(probes: list[dict]) -> str:
    """Probe scores: rows (modality, representation), columns attributes, and a chance row."""
    table = pd.DataFrame(probes)
    rows = list(dict.fromkeys(zip(table["modality"], table["representation"])))
    wide = table.pivot(index=["modality", "representation"], columns="attribute", values="score")
    wide = wide.reindex(rows)[list(dict.fromkeys(table["attribute"]))].map("{:.2f}".format, na_action="ignore")
    chance = table[(table["metric"] == "accuracy") & (table["modality"] == "voice")].groupby("attribute")["chance"]
    wide.loc[("voice", "chance (majority / R² 0)"), :] = chance.first().map("{:.2f}".format)
    return markdown(wide.fillna("0").reset_index())


def _targets(targets: list[dict]) -> str:
    """Targets of the default preset: met or missed, and by how much."""
    met = {True: "yes", False: "no", None: "n/a"}
    return markdown(pd.DataFrame([{"target": t["target"], "measured": t["measured"], "met": met[t["met"]]
                                   + (f" ({t['miss']})" if t["met"] is False and t.get("miss") else "")}
                                  for t in targets]))


def reports_readme(summary: dict) -> str:
    """``reports/README.md`` from the run's ``summary.json``."""
    s, g = summary, summary.get("grouped_auc", {})
    probes, targets = s.get("probes", []), s.get("targets", [])
    fusion, backbone = s.get("fusion", {}), s.get("backbone_single", {})
    attributes = []
    for key, name in (("N", "nationality"), ("A", "age group")):
        if "auc" in g.get(key, {}):
            contrast = s.get("list_contrasts", {}).get(key) or {"note": "not computed"}
            made = "difference" in contrast
            attributes.append({**contrast, "key": key, "name": name, "auc": g[key]["auc"],
                               "reading": made and intervals.contrast_reading(contrast, EQUIVALENCE_MARGIN)})
    kept = {seed: r["selection"]["ci"] for seed, r in fusion.get("per_seed", {}).items()
            if r.get("selection", {}).get("ci")}
    selection = {seed: SELECTION["same" if ci == [0, 0] else intervals.side(ci)] for seed, ci in kept.items()}
    score = {(p["modality"], p["attribute"]): p["score"] for p in probes if p["representation"] == "backbone"}
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters.update(pct=pct, ci=ci, sci=signed_ci, points=lambda x: f"{100 * x:+.1f}")
    return env.from_string(TEMPLATE.read_text()).render(
        s=s, data=s.get("data", {}), fusion=fusion, backbone=backbone, ml=s.get("multilingual"),
        backbone_seeds=[int(k) for k in backbone.get("per_seed", {})] or backbone.get("seed", "n/a"),
        official=sum(e.get("protocol", "").startswith("official") for e in {e.get("protocol"): e for e in
                                                                             s.get("coverage", [])}.values()),
        test_identities=s.get("verification", {}).get("identities", s.get("settings", {}).get("identities", "n/a")),
        headline=_headline(s), margin=f"{100 * EQUIVALENCE_MARGIN:.0f}", attributes=attributes,
        gender=g.get("G", {}).get("auc") is not None and {**g["G"],
                                                          "reading": intervals.gender_reading(g["G"].get("ci"))},
        band=f"{100 * intervals.CHANCE_BAND:.0f}", smallest_g=min(row["G"] for row in REPORTED["table3"]),
        probes=probes and _probes(probes), selection=selection, targets=targets and _targets(targets),
        short=any(t["met"] is False and "AUC" in t["target"] for t in targets),
        losses=[(m, lost) for m in ("face", "voice") if (lost := intervals.lost_in_learning(probes, m))],
        shared=[(a, score[("voice", a)], score[("face", a)]) for a in ("nationality", "age")
                if ("voice", a) in score and ("face", a) in score])
