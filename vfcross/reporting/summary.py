"""``reports/summary.json``: each notebook's part (the records below), merged by the runner with the environment."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.evaluation.protocols import GROUPED
from vfcross.reporting.environment import machine, package_versions, trained_in
from vfcross.reporting.targets import targets


def write_part(reports_dir: str | Path, name: str, data: dict) -> Path:
    """Save one notebook's contribution to ``summary.json`` (``summary_parts/<name>.json``)."""
    path = Path(reports_dir) / "summary_parts" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def merge_summary(reports_dir: Path, timings: dict[str, float], preset: str) -> dict:
    """The machine-readable record of a run: wall times, environment and every notebook's part."""
    summary: dict = {"preset": preset, "wall_time_s": timings, "machine": {},
                     "python": platform.python_version(), "packages": package_versions()}
    for part in sorted((reports_dir / "summary_parts").glob("*.json")):
        summary.update(json.loads(part.read_text()))
    summary["machine"] = machine(trained_in(summary))
    if preset == "default":
        summary["targets"] = targets(summary)
    return summary


def data_record(dataset, result, name: str) -> dict:
    """The ``data`` part of ``summary.json`` from a :class:`vfcross.data.Dataset` and a
    :class:`vfcross.preprocess.run.PreprocessResult`: what was read, what was usable, what was skipped and why."""
    report = result.report
    skipped = report[report["outcome"] == "skipped"]
    manifest = result.manifest
    return {
        "dataset": name,
        "identities": int(manifest["identity"].nunique()),
        "identities_per_split": {str(k): int(v) for k, v in
                                 manifest.drop_duplicates("identity")["split"].value_counts(dropna=False).items()},
        "samples": {m: int(n) for m, n in manifest["modality"].value_counts().items()},
        "skipped_at_ingestion": int(len(dataset.skipped)),
        "skipped_at_preprocessing": int(len(skipped)),
        "skip_reasons": {str(k): int(v) for k, v in skipped["reason"].value_counts().items()},
        "face_fallbacks": int(manifest["fallback"].sum()),
        "generation_s": round(dataset.seconds, 1),
        "preprocess_s": round(result.seconds, 1),
        "processed_this_run": {m: int(n) for m, n in
                               report[report["outcome"] == "processed"]["modality"].value_counts().items()},
    }


def training_record(history: list[dict], loop, select: str = "") -> dict:
    """What ``summary.json`` keeps of a training run (``loop`` its LoopConfig): length, time, seed, precision, and
    the first, last and selected epoch's numbers (the epoch ``select_best`` kept, else the last)."""
    from vfcross.training import best_epoch

    metric = select or loop.select_best
    chosen = (best_epoch(history, metric) if metric else None) or history[-1]["epoch"]
    numeric = lambda record: {k: round(v, 4) for k, v in record.items()  # noqa: E731
                              if isinstance(v, (int, float)) and k not in ("epoch", "processes")}
    return {"seed": loop.seed, "epochs": len(history), "train_time_s": round(sum(r["time_s"] for r in history), 1),
            "precision": ", ".join(sorted({r.get("precision", "unrecorded") for r in history})),
            "selected_epoch": chosen, "first": numeric(history[0]), "last": numeric(history[-1]),
            "selected": numeric(history[chosen - 1])}


