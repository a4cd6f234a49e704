"""The run record (summary.json) and the generated reports README: numbers, verdicts, targets, honest wording."""

import json
from importlib import metadata

from vfcross.config import LoopConfig
from vfcross.reporting.readme import reports_readme
from vfcross.reporting.summary import fusion_record, merge_summary, training_record, write_part
from vfcross.reporting.targets import targets
from vfcross.training import device
from vfcross.workflows.compare import SplitComparison


def _summary(tmp_path, g_ci=(0.48, 0.56), preset="default", total=550.0, claims=(), n_contrast=None):
    write_part(tmp_path, "04", {
        "verification": {"eer": .3, "eer_ci": [.29, .31], "auc": .75, "auc_ci": [.74, .76]},
        "grouped_auc": {"G": {"auc": .52, "ci": list(g_ci)}, "N": {"auc": .745, "ci": [.73, .76]},
                        "A": {"note": "no identity shares an age group"}},
        "map": {"vf": {"map": .08, "ci": [.07, .09], "chance": .028}, "fv": {"map": .07, "ci": [.06, .08],
                                                                             "chance": .031}},
        "oracle": {"random": {"auc": .89, "eer": .19}, "G": {"auc": .765}},
        "share_of_oracle_gain": {"random": (.75 - .5) / (.89 - .5)},
        "list_contrasts": {"N": n_contrast or {"difference": -.005, "ci": [-.025, .015], "ci_90": [-.022, .012]}}})
    write_part(tmp_path, "03", {"fusion": {"seeds": [0, 1], "chance_ce": 5.375,
                                           "validation_vs_backbone": {"split": "val", "identities": 24, "per_seed": [
                                               {"seed": 0, "difference": .03, "a": .8, "b": .77},
                                               {"seed": 1, "difference": .02, "a": .79, "b": .77}],
                                               "difference": .025, "ci": [-.004, .054]}}})
    write_part(tmp_path, "05", {"claims": list(claims), "claims_test_identities": 60})
    return merge_summary(tmp_path, {"01": 1.0, "total": total}, preset)


def test_summary_merges_parts_and_records_the_environment(tmp_path):
    summary = _summary(tmp_path)
    assert summary["verification"]["auc"] == .75 and summary["wall_time_s"]["total"] == 550.0
    assert summary["packages"]["torch"] == metadata.version("torch")  # the versions that ran, whichever
    assert summary["machine"]["device"] == device().type and summary["machine"]["cpu_cores"] >= 1
    assert summary["machine"]["amp_precision"] == "unrecorded"  # no training run's record among these parts
    json.dumps(summary)  # plain JSON


def test_the_record_names_the_precision_the_runs_trained_in_not_the_machines(tmp_path):
    """An amp=false run on a CPU with native bfloat16 trained in float32, and the record must say so."""
    loop = LoopConfig(epochs=2)
    history = [{"epoch": e, "time_s": 1.0, "loss": 1.0, "precision": "float32"} for e in (1, 2)]
    write_part(tmp_path, "02", {"backbone_single": training_record(history, loop)})
    runs = {seed: ("run", [{**r, "ce": 1.0, "opl": 0.5, "precision": p} for r in history])
            for seed, p in ((0, "float32"), (1, "float32"))}
    gate = SplitComparison("val", 0, None, {}, "no validation identities")
    write_part(tmp_path, "03", {"fusion": fusion_record(runs, loop, 5.0, [0.5], gate)})
    summary = merge_summary(tmp_path, {"total": 2000.0}, "default")
    assert summary["machine"]["trained_in"] == {"backbone": "float32", "fusion": "float32"}
    assert summary["machine"]["amp_precision"] == "float32"
    assert "training arithmetic float32" in reports_readme(summary)
    assert next(t for t in summary["targets"] if t["target"].startswith("whole run"))["met"] is None  # not judged
    # a fusion stage trained in another precision than the backbone: each stage is named
    first, second = runs[1][1]
    runs[1] = ("run", [{k: v for k, v in first.items() if k != "precision"}, {**second, "precision": "bfloat16"}])
    write_part(tmp_path, "03", {"fusion": fusion_record(runs, loop, 5.0, [0.5], gate)})
    mixed = merge_summary(tmp_path, {"total": 2000.0}, "default")["machine"]
    assert mixed["trained_in"] == {"backbone": "float32", "fusion": "bfloat16, float32, unrecorded"}
    assert mixed["amp_precision"] == "backbone float32; fusion bfloat16, float32, unrecorded"


