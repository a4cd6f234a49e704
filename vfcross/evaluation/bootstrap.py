"""Identity-level (cluster) bootstrap: confidence intervals whose unit is the test identity.

Why: every protocol draws many pairs, trials or queries from few test
identities (60 in the default run), so units sharing an identity are not
independent. Resampling the units themselves (:func:`~vfcross.metrics.bootstrap_ci`)
treats every pair as an independent observation and gives intervals
several times too narrow for the question that matters: what would another
set of test identities give?

The resample. Each resample draws the m test identities with replacement
(m draws). A unit (a verification pair, a matching trial, a retrieval
query) is tied to the identities it involves, given as one label per unit
or one row of labels per unit (``clusters``, shape (n,) or (n, k)). In the
resampled test set an identity drawn c times is c distinct copies of itself,
so a unit involving the distinct identities S occurs prod_{i in S} c_i times,
and the metric is recomputed on that weighted set (exactly: integer weights
equal repeating the rows, see ``sample_weight`` in
:mod:`vfcross.metrics`). With one label per unit this is the
usual cluster bootstrap (a drawn identity brings all its units, as often as
it was drawn), and AUC and EER are computed from the identity counts of all
resamples at once (AUC as a quadratic form in them, whatever the number of
pairs; :func:`vfcross.metrics.by_identity`).

Which identity a unit belongs to (used by :mod:`vfcross.evaluation.evaluate`):
its anchor, the identity the protocol drew it for. A verification pair
belongs to its VOICE identity (the protocols draw the voice's identity and
then a face: its own, or a partner's), a 1:N matching trial to its probe
identity, a retrieval query to its query identity (the gallery stays the
whole test gallery). Passing both identities of a pair, ``np.c_[voice,
face]``, gives the two-sided scheme instead: a positive pair (A, A) occurs
c_A times, a negative pair (A, B) c_A * c_B times.

Evidence for that choice (``benchmarks/bootstrap_calibration.py``): the
generator's oracle (population attributes only, nothing rendered) on 200
fresh 60-identity test sets (300-identity populations, 20% test; 10,000
verification pairs per list, 2,000 matching trials, one voice and one face
row per identity). The spread of each metric across the test sets is set
beside the mean standard error each scheme estimates from ONE test set
(300 resamples), and the coverage of the 95% interval of the population
AUC. "+ face/voice effect" adds to every score a per-identity offset (SD
2) of the face or the voice, a "hub" that learned embeddings can have and
the oracle has not:

=====================  ======================  ==========  =========  =========  =========  ==================
scores                 metric                  SD across   pair SE    anchor SE  two-sided  95% coverage
                                               test sets                         SE         pair/anchor/two
=====================  ======================  ==========  =========  =========  =========  ==================
oracle                 AUC, random list        0.0121      0.0028     0.0128     0.0145     36% / 96% / 98%
oracle                 AUC, G list             0.0251      0.0040     0.0252     0.0272     27% / 95% / 96%
oracle                 matching V-F, N = 2     0.0146      0.0064     0.0150
oracle                 matching V-F, N = 10    0.0446      0.0110     0.0459
oracle                 mAP V-F                 0.0466      0.0454     0.0454
+ voice effect         AUC, random list        0.0102      0.0037     0.0113     0.0145     52% / 98% / 100%
+ voice effect         AUC, G list             0.0208      0.0050     0.0213     0.0248     36% / 94% / 97%
+ face effect          AUC, random list        0.0105      0.0038     0.0162     0.0144     52% / 100% / 99%
+ face effect          AUC, G list             0.0209      0.0050     0.0317     0.0248     36% / 99% / 98%
+ face effect          matching V-F, N = 10    0.0303      0.0109     0.0448
+ face effect          mAP V-F                 0.0272      0.0372     0.0372
=====================  ======================  ==========  =========  =========  =========  ==================

The pair bootstrap is 3-6x too narrow (it covers the population AUC in
27-52% of test sets, not 95%). The anchor scheme matches the spread across
test sets with the oracle (SE/SD 0.98-1.06) and with a voice effect
(1.02-1.11), and is conservative with a face effect (1.5x: a hub face
raises its own positive pair and its negatives together, which anchor
resampling separates). The two-sided scheme never underestimates either,
but is wider than the spread in every case (1.08-1.42x). Neither
underestimates, so the anchor scheme, exact where it matters most and
never too narrow, is the one used. (With one row per identity, retrieval
queries and identities coincide, so pair and anchor agree for mAP.)

Resamples on which the statistic is undefined (it raises ValueError, e.g.
one class only) are skipped; more than 5% skipped raises, as
:func:`~vfcross.metrics.bootstrap_ci` does. Intervals are
percentile intervals, deterministic from ``seed``: resample b draws
``rng.integers(0, m, m)`` from ``numpy.random.default_rng(seed)`` in turn,
identities indexed in sorted label order (:func:`identity_draws`), so the
same seed gives the same identity draws to every statistic of a test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from vfcross.metrics import by_identity

#: Most resamples a statistic may fail on (as a fraction) before the interval is refused.
MAX_FAILED = 0.05


def weighted_mean(values: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Mean of ``values`` with each entry counted ``sample_weight`` times (NaN entries are an error).

    The statistic of matching accuracy (mean of per-trial credits) and of
    mAP (mean of per-query APs) under the cluster bootstrap; ValueError when
    the total weight is 0 (every unit left out).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.ones(len(values)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
    if weights.shape != values.shape:
        raise ValueError(f"values and sample_weight differ in length: {values.shape} vs {weights.shape}")
    if np.isnan(values).any():
        raise ValueError("values hold NaN; leave undefined units out before averaging")
    total = weights.sum()
    if not total > 0:
        raise ValueError("the total weight is 0: no unit to average")
    return float(np.dot(weights, values) / total)


@dataclass(frozen=True)
class Clusters:
    """Identity codes of the units of a protocol: one row per unit, one column per identity it involves.

    ``codes[u, j]`` indexes ``identities``; a label repeated within a row
    (the voice and face identity of a positive pair) is stored once, the
    repeats pointing at the extra index m = len(identities), whose count is
    always 1.
    """

    identities: np.ndarray
    codes: np.ndarray

    @classmethod
    def of(cls, clusters: np.ndarray, identities: np.ndarray | None = None) -> Clusters:
        """Codes of ``clusters`` (labels, shape (n,) or (n, k)) among ``identities`` (default: those seen)."""
        labels = np.asarray(clusters)
        if labels.ndim == 1:
            labels = labels[:, np.newaxis]
        if labels.ndim != 2 or labels.shape[0] == 0 or labels.shape[1] == 0:
            raise ValueError(f"clusters must be a non-empty (units,) or (units, k) array of labels, got {labels.shape}")
        universe = np.unique(labels) if identities is None else np.unique(np.asarray(identities))
        codes = np.searchsorted(universe, labels)
        found = np.take(universe, np.minimum(codes, len(universe) - 1))
        if (codes >= len(universe)).any() or (found != labels).any():
            raise ValueError("clusters hold labels that are not among the given identities")
        for j in range(1, codes.shape[1]):
            repeated = (codes[:, j : j + 1] == codes[:, :j]).any(axis=1)
            codes[repeated, j] = len(universe)
        return cls(universe, codes)

    def __len__(self) -> int:
        return len(self.codes)

    def weights(self, counts: np.ndarray) -> np.ndarray:
        """Multiplicity of every unit when identity i was drawn ``counts[i]`` times."""
        extended = np.r_[np.asarray(counts, dtype=np.float64), 1.0]
        return extended[self.codes].prod(axis=1)


def identity_draws(n_identities: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_identities) counts: how often each identity is drawn in each resample.

    Resample b is ``rng.integers(0, m, m)`` of ``numpy.random.default_rng(seed)``,
    the b-th such call, counted per identity.
    """
    if n_identities < 1 or n_boot < 1:
        raise ValueError(f"need n_identities >= 1 and n_boot >= 1, got {n_identities} and {n_boot}")
    rng = np.random.default_rng(seed)
    return np.stack(
        [np.bincount(rng.integers(0, n_identities, n_identities), minlength=n_identities) for _ in range(n_boot)]
    )


