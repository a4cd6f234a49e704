"""The interval a claim is decided on, and the smallest difference that interval could have detected.

A claim compares system a with system b, each trained with one or more
training seeds and scored on the SAME test pairs. Its difference is the mean
over seeds of the paired difference a - b; two things would change it: a new
set of test identities and new training seeds. :func:`seed_decision` puts
both in one standard error,

    SE² = SE²(identities) + SD²(seeds) / S,

where SE(identities) is the spread of the seed-averaged difference over
identity resamples (:mod:`.bootstrap`; every seed recomputed on the same
draw, so the resampling of test identities is shared and paired) and
SD(seeds) the spread of the S per-seed differences on this test set. The
interval is difference ± t·SE with the Welch-Satterthwaite degrees of freedom
of the two parts (identities - 1 and S - 1): with 3 seeds whose spread
dominates, t approaches t(2) = 4.3, not 1.96.

Why not a two-level bootstrap (resample identities, then seeds with
replacement): with S = 3 it knows 10 seed sets, shrinks the seed variance by
(S - 1)/S and never reaches beyond the seeds' range. The simulation beside
``benchmarks/bootstrap_calibration.py`` (``benchmarks/decision_power.py``,
60 identities, 400 test sets) measures both: where the seed spread
dominates (seed shift SD 5 points) the "95%" two-level interval covers the
truth 66% / 85% of the time with 2 / 3 seeds, this one 85% / 93.5%, and
93-97% wherever the seed shift is 2 points or less. It counts the
seed-by-identity interaction twice (in both parts), which errs wide. With
one seed the seed spread cannot be measured: the interval is the identity
part alone and says so (``seed_sd`` None).

:meth:`Decision.mde` is the smallest true difference the design detects with
80% power (superiority: (t(1 - α/2) + t(0.8))·SE; equivalence at zero true
difference, two one-sided tests: (t(1 - α) + t(0.9))·SE, the smallest margin
it could show), and :meth:`Decision.identities_for` how many test identities
would bring it down to a given difference. :func:`list_contrasts` gives the
paired interval of one system's AUC on two different lists of the same test
identities (the same identity draws for both), for sentences like "N
negatives are close to random ones".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vfcross.evaluation.bootstrap import MAX_FAILED, cluster_bootstrap_values
from vfcross.metrics import roc_auc
from vfcross.evaluation.protocols import verification_scores

#: Power at which the smallest detectable difference is stated.
POWER = 0.8


@dataclass(frozen=True)
class Decision:
    """A claim's difference a - b: mean over seeds, its standard error and where it comes from.

    ``per_seed`` holds ``{"seed", "difference", "a", "b"}`` per matched
    seed; ``seed_sd`` is None with one seed (not measured); ``df`` the
    degrees of freedom of the t interval; ``identities`` the test
    identities resampled; ``note`` why there is no interval (then ``se`` is None).
    """

    difference: float
    se: float | None
    se_identities: float | None
    seed_sd: float | None
    df: float
    identities: int
    per_seed: tuple[dict, ...]
    note: str = ""

    @property
    def seeds(self) -> int:
        """Number of seeds averaged."""
        return len(self.per_seed)

    def _quantile(self, p: float) -> float:
        """The p-quantile of the t distribution with this decision's degrees of freedom."""
        return float(stats.t.ppf(p, self.df))

    def interval(self, level: float) -> tuple[float, float] | None:
        """The two-sided ``level`` interval difference ± t·SE (None where no SE could be made)."""
        if self.se is None:
            return None
        half = self._quantile(0.5 + level / 2) * self.se
        return self.difference - half, self.difference + half

    def mde(self, level: float, equivalence: bool = False, power: float = POWER) -> float | None:
        """Smallest difference detected with ``power`` at the two-sided ``level`` (equivalence: smallest margin)."""
        if self.se is None:
            return None
        return (self._quantile(0.5 + level / 2) + self._quantile(0.5 + power / 2 if equivalence else power)) * self.se

    def identities_for(self, target: float, level: float, equivalence: bool = False) -> int | None:
        """Test identities that would bring :meth:`mde` down to ``target`` at these seeds (None: seeds needed too).

        The identity part of the variance scales as 1/identities, the seed
        part stays; None where the seed part alone exceeds the target.
        """
        mde = self.mde(level, equivalence)
        if mde is None or not target > 0:
            return None
        if mde <= target:
            return self.identities
        seed_part = (self.seed_sd or 0.0) ** 2 / self.seeds
        room = (target * self.se / mde) ** 2 - seed_part
        return None if room <= 0 else math.ceil(self.identities * self.se_identities ** 2 / room)

    def half_width(self, level: float) -> float | None:
        """Half the width of the ``level`` interval (None where there is none)."""
        return None if self.se is None else self._quantile(0.5 + level / 2) * self.se

    def seeds_for(self, half_width: float, level: float, most: int = 100) -> int | None:
        """Seeds that would bring the ``level`` interval's half-width down to ``half_width``, at this test set.

        The seed part of the variance is SD²(seeds)/S with the measured SD; the
        identity part is held at its measured value (it shrinks a little with
        more seeds, so this errs high). None where the spread was not measured
        (one seed) or ``most`` seeds would not do (the identity part alone is too wide).
        """
        if self.se is None or self.seed_sd is None:
            return None
        for s in range(2, most + 1):
            parts = [(self.se_identities ** 2, self.identities - 1), (self.seed_sd ** 2 / s, s - 1)]
            se = math.sqrt(sum(v for v, _ in parts))
            if float(stats.t.ppf(0.5 + level / 2, _satterthwaite(parts))) * se <= half_width:
                return s
        return None

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"difference": self.difference, "se": self.se, "se_identities": self.se_identities,
                "seed_sd": self.seed_sd, "df": self.df, "identities": self.identities, "seeds": self.seeds,
                "per_seed": list(self.per_seed), "note": self.note}


