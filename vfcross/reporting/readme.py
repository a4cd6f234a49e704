"""``reports/README.md``: what ran, the headline numbers beside the paper's, which claims hold, how to read them.

Everything here is computed from ``summary.json`` (the notebooks' parts,
merged by :func:`vfcross.reporting.summary.merge_summary`); the paper's
numbers come from :mod:`vfcross.reporting.reported`, the claims and their
verdicts from notebook 05 (:mod:`vfcross.reporting.claims`).
"""

from __future__ import annotations

from vfcross.evaluation.protocols import GROUPED
from vfcross.reporting.claims import EQUIVALENCE_MARGIN
from vfcross.reporting.reported import REPORTED, paper, paper_matching_curve

#: Half-width of the band around 50% inside which a G-negative AUC interval reads "gender only" (evidence of
#: absence): under half the smallest G-negative gain a method of Table 3 reports.
CHANCE_BAND = 0.05
#: Reading for every verdict.
VERDICT_WORD = {"holds": "**holds**", "contradicted": "**contradicted**", "inconclusive": "**inconclusive**"}


def _pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage for prose, or 'n/a'."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def _ci(pair: list[float] | None) -> str:
    """A confidence interval of fractions in %, or '' (or ' [no interval]' where None was recorded)."""
    return " [no interval]" if pair is None else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def _measured(entry: dict, key: str, ci_key: str) -> str:
    """A measured percentage with its interval, or 'n/a' with the reason the protocol gave."""
    if entry.get(key) is None:
        return f"n/a ({entry['note']})" if entry.get("note") else "n/a"
    return f"{_pct(entry[key])}{_ci(entry.get(ci_key))}"


def _inside(pair: list[float] | None, centre: float, band: float) -> bool:
    """Whether an interval lies strictly inside centre ± band."""
    return pair is not None and centre - band < pair[0] and pair[1] < centre + band


def _signed_ci(pair: list[float]) -> str:
    """An interval of differences in points, e.g. ' [-1.2, +3.4]'."""
    return f" [{100 * pair[0]:+.1f}, {100 * pair[1]:+.1f}]"


def _gender_line(gender: dict) -> str:
    """The G-negative sentence: "gender only" only when the interval lies inside 50 ± :data:`CHANCE_BAND`."""
    ci, lead = gender.get("ci"), f"- With same-gender negatives (G), {_pct(gender.get('auc'))}%{_ci(gender.get('ci'))}"
    band = f"50 ± {100 * CHANCE_BAND:.0f}"
    if _inside(ci, 0.5, CHANCE_BAND):
        return (f"{lead}, the interval lies inside {band} (under half the smallest G gain of Table 3, "
                f"{min(row['G'] for row in REPORTED['table3'])}%): **the model separates gender only**.")
    if ci is not None and ci[0] > 0.5:
        return f"{lead}, the model stays above chance: it reads more than gender."
    if ci is not None and ci[1] < 0.5:
        return f"{lead}, the model falls below chance."
    return (f"{lead}: **no evidence beyond gender at this sample size**; the interval reaches 50% but also beyond "
            f"{band}, so it cannot say gender is all.")


def _attribute_line(key: str, attribute: str, entry: dict, contrast: dict | None) -> str:
    """An N or A sentence from the paired interval of its AUC minus the random list's (computed in evaluation)."""
    lead = (f"- {key} negatives share the {attribute} but still differ in gender half the time "
            f"({_pct(entry['auc'])}%); against the random list, paired on the same test identities,")
    if not contrast or "difference" not in contrast:
        return f"{lead} no interval could be made ({(contrast or {}).get('note', 'not computed')}): no reading."
    d, ci, ci90, margin = 100 * contrast["difference"], contrast["ci"], contrast["ci_90"], EQUIVALENCE_MARGIN
    if _inside(ci90, 0.0, margin):
        return (f"{lead} {d:+.1f} points, 90% CI{_signed_ci(ci90)} inside ±{100 * margin:.0f}: close to the random "
                f"list, i.e. the {attribute} adds little to the model's decisions.")
    if ci[1] < 0:
        return (f"{lead} {d:+.1f} points, 95% CI{_signed_ci(ci)}: below the random list, i.e. the model uses the "
                f"{attribute}.")
    if ci[0] > 0:
        return f"{lead} {d:+.1f} points, 95% CI{_signed_ci(ci)}: above the random list."
    return (f"{lead} {d:+.1f} points, 95% CI{_signed_ci(ci)}: no evidence either way at this sample size (neither "
            f"inside ±{100 * margin:.0f} points nor below 0).")