def _check_arrays(arrays: Sequence[np.ndarray], n: int, what: str) -> tuple[np.ndarray, ...]:
    """Arrays as numpy arrays, each with one row per unit."""
    if not arrays:
        raise ValueError(f"{what}: the statistic needs at least one array")
    arrays = tuple(np.asarray(a) for a in arrays)
    if any(len(a) != n for a in arrays):
        raise ValueError(f"{what}: arrays must have one row per unit ({n}), got lengths {[len(a) for a in arrays]}")
    return arrays


def _replicates(statistic: Callable[..., float], groups: Clusters, arrays: tuple[np.ndarray, ...],
                draws: np.ndarray, materialise: bool) -> np.ndarray:
    """The statistic on each resample of ``draws`` (resamples, identities); NaN where it is undefined.

    With one identity per unit, AUC and EER (and statistics offering
    ``by_identity(codes, m, *arrays)``, such as a mean over training seeds
    of them) are computed for all resamples at once from the identity
    counts (:func:`vfcross.metrics.by_identity`: AUC as a
    quadratic form in them, so its cost does not grow with the pairs):
    the same numbers as the weighted statistic. Anything else is called
    once per resample with the units' multiplicities.
    """
    batched = None
    if not materialise and groups.codes.shape[1] == 1:
        make = getattr(statistic, "by_identity", None) or partial(by_identity, statistic)
        batched = make(groups.codes[:, 0], len(groups.identities), *arrays)
    if batched is not None:
        return np.asarray(batched(draws), dtype=np.float64)
    return np.array([_evaluate(statistic, arrays, groups.weights(counts), materialise) for counts in draws])