def test_readme_shows_identity_level_intervals_chance_map_and_the_oracle_share(tmp_path):
    text = reports_readme(_summary(tmp_path))
    assert "75.0 [74.0, 76.0]" in text and "identity-level" in text
    assert "chance 2.80 for this gallery" in text and "8.00 [7.0, 9.0]" in text
    assert "| 89.0 | 64% |" in text  # oracle AUC and (75 - 50) / (89 - 50)
    assert "n/a (no identity shares an age group)" in text  # a list that could not be drawn says why


def test_readme_says_gender_only_only_when_the_g_interval_lies_inside_the_chance_band(tmp_path):
    inside = reports_readme(_summary(tmp_path / "a", g_ci=(0.47, 0.54)))
    assert "separates gender only" in inside and "50 ± 5" in inside
    wide = reports_readme(_summary(tmp_path / "b", g_ci=(0.48, 0.56)))  # contains 50% but reaches past 55%
    assert "separates gender only" not in wide and "no evidence beyond gender at this sample size" in wide
    above = reports_readme(_summary(tmp_path / "c", g_ci=(0.51, 0.56)))
    assert "separates gender only" not in above and "reads more than gender" in above


def test_readme_says_adds_little_only_from_a_paired_interval_inside_the_margin(tmp_path):
    # N is 0.5 points below random (74.5 vs 75.0), but its paired 90% interval reaches -2.2: no reading either way
    wide = reports_readme(_summary(tmp_path / "a"))
    assert "nationality adds little" not in wide and "no evidence either way at this sample size" in wide
    close = reports_readme(_summary(tmp_path / "b", n_contrast={"difference": -.005, "ci": [-.021, .011],
                                                                "ci_90": [-.018, .008]}))
    assert "close to the random list, i.e. the nationality adds little" in close and "[-1.8, +0.8]" in close
    below = reports_readme(_summary(tmp_path / "c", n_contrast={"difference": -.04, "ci": [-.06, -.02],
                                                                "ci_90": [-.057, -.023]}))
    assert "below the random list, i.e. the model uses the nationality" in below


def test_targets_say_met_or_by_how_much_missed(tmp_path):
    wide = {"statement": "x", "source": "Table 6", "verdict": "inconclusive", "explanation": "", "ci": [0.0, 0.04]}
    summary = _summary(tmp_path, total=950.0, claims=[wide, {**wide, "ci": [0.01, 0.03]}])
    found = {t["target"]: t for t in targets({**summary, "machine": {"amp_precision": "bfloat16"}})}
    run = next(t for name, t in found.items() if name.startswith("whole run"))
    assert run["met"] is False and run["miss"] == "50 s over"
    float32 = next(t for t in targets({**summary, "machine": {"amp_precision": "float32"}})
                   if t["target"].startswith("whole run"))
    assert float32["met"] is None and "not judged here" in float32["measured"]  # the budget is for native bfloat16
    width = next(t for name, t in found.items() if name.startswith("every claim's decision interval"))
    assert width["met"] is False and width["measured"] == "widest 2.00 points" and width["miss"].startswith("1 of 2")
    auc = next(t for name, t in found.items() if name.startswith("test verification AUC"))
    assert auc["met"] is False and auc["miss"] == "5.0 points short"
    fusion = next(t for name, t in found.items() if name.startswith("fusion's validation AUC"))
    assert fusion["met"] is False and "over 2 seeds [-0.4, +5.4]" in fusion["measured"]  # the mean's interval reaches 0
    assert "targets" not in _summary(tmp_path / "smoke", preset="smoke")  # targets belong to the default preset


def test_readme_lists_every_claim_with_its_verdict(tmp_path):
    claim = {"statement": "the full model beats X", "source": "Table 6", "verdict": "contradicted",
             "explanation": "AUC(full) - AUC(X) = -3.0 points ..."}
    text = reports_readme(_summary(tmp_path, claims=[claim]))
    assert "the full model beats X (Table 6): **contradicted**" in text and "60 test identities" in text
