"""Do the bootstrap intervals have the width of the spread across test sets? (issue 9, evidence)

Simulates the generator's oracle, from population attributes only (nothing
is rendered), on many fresh test sets of the size ``make reproduce`` uses
(300 identities, 20% test = 60 identities; one voice and one face row per
identity), and compares the spread of each metric ACROSS test sets with the
standard error that a bootstrap estimates from ONE test set:

* pair: resample pairs / trials / queries (the old ``bootstrap_ci``);
* anchor: identity cluster bootstrap, a unit belonging to its voice (probe,
  query) identity only;
* two-sided: identity cluster bootstrap, a verification pair belonging to its
  voice AND face identity (weight c_A * c_B), as :mod:`vfcross.evaluation.evaluate` does.

Also the coverage of each scheme's 95% interval of the oracle's population
AUC (estimated once on a large population). ``--face-effect s`` adds to
every score a per-identity offset of its FACE (normal, SD ``s``): a "hub"
face that every voice finds similar, as learned embeddings have and the
oracle has not; ``--voice-effect s`` does the same for the voice. Run from
the repository root::

    PYTHONPATH=$PWD python benchmarks/bootstrap_calibration.py --sets 200 --boot 300
    PYTHONPATH=$PWD python benchmarks/bootstrap_calibration.py --sets 200 --boot 300 --face-effect 2
    PYTHONPATH=$PWD python benchmarks/bootstrap_calibration.py --sets 200 --boot 300 --voice-effect 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes import average_precisions, population_table  # noqa: E402

from vfcross.config import SynthConfig  # noqa: E402
from vfcross.data.synthetic.population import sample_population  # noqa: E402
from vfcross.evaluation.intervals import cluster_values, identity_draws, weighted_mean  # noqa: E402
from vfcross.metrics import matching_credits, roc_auc  # noqa: E402
from vfcross.evaluation.oracle import oracle_pair_scores  # noqa: E402
from vfcross.evaluation.protocols import matching_trials, verification_pairs  # noqa: E402

LISTS = ("random", "G")


def pair_bootstrap_values(statistic, *arrays, n_boot: int, seed: int) -> np.ndarray:
    """The statistic on row resamples, exactly as ``metrics.bootstrap_ci`` draws them."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        try:
            values.append(statistic(*(a[rows] for a in arrays)))
        except ValueError:
            values.append(np.nan)
    return np.array(values)


def two_sided_values(statistic, voice: np.ndarray, face: np.ndarray, *arrays, n_boot: int, seed: int) -> np.ndarray:
    """The statistic when every drawn identity is a distinct copy: a positive pair (A, A) counts c_A times, a
    negative (A, B) c_A * c_B times."""
    universe = np.unique(np.r_[voice, face])
    v, f = np.searchsorted(universe, voice), np.searchsorted(universe, face)
    values = []
    for c in identity_draws(len(universe), n_boot, seed).astype(float):
        try:
            values.append(statistic(*arrays, sample_weight=np.where(v == f, c[v], c[v] * c[f])))
        except ValueError:
            values.append(np.nan)
    return np.array(values)


def summarise(values: np.ndarray, truth: float | None) -> dict:
    """SE and, where the truth is known, whether the 95% percentile interval covers it."""
    values = values[~np.isnan(values)]
    low, high = np.percentile(values, [2.5, 97.5])
    return {"se": float(values.std(ddof=1)), "covers": None if truth is None else bool(low <= truth <= high)}


def offsets(ids: np.ndarray, sd: float, rng: np.random.Generator) -> dict[str, float]:
    """Per identity, the offset its face (or voice) adds to every score (all 0 when ``sd`` is 0)."""
    return dict(zip(ids, rng.normal(0.0, sd, len(ids)) if sd else np.zeros(len(ids))))


def scorer(people, cfg, effects: tuple[float, float], seed: int):
    """Score (voice ids, face ids[, restriction]) pairs: the oracle plus the voice's and the face's offset."""
    ids, rng = np.array([p.vox_id for p in people]), np.random.default_rng(seed)
    voice_offset, face_offset = offsets(ids, effects[0], rng), offsets(ids, effects[1], rng)

    def score(voice: np.ndarray, face: np.ndarray, restriction: str = "random") -> np.ndarray:
        extra = np.array([voice_offset[v] + face_offset[f] for v, f in zip(voice, face)])
        return oracle_pair_scores(people, cfg, voice, face, restriction) + extra
    return score


def population_auc(
    restriction: str, effects: tuple[float, float], identities: int = 3000, n_pairs: int = 200_000
) -> float:
    """The scorer's AUC on one large population: the quantity each test set estimates."""
    cfg = SynthConfig(identities=identities, seed=10_000, split_fractions=(0.0, 0.0, 1.0))
    people = sample_population(cfg)
    table = population_table(people)
    ids = table["identity"].to_numpy()
    pairs = verification_pairs(table, restriction, n_pairs, seed=0)
    score = scorer(people, cfg, effects, seed=10_000)
    return roc_auc(score(ids[pairs.voice], ids[pairs.face], restriction), pairs.labels)