def _what_ran(summary: dict) -> list[str]:
    """Dataset, preset, seeds, environment and wall times."""
    data = summary.get("data", {})
    times = summary.get("wall_time_s", {})
    seeds = summary.get("seeds", {})
    fusion = summary.get("fusion", {})
    backbone = summary.get("backbone_single", {})
    lines = [
        "## What ran",
        "",
        f"- dataset: {data.get('dataset', 'n/a')}; {data.get('identities', 'n/a')} usable identities "
        f"(per split {data.get('identities_per_split', {})}), samples {data.get('samples', {})}; skipped at "
        f"ingestion {data.get('skipped_at_ingestion', 0)}, at preprocessing {data.get('skipped_at_preprocessing', 0)}",
        f"- preset: `{summary.get('preset')}`; evaluation seed {summary.get('provenance', {}).get('eval seed', 'n/a')}; "
        f"backbone training seeds {[int(k) for k in backbone.get('per_seed', {})] or backbone.get('seed', 'n/a')} "
        f"(seed {backbone.get('seed', 'n/a')} evaluated in notebook 04); fusion training seeds "
        f"{fusion.get('seeds', 'n/a')}, fusion seed s trained on backbone seed s",
    ]
    if seeds:
        lines.append("- seeds of every compared system: "
                     + "; ".join(f"{name}: {list(values)}" for name, values in seeds.items()))
    lines += [
        f"- Python {summary.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in summary.get("packages", {}).items()),
        "- wall time per notebook (s): " + ", ".join(f"{k} {t}" for k, t in times.items())
        + _machine_line(summary.get("machine")),
        "- determinism: on one machine a seed gives bit-identical data, models and numbers; across CPUs the "
        "numbers move a little (floating-point order and bfloat16 kernels differ), which is what the "
        "identity-level intervals and the seed spread must cover — compare runs through them, not digit by digit.",
        "",
    ]
    return lines


def _machine_line(machine: dict | None) -> str:
    """Where the times were measured: device (its name), cores and the precision training ran in."""
    if not machine:
        return ""
    name = machine.get("device_name") and f" ({machine['device_name']}" + (
        f", compute capability {machine['compute_capability']})" if machine.get("compute_capability") else ")")
    return (f"; on {machine['device']}{name or ''} with {machine['cpu_cores']} cores, training arithmetic "
            f"{machine['amp_precision']} (times compare only within one precision path)")


def _headline(summary: dict) -> list[str]:
    """The headline table: measured with identity-level intervals, the paper's, the oracle's and the share of it."""
    v = summary.get("verification", {})
    g = summary.get("grouped_auc", {})
    oracle = summary.get("oracle", {})
    share = summary.get("share_of_oracle_gain", {})
    m = summary.get("map", {})
    vf = summary.get("matching_vf", {})
    t2, t3, t5 = paper("table2"), paper("table3"), paper("table5")
    curve = paper_matching_curve()
    protocols = sorted({entry.get("protocol", "") for entry in summary.get("coverage", []) if entry.get("protocol")})
    official = [p for p in protocols if p.startswith("official")]
    source = (f"official lists ({len(official)} files; how many of each list's rows could be scored is in "
              "`tables/coverage.md`, the rows left out in `tables/missing_rows.csv.gz`)" if official else
              "lists generated on the test identities from the evaluation seed")
    lines = [
        "## Headline numbers (test identities, never seen in training)",
        "",
        f"Protocols: {source}.",
        "",
        f"Intervals are 95% identity-level bootstrap intervals over the {v.get('identities', summary.get('settings', {}).get('identities', 'n/a'))} "
        "test identities (they say what another set of test identities would give). *Share* is the model's "
        "AUC gain over chance as a share of the oracle's: (AUC - 50) / (oracle AUC - 50).",
        "",
        "| metric | measured | paper (VoxCeleb1, reported) | oracle ceiling (synthetic) | share of the oracle's gain |",
        "|---|---|---|---|---|",
        f"| verification EER % | {_measured(v, 'eer', 'eer_ci')} | {t2['EER']} | "
        f"{_pct(oracle.get('random', {}).get('eer'))} | |",
        f"| verification AUC % | {_measured(v, 'auc', 'auc_ci')} | {t2['AUC']} | "
        f"{_pct(oracle.get('random', {}).get('auc'))} | {_pct(share['random'], 0) + '%' if 'random' in share else ''} |",
    ]
    for key in GROUPED:
        ours = g.get(key, {})
        lines.append(f"| AUC, {key} negatives % | {_measured(ours, 'auc', 'ci')} | {t3[key]} | {_pct(oracle.get(key, {}).get('auc'))} | "
                     f"{_pct(share.get(key), 0) + '%' if key in share else ''} |")
    for n in ("2", "10"):
        acc = vf.get(n, {})
        lines.append(f"| 1:{n} matching V-F % (chance {100 / int(n):.0f}) | {_measured(acc, 'accuracy', 'ci')} | "
                     f"{curve.get(int(n), '')} | | |")
    for key, label in (("vf", "V-F"), ("fv", "F-V")):
        entry = m.get(key, {})
        lines.append(f"| retrieval mAP {label} % (chance {_pct(entry.get('chance'), 2)} for this gallery) | "
                     f"{_pct(entry.get('map'), 2)}{_ci(entry.get('ci'))} | {t5[label]} | | |")
    lines += ["", "Full tables with every row (reported rows apart from measured ones) are in `tables/`, figures in "
              "`figures/`, executed notebooks in `notebooks/`, and the machine-readable record in `summary.json`.", ""]
    return lines


