"""Does a claim's decision interval keep its level, how does it narrow, and is its stated power real? (issue 18)

Simulates the model behind :func:`vfcross.evaluation.intervals.seed_decision`:
on a test set of m identities, training seed s of system a against b gives the
paired difference

    D_s = mu + mean_i (x_i + w_is) + u_s,

x_i the identity's share of the difference (the same for every seed: the
test set is shared), w_is its seed-by-identity part, u_s the seed's own
shift. The identity bootstrap draws the m identities with replacement and
recomputes every D_s on the same draw, exactly as
:func:`vfcross.evaluation.intervals.paired_decision` does with AUCs. The truth
is mu, the mean over new test identities AND new seeds. Defaults (in AUC
points) match the committed default run: per-seed identity SE ≈ 1.5 points
at 60 identities (sqrt(10² + 6²)/sqrt(60)), seed SD of the Table 6
differences ≈ 0.8 points (mostly w: 6/sqrt(60)), u small (SD 0.5).

It prints, from ``--sets`` simulated test sets each:

1. coverage of mu by three 95% intervals: the library's (identity bootstrap
   + seed spread, Welch-Satterthwaite t), a two-level percentile bootstrap
   (identities, then seeds with replacement) and the identity bootstrap of
   the seed mean alone (the seed spread ignored), for 1-10 seeds and a seed
   shift u of SD 0, 0.5, 2 and 5 points;
2. how the decision interval narrows with test identities and with seeds:
   mean 95% half-width, smallest detectable gain (80% power) and smallest
   showable equivalence margin;
3. whether the stated power is real: with mu set to the mean stated
   detectable gain, the share of "holds" (interval above 0); with mu = 0 and
   the margin set to the mean stated smallest margin, the share of "holds"
   (90% interval inside it). Both should be ≈ 80%.

Run from the repository root (about two minutes on one core with 400 sets)::

    PYTHONPATH=$PWD python benchmarks/decision_power.py --sets 400 --boot 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vfcross.evaluation.intervals import seed_decision


def simulate(rng: np.random.Generator, m: int, seeds: int, sd: tuple[float, float, float], mu: float,
             n_boot: int) -> tuple[list[dict], np.ndarray]:
    """One test set: the per-seed differences and their (n_boot, seeds) identity-bootstrap replicates."""
    sd_x, sd_w, sd_u = sd
    shares = rng.normal(0, sd_x, (m, 1)) + rng.normal(0, sd_w, (m, seeds))  # x_i + w_is
    shift = mu + rng.normal(0, sd_u, seeds)
    counts = rng.multinomial(m, np.full(m, 1 / m), size=n_boot)
    per_seed = [{"seed": s, "difference": float(d)} for s, d in enumerate(shares.mean(axis=0) + shift)]
    return per_seed, counts @ shares / m + shift


def two_level(rng: np.random.Generator, replicates: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the two-level bootstrap: each identity resample also resamples the seeds."""
    n_boot, seeds = replicates.shape
    picks = rng.integers(0, seeds, (n_boot, seeds))
    return tuple(np.percentile(np.take_along_axis(replicates, picks, axis=1).mean(axis=1), [2.5, 97.5]))


def coverage(args, rng: np.random.Generator) -> None:
    """Table 1: coverage of mu = 0 by the three intervals."""
    print("coverage of the true difference by 95% intervals, 60 test identities "
          f"({args.sets} test sets; SD x {args.sd_x}, w {args.sd_w} points)")
    print(f"{'seed shift SD':>13} {'seeds':>5} {'library (t)':>12} {'two-level':>10} {'identities only':>16}")
    for sd_u in (0.0, 0.5, 2.0, 5.0):
        for seeds in (1, 2, 3, 5, 10):
            hits = np.zeros(3)
            for _ in range(args.sets):
                per_seed, reps = simulate(rng, 60, seeds, (args.sd_x, args.sd_w, sd_u), 0.0, args.boot)
                low, high = seed_decision(per_seed, reps, 60).interval(0.95)
                boot = two_level(rng, reps)
                alone = np.percentile(reps.mean(axis=1), [2.5, 97.5])
                hits += [low <= 0 <= high, boot[0] <= 0 <= boot[1], alone[0] <= 0 <= alone[1]]
            share = hits / args.sets
            print(f"{sd_u:>13} {seeds:>5} {share[0]:>12.1%} {share[1]:>10.1%} {share[2]:>16.1%}")


def narrowing(args, rng: np.random.Generator) -> dict:
    """Table 2: mean half-width, detectable gain and showable margin by identities and seeds."""
    sd = (args.sd_x, args.sd_w, args.sd_u)
    print(f"\nhow the decision interval narrows (points; SD x {sd[0]}, w {sd[1]}, seed shift {sd[2]}; "
          f"{args.sets // 4} test sets each)")
    print(f"{'identities':>10} {'seeds':>5} {'95% half-width':>15} {'detectable gain':>16} {'showable margin':>16}")
    found = {}
    for m in (60, 120, 250, 500, 1000):
        for seeds in (1, 3, 5, 10):
            rows = []
            for _ in range(args.sets // 4):
                decision = seed_decision(*simulate(rng, m, seeds, sd, 0.0, args.boot), m)
                low, high = decision.interval(0.95)
                rows.append(((high - low) / 2, decision.mde(0.95), decision.mde(0.90, equivalence=True)))
            found[m, seeds] = np.mean(rows, axis=0)
            print(f"{m:>10} {seeds:>5} " + " ".join(f"{v:>15.2f}" for v in found[m, seeds]))
    return found


def power(args, rng: np.random.Generator, found: dict) -> None:
    """Table 3: the share of decisions that hold when the truth is the stated detectable difference."""
    sd = (args.sd_x, args.sd_w, args.sd_u)
    print("\nis the stated 80% power real? share of 'holds'")
    for m, seeds in ((60, 1), (60, 3), (250, 3)):
        _, gain, margin = found[m, seeds]
        superiority = equivalence = 0
        for _ in range(args.sets):
            low, _ = seed_decision(*simulate(rng, m, seeds, sd, gain, args.boot), m).interval(0.95)
            superiority += low > 0
            low, high = seed_decision(*simulate(rng, m, seeds, sd, 0.0, args.boot), m).interval(0.90)
            equivalence += -margin < low and high < margin
        print(f"{m} identities, {seeds} seeds: superiority at a true gain of {gain:.2f} points "
              f"{superiority / args.sets:.1%}; equivalence within ±{margin:.2f} points {equivalence / args.sets:.1%}")


def main() -> None:
    """Parse the options, run the three tables, print the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=1000, help="simulated test sets per row")
    parser.add_argument("--boot", type=int, default=400, help="identity resamples per interval")
    parser.add_argument("--sd-x", type=float, default=10.0, help="SD of an identity's share (points)")
    parser.add_argument("--sd-w", type=float, default=6.0, help="SD of the seed-by-identity part (points)")
    parser.add_argument("--sd-u", type=float, default=0.5, help="SD of a seed's own shift (points)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start, rng = time.perf_counter(), np.random.default_rng(args.seed)
    coverage(args, rng)
    power(args, rng, narrowing(args, rng))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