def _satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variances, each (variance, its df)."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / df for v, df in parts if df > 0)
    return float(total * total / denominator) if denominator > 0 else float(max(df for _, df in parts))


def seed_decision(per_seed: Sequence[Mapping], replicates: np.ndarray, identities: int) -> Decision:
    """The decision from per-seed differences and their identity-bootstrap replicates.

    ``per_seed`` holds one ``{"seed", "difference", ...}`` per seed;
    ``replicates`` is (n_boot, seeds): each seed's difference on each
    identity resample (the same draws for every seed; NaN where undefined).
    A resample undefined for any seed is skipped; more than 5% skipped
    gives a decision without interval (``note`` says why).
    """
    per_seed = tuple(dict(p) for p in per_seed)
    if not per_seed or np.ndim(replicates) != 2 or np.shape(replicates)[1] != len(per_seed):
        raise ValueError(f"replicates must be (n_boot, {len(per_seed)} seeds), got shape {np.shape(replicates)}")
    if identities < 2:
        raise ValueError(f"a decision needs at least 2 test identities, got {identities}")
    differences = np.array([p["difference"] for p in per_seed], dtype=float)
    s = len(differences)
    seed_sd = float(np.std(differences, ddof=1)) if s > 1 else None
    mean = float(differences.mean())
    means = np.asarray(replicates, dtype=float).mean(axis=1)
    failed = int(np.isnan(means).sum())
    if failed > MAX_FAILED * len(means) or len(means) - failed < 2:
        return Decision(mean, None, None, seed_sd, identities - 1, identities, per_seed,
                        note=f"no identity-level interval: the difference is undefined on {failed} of "
                             f"{len(means)} identity resamples (too few identities)")
    se_identities = float(np.std(means[~np.isnan(means)], ddof=1))
    parts = [(se_identities ** 2, identities - 1)] + ([(seed_sd ** 2 / s, s - 1)] if seed_sd is not None else [])
    return Decision(mean, math.sqrt(sum(v for v, _ in parts)), se_identities, seed_sd, _satterthwaite(parts),
                    identities, per_seed)


def _contrast(vectors: np.ndarray, identity: np.ndarray, pairs, base, n_boot: int, seed: int) -> dict:
    """AUC on ``pairs`` minus AUC on ``base`` with its paired interval (both lists resampled with the same draws)."""
    clusters = [identity[p.voice] for p in (pairs, base)]
    universe = np.unique(np.concatenate(clusters))
    scores = [verification_scores(p, vectors) for p in (pairs, base)]
    values = [cluster_bootstrap_values(roc_auc, c, s, p.labels, n_boot=n_boot, seed=seed, identities=universe)
              for c, s, p in zip(clusters, scores, (pairs, base))]
    defined = (values[0] - values[1])[~np.isnan(values[0] - values[1])]
    if len(defined) < max(2, (1 - MAX_FAILED) * n_boot):
        return {"note": f"no identity-level interval: undefined on {n_boot - len(defined)} of {n_boot} resamples"}
    out = {"difference": roc_auc(scores[0], pairs.labels) - roc_auc(scores[1], base.labels),
           "identities": len(universe)}
    for key, level in (("ci", 0.95), ("ci_90", 0.90)):
        out[key] = [float(x) for x in np.percentile(defined, [50 * (1 - level), 50 * (1 + level)])]
    return out


def list_contrasts(vectors: np.ndarray, table, protocols, lists: Sequence[str] = ("N", "A"), n_boot: int = 1000,
                   seed: int = 0) -> dict[str, dict]:
    """Per restricted list, one system's AUC on it minus its AUC on the random list, with a paired interval.

    ``protocols`` is a :class:`~vfcross.evaluation.registry.Protocols` of
    ``table``; a pair belongs to its voice identity (:mod:`.bootstrap`), and
    both lists are resampled with the SAME identity draws, so the test set
    they share cancels. Each entry is ``{"difference", "ci" (95%), "ci_90",
    "identities"}``, or ``{"note"}`` where a list cannot be scored or too few
    identities make the interval undefined.
    """
    identity = table["identity"].to_numpy(dtype=str)
    base = protocols.verification("random")
    out = {}
    for name in lists:
        made = protocols.verification(name)
        if base is None or made is None or not (base.scorable and made.scorable):
            out[name] = {"note": f"no contrast of the {name} list with the random list: one of them cannot be scored"}
        else:
            out[name] = _contrast(vectors, identity, made.protocol, base.protocol, n_boot, seed)
    return out