def _reading(summary: dict) -> list[str]:
    """Plain statements the numbers support about what the model has learned."""
    g = summary.get("grouped_auc", {})
    lines = ["## What the model has learned", ""]
    if "auc" in g.get("G", {}):
        lines.append(_gender_line(g["G"]))
    for key, attribute in (("N", "nationality"), ("A", "age group")):
        if "auc" in g.get(key, {}):
            lines.append(_attribute_line(key, attribute, g[key], summary.get("list_contrasts", {}).get(key)))
    probes = summary.get("probes", [])
    if probes:
        lines += ["", "Attribute probes (linear probes fitted on the validation identities and scored on the test "
                  "identities; accuracy, or R² for traits; the input-level row is what simple acoustic statistics "
                  "or 16×16 pixels give):", "",
                  *_probe_lines(probes)]
    lines.append("")
    return lines


def _probe_lines(probes: list[dict]) -> list[str]:
    """A compact probe table: rows (modality, representation), columns attributes."""
    attributes = list(dict.fromkeys(p["attribute"] for p in probes))
    header = "| modality | representation | " + " | ".join(attributes) + " |"
    lines = [header, "|" + "---|" * (len(attributes) + 2)]
    keys = list(dict.fromkeys((p["modality"], p["representation"]) for p in probes))
    chance = {(p["modality"], p["attribute"]): p["chance"] for p in probes if p["metric"] == "accuracy"}
    for modality, representation in keys:
        cells = []
        for attribute in attributes:
            found = [p for p in probes if (p["modality"], p["representation"], p["attribute"]) ==
                     (modality, representation, attribute)]
            cells.append(f"{found[0]['score']:.2f}" if found else "")
        lines.append(f"| {modality} | {representation} | " + " | ".join(cells) + " |")
    chance_row = [f"{chance[(m, a)]:.2f}" if (m, a) in chance else "0" for m in ("voice",) for a in attributes]
    lines.append("| voice | chance (majority / R² 0) | " + " | ".join(chance_row) + " |")
    return lines


def _selection(check: dict | None, epochs) -> str:
    """How sure the kept epoch was: its validation AUC against the last epoch's, paired, with intervals."""
    if not check or not check.get("ci"):
        return ""
    lo, hi = check["ci"]
    reading = ("the kept epoch is the last one" if lo == hi == 0 else "the last epoch is worse beyond noise"
               if lo > 0 else "the selection could not tell it from the last epoch" if hi > 0 else
               "the last epoch is better")
    return (f"; how sure the selection was: validation AUC {_pct(check['kept_auc'])}% "
            f"{_ci(check['kept_ci'])[1:]} at the kept epoch against {_pct(check['last_auc'])}%{_ci(check['last_ci'])} at "
            f"epoch {epochs}, kept − last {100 * check['difference']:+.1f}{_signed_ci(check['ci'])} points: {reading} "
            "(optimistic: the kept epoch maximised this AUC)")