def fusion_record(runs: dict, loop, chance: float, gate, comparison, selection: list[dict] | None = None) -> dict:
    """The ``fusion`` part of ``summary.json``: per seed (``runs``: seed -> (folder, history)) its convergence and
    kept-against-last check (``selection``), the gate's distribution, and the validation ``comparison`` with the
    backbone; ``chance`` is ln(training identities)."""
    chosen = {row["seed"]: row for row in selection or []}
    per_seed = {}
    for seed, (_, history) in runs.items():
        record = training_record(history, loop)
        per_seed[str(seed)] = {
            "epochs": record["epochs"], "selected_epoch": record["selected_epoch"],
            "ce_first": record["first"].get("ce"), "ce_final": record["last"].get("ce"),
            "ce_selected": record["selected"].get("ce"),
            "opl_first": record["first"].get("opl"), "opl_final": record["last"].get("opl"),
            "train_accuracy_final": record["last"].get("train_accuracy"),
            "val_auc_selected": record["selected"].get("val_auc"), "train_time_s": record["train_time_s"],
            "precision": record["precision"]}
        if int(seed) in chosen:
            per_seed[str(seed)]["selection"] = {k: v for k, v in chosen[int(seed)].items() if k != "seed"}
    k = np.ravel(gate)
    return {"seeds": [int(s) for s in runs], "chance_ce": round(chance, 4), "per_seed": per_seed,
            "gate": {"mean": round(float(k.mean()), 4), "sd": round(float(k.std()), 4),
                     **{f"q{q:02d}": round(float(np.percentile(k, q)), 4) for q in (5, 25, 50, 75, 95)},
                     "share_below_0.1": round(float((k < 0.1).mean()), 4),
                     "share_above_0.9": round(float((k > 0.9).mean()), 4)},
            "validation_vs_backbone": {"split": comparison.split, "identities": comparison.identities,
                                       "per_seed": comparison.rows, "note": comparison.note,
                                       "difference": comparison.decision and comparison.decision.difference,
                                       "ci": comparison.ci() and list(comparison.ci())}}


def _strip(result: dict) -> dict:
    """An evaluation result without its plotting data."""
    return {k: v for k, v in result.items() if k != "roc"}


def evaluation_record(ours: dict, backbone: dict, oracle: dict, oracle_notes: list[str], probes, provenance: dict,
                      contrasts: dict | None = None) -> dict:
    """Notebook 04's part of ``summary.json``: our numbers at top level, the backbone's, the oracle's, the probes,
    each learned AUC's share of the oracle's gain over chance, and the paired ``contrasts`` of the restricted lists."""
    lists = {"random": ours["verification"], **ours["grouped_auc"]}
    share = {name: round((entry["auc"] - 0.5) / (oracle[name]["auc"] - 0.5), 4) for name, entry in lists.items()
             if "auc" in entry and name in oracle and oracle[name]["auc"] > 0.5}
    return {**_strip(ours), "provenance": provenance, "backbone_only": _strip(backbone),
            "oracle": {name: _strip(entry) for name, entry in oracle.items()},
            "oracle_notes": oracle_notes, "share_of_oracle_gain": share,
            "probes": probes.to_dict(orient="records"), "list_contrasts": contrasts or {}}


def ablation_record(table6, single_vs_dual, verdicts: list[dict], seeds: dict[str, list[int]],
                    identities: int) -> dict:
    """The ablation part of ``summary.json``: Table 6 and single vs dual (measured rows), the verdicts, the seeds."""
    def measured(table) -> list[dict]:
        return json_records(table[table["source"] == "measured"].drop(columns="source"))

    return {"ablation": measured(table6), "single_vs_dual": measured(single_vs_dual), "claims": verdicts,
            "seeds": seeds, "claims_test_identities": identities}


def json_records(table) -> list[dict]:
    """A table's rows as JSON-ready dicts (NaN as None)."""
    return [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")]


def headline(result: dict, oracle: dict | None = None) -> str:
    """The run's headline numbers as a few lines of text (what notebook 04 prints and nbval checks)."""
    def value(entry: dict, key: str) -> str:
        return f"{100 * entry[key]:.1f}" if key in entry else "n/a"

    v = result.get("verification", {})
    lines = [f"verification AUC {value(v, 'auc')}%, EER {value(v, 'eer')}%"]
    grouped = result.get("grouped_auc", {})
    lines.append("AUC by negatives: " + ", ".join(f"{k} {value(grouped.get(k, {}), 'auc')}" for k in GROUPED))
    for key, label in (("vf", "V-F"), ("fv", "F-V")):
        entry = result.get("map", {}).get(key, {})
        lines.append(f"retrieval mAP {label} {value(entry, 'map')}% (chance {value(entry, 'chance')}%)")
    if oracle and "random" in oracle:
        lines.append(f"oracle AUC {100 * oracle['random']['auc']:.1f}%")
    return "\n".join(lines)