def _evaluate(
    statistic: Callable[..., float], arrays: tuple[np.ndarray, ...], weights: np.ndarray, materialise: bool
) -> float:
    """The statistic on one weighted resample; NaN where it is undefined (raises ValueError)."""
    try:
        if materialise:
            rows = np.repeat(np.arange(len(weights)), weights.astype(np.int64))
            return float(statistic(*(a[rows] for a in arrays)))
        return float(statistic(*arrays, sample_weight=weights))
    except ValueError:
        return float("nan")


def _check_level(level: float, n_boot: int) -> None:
    """Reject impossible interval settings."""
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")


def cluster_bootstrap_values(
    statistic: Callable[..., float],
    clusters: np.ndarray,
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    identities: np.ndarray | None = None,
    materialise: bool = False,
) -> np.ndarray:
    """The statistic on each of ``n_boot`` identity resamples (NaN where it is undefined).

    ``statistic(*arrays, sample_weight=w)`` is called with every unit's
    multiplicity ``w`` (see the module docstring), as the metrics of
    :mod:`vfcross.metrics` and :func:`weighted_mean` take it
    (``statistic(*arrays)`` gives the point estimate); with ``materialise=True``
    it is instead called on the arrays' rows repeated ``w`` times, for
    statistics that take no weights. ``clusters`` gives each unit's
    identity label(s); ``identities`` the test identities drawn from
    (default: every label in ``clusters``).
    """
    groups = Clusters.of(clusters, identities)
    arrays = _check_arrays(arrays, len(groups), "cluster bootstrap")
    return _replicates(statistic, groups, arrays, identity_draws(len(groups.identities), n_boot, seed), materialise)