def _fusion(summary: dict) -> list[str]:
    """Did the fusion stage train: cross-entropy against chance, OPL, the gate, and the kept epoch."""
    fusion = summary.get("fusion", {})
    if not fusion:
        return []
    chance = fusion.get("chance_ce")
    lines = ["## The fusion stage", ""]
    for seed, r in fusion.get("per_seed", {}).items():
        lines.append(f"- seed {seed}: cross-entropy {r.get('ce_first')} → {r.get('ce_final')} over {r.get('epochs')} "
                     f"epochs (chance ln(identities) = {chance}); OPL {r.get('opl_first')} → {r.get('opl_final')}; "
                     f"kept epoch {r.get('selected_epoch')} (validation AUC {r.get('val_auc_selected')}, "
                     f"cross-entropy there {r.get('ce_selected')})" + _selection(r.get("selection"), r.get("epochs")))
    gate = fusion.get("gate", {})
    if gate:
        lines.append(f"- gate k (weight of the face) on validation pairs: mean {gate.get('mean')}, SD {gate.get('sd')}, "
                     f"median {gate.get('q50')}, 5-95% {gate.get('q05')}-{gate.get('q95')}; "
                     f"{_pct(gate.get('share_below_0.1'), 0)}% of entries below 0.1 and "
                     f"{_pct(gate.get('share_above_0.9'), 0)}% above 0.9")
    check = fusion.get("validation_vs_backbone", {})
    for r in check.get("per_seed", []):
        lines.append(f"- validation identities ({check.get('identities')}), seed {r['seed']}: fusion AUC "
                     f"{_pct(r['a'])}% vs backbone {_pct(r['b'])}%, paired difference {100 * r['difference']:+.1f} points")
    if check.get("per_seed"):
        lines.append(f"- mean over {len(check['per_seed'])} seeds: {100 * check['difference']:+.1f} points, 95% CI"
                     + (_signed_ci(check["ci"]) if check.get("ci") else " n/a")
                     + " (identities resampled and the seed spread counted)")
    if check.get("note"):
        lines.append(f"- {check['note']}")
    lines.append("")
    return lines


def _claims(summary: dict) -> list[str]:
    """Every tested claim of the paper with its verdict and the evidence."""
    claims = summary.get("claims", [])
    lines = ["## Which of the paper's claims hold on this run", ""]
    if not claims:
        return lines + ["- no claim was tested on this run (notebook 05 did not run)", ""]
    lines.append(f"Each claim compares two systems on the same {summary.get('claims_test_identities', 'n/a')} test "
                 "identities' verification pairs (random negatives). Its difference is the mean over training seeds "
                 "of the paired AUC difference; its one interval resamples the test identities and adds the seed "
                 "spread (t interval, Welch-Satterthwaite degrees of freedom; with one seed the spread is not "
                 "measured, and the verdict says so). Superiority (95% interval): holds above 0 (saying so where it "
                 "stays below δ, the smallest gain that matters); contradicted below 0, or when it holds 0 and stays "
                 "below δ (\"no gain of ≥ δ\"); else inconclusive. Equivalence "
                 "(90% interval, two one-sided tests): holds inside ±margin, contradicted wholly outside. Each verdict "
                 "gives the smallest difference its design could detect (80% power) and, where that exceeds δ, how "
                 "many test identities would reach it.")
    lines.append("")
    for c in claims:
        lines.append(f"- {c['statement']} ({c['source']}): {VERDICT_WORD.get(c['verdict'], c['verdict'])} — "
                     f"{c['explanation']}")
    lines.append("")
    return lines


def _multilingual(summary: dict) -> list[str]:
    """Notebook 06: heard and unheard language (the FAME protocol), per system."""
    record = summary.get("multilingual")
    if not record:
        return []
    lines = ["## Across languages (FAME protocol, beyond the paper)", ""]
    if record.get("skipped"):
        return lines + [f"- skipped: {record['skipped']}", ""]
    lines.append(f"Data: {record.get('source')}; languages {record.get('languages')}. EER % with identity-level "
                 "95% intervals; the gap is the unheard EER minus the heard one (`tables/multilingual.md`).")
    lines.append("")
    for system, r in record.get("systems", {}).items():
        cells = "; ".join(f"trained on {x['train']}, tested on {x['test']} ({x['condition']}): "
                          f"{_pct(x.get('eer'))}{_ci(x.get('eer_ci'))}" for x in r.get("results", []))
        lines.append(f"- {system}: {cells}")
        for train, gap in r.get("gaps", {}).items():
            if gap.get("eer") is not None:
                lines.append(f"  - gap, trained on {train}: {100 * gap['eer']:+.1f} points"
                             + ("" if gap.get("eer_ci") is None else
                                f" [{100 * gap['eer_ci'][0]:+.1f}, {100 * gap['eer_ci'][1]:+.1f}]"))
        overall = r.get("overall")
        if overall:
            lines.append(f"  - overall score (mean of the four EERs): {_pct(overall.get('eer'))}{_ci(overall.get('ci'))}")
    lines.append("")
    return lines


