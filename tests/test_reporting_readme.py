"""The run record: merging notebook parts and stating the paper's claims honestly."""

import json
from importlib import metadata

from vfcross.reporting.readme import claims, reports_readme
from vfcross.reporting.summary import merge_summary, write_part


def _arch(auc, auc_ci, eer, eer_ci, params):
    return {"auc": auc, "auc_ci": auc_ci, "eer": eer, "eer_ci": eer_ci, "params": params}


def test_single_vs_dual_claim_looks_at_both_metrics_and_their_intervals():
    same = {"single_vs_dual": {"single": _arch(.70, [.69, .71], .35, [.34, .36], 23e6),
                               "dual": _arch(.705, [.695, .715], .345, [.335, .355], 47e6)}}
    assert "holds: AUC" in claims(same)[0]
    eer_apart = {"single_vs_dual": {"single": _arch(.70, [.69, .71], .35, [.34, .36], 23e6),
                                    "dual": _arch(.71, [.70, .72], .33, [.32, .335], 47e6)}}
    assert "does NOT fully hold" in claims(eer_apart)[0] and "dual stream better on EER" in claims(eer_apart)[0]


def test_ablation_claim_refuses_an_order_inside_the_intervals():
    names = ["full model (fusion + CE + OPL)", "+ fusion, CE only", "single stream + FOP loss, no fusion",
             "+ fusion, OPL (cosine) only"]
    close = {"ablation": {n: {"auc": .70 + i / 1000, "auc_ci": [.69, .72]} for i, n in enumerate(names)}}
    assert "none is distinguishable" in claims(close)[0]
    ordered = {"ablation": {n: {"auc": .9 - i / 10, "auc_ci": [.89 - i / 10, .91 - i / 10]}
                            for i, n in enumerate(names)}}
    assert "order by AUC: reproduced" in claims(ordered)[0]


def test_summary_merges_parts_and_readme_shows_them(tmp_path):
    write_part(tmp_path, "04", {"verification": {"eer": .3, "eer_ci": [.29, .31], "auc": .75, "auc_ci": [.74, .76]}})
    summary = merge_summary(tmp_path, {"01": 1.0, "total": 1.0}, "smoke")
    assert summary["verification"]["auc"] == .75 and summary["wall_time_s"]["total"] == 1.0
    # the record names the versions that ran, whichever they are
    assert summary["packages"]["torch"] == metadata.version("torch")
    json.dumps(summary)  # the record is plain JSON
    text = reports_readme(summary)
    assert "75.0 [74.0, 76.0]" in text and "oracle" in text
