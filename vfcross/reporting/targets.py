"""The default preset's targets: each with what was measured, whether it was met, and by how much it was missed."""

from __future__ import annotations

from vfcross.evaluation.intervals import side
from vfcross.reporting.verdicts import GOAL_HALF_WIDTH

#: The learning targets, and the run's time on 2 cores with native bfloat16 (a float32 CPU takes longer: not judged).
TARGET_SECONDS, TARGET_AUC, TARGET_G_AUC = 900.0, 0.80, 0.65


def _target(target: str, value: float | None, met: bool | None, measured: str, miss: str) -> dict:
    """One target's record; ``miss`` is kept only where it was missed."""
    return {"target": target, "value": value, "measured": measured, "met": met, "miss": miss if met is False else ""}


def targets(summary: dict) -> list[dict]:
    """The default preset's targets, each with what was measured, whether it was met and by how much it was missed."""
    total = summary.get("wall_time_s", {}).get("total")
    precision = summary.get("machine", {}).get("amp_precision", "n/a")
    native = precision == "bfloat16"
    out = [_target(f"whole run <= {TARGET_SECONDS:.0f} s on 2 cores with native bfloat16", total,
                   None if total is None or not native else total <= TARGET_SECONDS,
                   "n/a" if total is None else f"{total:.0f} s ({precision} path"
                   + (")" if native else ": the target is for native bfloat16, not judged here)"),
                   "" if total is None else f"{total - TARGET_SECONDS:.0f} s over")]
    halves = [(c["ci"][1] - c["ci"][0]) / 2 for c in summary.get("claims", []) if c.get("ci")]
    if halves:
        wide = sum(h > GOAL_HALF_WIDTH for h in halves)
        out.append(_target(f"every claim's decision interval half-width <= {100 * GOAL_HALF_WIDTH:.1f} AUC points",
                           max(halves), wide == 0, f"widest {100 * max(halves):.2f} points",
                           f"{wide} of {len(halves)} claims wider (their verdicts say how many seeds would do)"))
    for name, value, goal in (("test verification AUC", summary.get("verification", {}).get("auc"), TARGET_AUC),
                              ("G-negative AUC", summary.get("grouped_auc", {}).get("G", {}).get("auc"), TARGET_G_AUC)):
        out.append(_target(f"{name} >= {100 * goal:.0f}%", value, None if value is None else value >= goal,
                           "n/a" if value is None else f"{100 * value:.1f}%",
                           "" if value is None else f"{100 * (goal - value):.1f} points short"))
    check = summary.get("fusion", {}).get("validation_vs_backbone", {})
    target = "fusion's validation AUC above the backbone's: the interval of the mean over seeds above 0"
    if check.get("per_seed"):
        ci = check.get("ci")
        out.append(_target(target, check.get("difference"), side(ci) == "above",
                           f"{100 * check['difference']:+.1f} points over {len(check['per_seed'])} seeds"
                           + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else " [no interval]"),
                           "the interval reaches 0 or below"))
    else:
        out.append(_target(target, None, None, "n/a (no validation identities)", ""))
    return out