def _targets(summary: dict) -> list[str]:
    """The learning targets of the default preset: met or missed, and by how much."""
    targets = summary.get("targets", [])
    if not targets:
        return []
    lines = ["## Targets of the default preset", "", "| target | measured | met |", "|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no' if t['met'] is False else 'n/a'}"
                     f"{'' if t['met'] or not t.get('miss') else ' (' + t['miss'] + ')'} |")
    lines.append("")
    if any(t["met"] is False and "AUC" in t["target"] for t in targets):
        lines += ["Why the learned numbers fall short, from the probes (scored on the test identities):", "",
                  *[f"- {reason}" for reason in _limits(summary.get("probes", []))],
                  "- what was tried to lift them, and what each attempt measured, is in the repository's "
                  "`docs/experiments.md`.", ""]
    return lines


def _limits(probes: list[dict]) -> list[str]:
    """Where the probes say the learning loses what the input offers (input-level probe well above the backbone's)."""
    score = {(p["modality"], p["representation"], p["attribute"]): p["score"] for p in probes}
    reasons = []
    for modality in ("face", "voice"):
        lost = [(attribute, value, score[(m, "backbone", attribute)])
                for (m, representation, attribute), value in score.items()
                if m == modality and representation == "input features" and (m, "backbone", attribute) in score
                and value - score[(m, "backbone", attribute)] > 0.15]
        if lost:
            reasons.append(f"the {modality} embedding has lost what its input carries about "
                           + ", ".join(f"{a} ({b:.2f} from the input, {e:.2f} from the embedding)" for a, b, e in lost))
    shared = [a for a in ("nationality", "age") if ("voice", "backbone", a) in score and ("face", "backbone", a) in score]
    if shared:
        reasons.append("what both embeddings do carry beyond gender is " + ", ".join(
            f"{a} (voice {score[('voice', 'backbone', a)]:.2f}, face {score[('face', 'backbone', a)]:.2f})"
            for a in shared) + "; the same-gender (G) negatives can only be told apart by these")
    return reasons or ["the probes show no attribute the embeddings lose against the input features"]


def reports_readme(summary: dict) -> str:
    """``reports/README.md`` from the run's ``summary.json``."""
    lines = [
        "# vfcross reports",
        "",
        "Generated by `make reproduce`; do not edit by hand. Everything here was measured by running the code, "
        "except rows marked **reported**, which are the paper's own numbers on VoxCeleb1.",
        "",
        *_what_ran(summary),
        *_headline(summary),
        *_reading(summary),
        *_fusion(summary),
        *_claims(summary),
        *_multilingual(summary),
        *_targets(summary),
        "## How to read these numbers",
        "",
        "- **Chance** is 50% AUC / 50% EER for verification and 1/N for 1:N matching; for retrieval it is the mAP a "
        "random ranking of this very gallery reaches (printed beside the measured mAP; on VoxCeleb1's 20k galleries "
        "it is about 0.4-0.5%, far below this small test set's).",
        "- **The synthetic data is not VoxCeleb1.** Its voices (espeak-ng speech) and faces (rendered) share only the "
        "attributes the generator put into both — gender, accent/nationality, age group and three traits, each with a "
        "set coupling — so no model can exceed the **oracle ceiling**: the Bayes score of each list from every "
        "identity's true attributes. A learned number is read between chance and that ceiling, not against the "
        "paper's VoxCeleb1 numbers. The default CPU preset also trains for minutes, not days, at a smaller input size "
        "than the paper's 256×256 (every departure is listed in the repository's README).",
        "- **Run the same on VoxCeleb1:** `vfcross reproduce --preset paper --root /path/to/voxceleb1 "
        "--splits /path/to/identity_splits.txt` (a GPU is advised).",
        "",
    ]
    return "\n".join(lines)