def _percentiles(values: np.ndarray, level: float, what: str) -> tuple[float, float]:
    """Percentile interval of the defined values; ValueError if more than 5% are undefined."""
    failures = int(np.isnan(values).sum())
    if failures > MAX_FAILED * len(values):
        raise ValueError(
            f"{what}: the statistic failed on {failures} of {len(values)} bootstrap resamples (more than 5%)"
        )
    low, high = np.percentile(values[~np.isnan(values)], [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def cluster_bootstrap_ci(
    statistic: Callable[..., float],
    clusters: np.ndarray,
    *arrays: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    identities: np.ndarray | None = None,
    materialise: bool = False,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over identity resamples of one system.

    Arguments as in :func:`cluster_bootstrap_values`; e.g.
    ``cluster_bootstrap_ci(roc_auc, np.c_[voice_ids, face_ids], scores, labels)``.
    Resamples where the statistic raises ValueError are skipped; more than
    5% of them raises ValueError. Deterministic from ``seed``.
    """
    _check_level(level, n_boot)
    values = cluster_bootstrap_values(
        statistic, clusters, *arrays, n_boot=n_boot, seed=seed, identities=identities, materialise=materialise
    )
    return _percentiles(values, level, "cluster bootstrap")


@dataclass(frozen=True)
class PairedInterval:
    """A paired comparison of systems a and b on the same units: a - b with its identity-level interval.

    ``a_ci`` and ``b_ci`` are each system's own interval from the same
    resamples; ``failures`` counts resamples skipped because either
    statistic was undefined; ``identities`` is the number of test identities
    resampled.
    """

    difference: float
    ci: tuple[float, float]
    a: float
    a_ci: tuple[float, float]
    b: float
    b_ci: tuple[float, float]
    level: float
    n_boot: int
    failures: int
    identities: int

    def as_dict(self) -> dict:
        """JSON-ready form (intervals as lists), keys in field order."""
        return {key: list(value) if key.endswith("ci") else value for key, value in vars(self).items()}


def paired_cluster_bootstrap_ci(
    statistic: Callable[..., float],
    clusters: np.ndarray,
    arrays_a: Sequence[np.ndarray],
    arrays_b: Sequence[np.ndarray],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    identities: np.ndarray | None = None,
    materialise: bool = False,
) -> PairedInterval:
    """Interval of statistic(a) - statistic(b), both computed on the same identity resample each time.

    ``arrays_a`` and ``arrays_b`` are the statistic's arguments for the two
    systems on the SAME units (e.g. ``(scores_a, labels)`` and
    ``(scores_b, labels)`` on one list of pairs), so what varies between
    resamples (which identities are in the test set) is shared and cancels
    from the difference. A resample where either statistic is undefined is
    skipped (more than 5%: ValueError). Deterministic from ``seed``.
    """
    _check_level(level, n_boot)
    groups = Clusters.of(clusters, identities)
    arrays_a = _check_arrays(arrays_a, len(groups), "paired cluster bootstrap (system a)")
    arrays_b = _check_arrays(arrays_b, len(groups), "paired cluster bootstrap (system b)")
    a, b = float(statistic(*arrays_a)), float(statistic(*arrays_b))
    draws = identity_draws(len(groups.identities), n_boot, seed)
    values = np.stack([_replicates(statistic, groups, arrays, draws, materialise) for arrays in (arrays_a, arrays_b)],
                      axis=1)
    defined = ~np.isnan(values).any(axis=1)
    values[~defined] = np.nan
    what = "paired cluster bootstrap"
    return PairedInterval(
        difference=a - b,
        ci=_percentiles(values[:, 0] - values[:, 1], level, what),
        a=a,
        a_ci=_percentiles(values[:, 0], level, what),
        b=b,
        b_ci=_percentiles(values[:, 1], level, what),
        level=level,
        n_boot=n_boot,
        failures=int((~defined).sum()),
        identities=len(groups.identities),
    )