def one_test_set(seed: int, n_boot: int, truths: dict[str, float], effects: tuple[float, float]) -> dict:
    """Every metric and every scheme's SE on the test identities of population ``seed``."""
    cfg = SynthConfig(identities=300, seed=seed)
    people = [p for p in sample_population(cfg) if p.split == 4]
    table = population_table(people)
    ids = table["identity"].to_numpy()
    score = scorer(people, cfg, effects, seed=seed + 1_000_000)
    out: dict = {"identities": len(people)}
    for restriction in LISTS:
        pairs = verification_pairs(table, restriction, 10_000, seed)
        voice, face = ids[pairs.voice], ids[pairs.face]
        scores = score(voice, face, restriction)
        truth = truths[restriction]
        out[f"auc {restriction}"] = {
            "value": roc_auc(scores, pairs.labels),
            "pair": summarise(pair_bootstrap_values(roc_auc, scores, pairs.labels, n_boot=n_boot, seed=seed), truth),
            "anchor": summarise(cluster_values(roc_auc, voice, scores, pairs.labels, n_boot=n_boot, seed=seed), truth),
            "two-sided": summarise(two_sided_values(roc_auc, voice, face, scores, pairs.labels, n_boot=n_boot,
                                                    seed=seed), truth),
        }
    trials = matching_trials(table, "v2f", 2000, seed, max_n=10)
    probe_ids, candidate_ids = ids[trials.probes], ids[trials.candidates]
    similarity = score(np.repeat(probe_ids, 10), candidate_ids.ravel()).reshape(-1, 10)
    for n in (2, 10):
        credits = matching_credits(similarity[:, :n])
        out[f"matching v2f N={n}"] = {
            "value": float(credits.mean()),
            "pair": summarise(pair_bootstrap_values(np.mean, credits, n_boot=n_boot, seed=seed), None),
            "anchor": summarise(cluster_values(weighted_mean, probe_ids, credits, n_boot=n_boot,
                                                         seed=seed), None),
        }
    voices = ids[table["modality"].to_numpy() == "voice"]
    faces = ids[table["modality"].to_numpy() == "face"]
    grid = score(np.repeat(voices, len(faces)), np.tile(faces, len(voices)))
    ap = average_precisions(grid.reshape(len(voices), len(faces)), voices, faces)
    out["mAP v2f"] = {
        "value": float(ap.mean()),
        "pair": summarise(pair_bootstrap_values(np.mean, ap, n_boot=n_boot, seed=seed), None),
        "anchor": summarise(cluster_values(weighted_mean, voices, ap, n_boot=n_boot, seed=seed), None),
    }
    return out


def table(results: list[dict]) -> str:
    """Markdown: SD across test sets beside each scheme's mean SE (and coverage of the population AUC)."""
    lines = ["| metric | SD across test sets | pair SE | anchor SE | two-sided SE | 95% coverage pair / anchor / two-sided |",
             "|---|---|---|---|---|---|"]
    for metric in [k for k in results[0] if k != "identities"]:
        values = np.array([r[metric]["value"] for r in results])
        cells = [f"{values.std(ddof=1):.4f}"]
        coverage = []
        for scheme in ("pair", "anchor", "two-sided"):
            if scheme not in results[0][metric]:
                cells.append("-")
                continue
            cells.append(f"{np.mean([r[metric][scheme]['se'] for r in results]):.4f}")
            covers = [r[metric][scheme]["covers"] for r in results]
            if covers[0] is not None:
                coverage.append(f"{np.mean(covers):.0%}")
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {' / '.join(coverage) or '-'} |")
    return "\n".join(lines)


def main() -> None:
    """Run the simulation and print its table (and write the raw numbers with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=200, help="fresh test sets (populations)")
    parser.add_argument("--boot", type=int, default=500, help="bootstrap resamples per test set")
    parser.add_argument("--voice-effect", type=float, default=0.0, help="SD of a per-voice offset added to scores")
    parser.add_argument("--face-effect", type=float, default=0.0, help="SD of a per-face offset added to scores")
    parser.add_argument("--out", help="write every test set's numbers to this JSON file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    effects = (args.voice_effect, args.face_effect)
    truths = {restriction: population_auc(restriction, effects) for restriction in LISTS}
    results = [one_test_set(seed, args.boot, truths, effects) for seed in range(args.sets)]
    print(f"voice/face effect SD {effects}; population AUC: {truths}; {args.sets} test sets of "
          f"{results[0]['identities']} identities, {args.boot} resamples each, {time.perf_counter() - start:.0f} s")
    print(table(results))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"truths": truths, "results": results}, handle)


if __name__ == "__main__":
    main()
