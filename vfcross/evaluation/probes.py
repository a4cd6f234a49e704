"""Attribute probes: what a representation says about gender, nationality, age and traits.

A probe is a linear model (a ridge classifier for a category, ridge
regression for a continuous trait) fitted on the frozen vectors of some
identities and scored on the vectors of OTHER identities (identity-disjoint
folds), so it measures what the representation carries about an attribute
in general, not what it memorised about particular people. Each modality is
probed on its own: a voice representation for the attributes the voice was
rendered from, a face representation for the face's.

The same probes on simple input-level features (:mod:`vfcross.evaluation.features`:
pitch and MFCC statistics of the raw audio, downsampled pixels of the aligned crop) tell whether a limit lies in the data
(the attribute is hard to read even from the input) or in the learning (the
input carries it, the learned embedding does not).

Scores: for a category, accuracy beside the majority-class rate of the
scored folds (chance); for a trait, the coefficient of determination R^2
(0 = no better than the mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.config import VoiceConfig
from vfcross.evaluation.features import face_input_features, voice_input_features

#: Categorical attributes (probed with a linear classifier even when their values are numbers).
CATEGORIES = ("gender", "nationality", "age")
#: Folds of the identity-disjoint cross-validation.
FOLDS = 5


@dataclass(frozen=True)
class ProbeResult:
    """One probe: ``score`` (accuracy or R^2), its chance level and the number of identities scored."""

    attribute: str
    kind: str  # "accuracy" | "r2"
    score: float
    chance: float
    identities: int
    samples: int


def _folds(groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Identity-disjoint folds: each identity's samples all fall in one fold."""
    identities = np.unique(groups)
    order = np.random.default_rng(seed).permutation(identities)
    fold_of = {identity: i % n_folds for i, identity in enumerate(order)}
    assignment = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(assignment == k) for k in range(n_folds)]


def _outer(groups: np.ndarray, n_folds: int, seed: int, fit: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fitted rows, scored rows) of each outer split: the rows ``fit`` marks against the rest, else CV folds.

    With ``fit`` (a boolean per row) the probe is fitted on those rows only and
    scored on the others, so the scored identities never reach its fit, not
    even in another fold; without it, identity-disjoint cross-validation.
    """
    if fit is not None:
        fit = np.asarray(fit, dtype=bool)
        return [(np.flatnonzero(fit), np.flatnonzero(~fit))]
    return [(np.setdiff1d(np.arange(len(groups)), test), test) for test in _folds(groups, n_folds, seed)]


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination of ``predicted`` for ``y``."""
    return float(1.0 - ((y - predicted) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))


#: Regularisation strengths tried for the linear probes (chosen per fold by inner cross-validation).
RIDGE_ALPHA = (1.0, 10.0, 100.0, 1000.0, 10000.0)


class _Decompositions:
    """SVDs of the standardised training rows of one feature matrix, each computed once.

    Every attribute probed on the same vectors uses the same folds, so the
    decomposition of a fold's training rows serves them all.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._cache: dict[bytes, tuple[np.ndarray, ...]] = {}

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """(mean, std, U, s, V^T) of the standardised ``x[rows]``."""
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key not in self._cache:
            train = self.x[rows]
            mean, std = train.mean(axis=0), train.std(axis=0) + 1e-8
            self._cache[key] = (mean, std, *np.linalg.svd((train - mean) / std, full_matrices=False))
        return self._cache[key]


def _ridge_predictions(svd: _Decompositions, train: np.ndarray, ytr: np.ndarray, test: np.ndarray,
                       alphas: tuple[float, ...] = RIDGE_ALPHA) -> np.ndarray:
    """Ridge predictions for rows ``test`` at every strength in ``alphas``: (len(alphas), n_test, targets).

    Features are standardised on the ``train`` rows and the targets centred
    (an unpenalised intercept), as scikit-learn's ``Ridge`` does; one SVD of
    the training features gives the solutions for all strengths at once
    (w = V diag(s / (s^2 + alpha)) U^T y), which made a run's probes several
    times faster than refitting per strength.
    """
    mean, std, u, sv, vt = svd.get(train)
    ytr = ytr.reshape(len(ytr), -1)
    y_mean = ytr.mean(axis=0)
    uty = u.T @ (ytr - y_mean)
    projected = ((svd.x[test] - mean) / std) @ vt.T
    return np.stack([projected @ ((sv / (sv**2 + alpha))[:, None] * uty) + y_mean for alpha in alphas])


def _one_hot(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Targets of a one-vs-rest least-squares classifier: +1 for the class, -1 for the others."""
    return np.where(y[:, None] == classes[None, :], 1.0, -1.0)


def _inner_best(svd: _Decompositions, outer: np.ndarray, targets: np.ndarray, groups: np.ndarray, seed: int,
                score) -> int:
    """Index of the ridge strength with the best inner identity-disjoint cross-validated ``score``.

    The inner folds split the ``outer`` training rows (nested inside each
    outer fold, so the probe's strength is chosen without ever looking at the
    identities it is scored on). ``score(predictions, positions)`` rates one
    strength's predictions of the rows at ``positions`` within ``outer``.
    """
    totals = np.zeros(len(RIDGE_ALPHA))
    for fold in _folds(groups[outer], 3, seed + 1):
        train = np.setdiff1d(np.arange(len(outer)), fold)
        predictions = _ridge_predictions(svd, outer[train], targets[outer[train]], outer[fold])
        totals += [score(pred, fold) for pred in predictions]
    return int(np.argmax(totals))


def probe_category(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int = FOLDS,
                   seed: int = 0, svd: _Decompositions | None = None,
                   fit: np.ndarray | None = None) -> tuple[float, float]:
    """Identity-disjoint cross-validated accuracy of a linear probe, and the majority-class rate.

    The probe is a least-squares (ridge) one-vs-rest linear classifier: it
    reads what a linear boundary can read, like a logistic one, in closed
    form. Its strength is chosen per outer fold by an inner identity-disjoint
    cross-validation. The majority rate is that of predicting, in each test
    fold, the most frequent class of its training folds: what a probe
    learning nothing from ``x`` scores. With ``fit`` the probe is fitted on
    the rows it marks and scored on the rest (see :func:`_outer`).
    """
    svd = svd or _Decompositions(np.asarray(x, dtype=np.float64))
    classes = np.unique(y)
    targets = _one_hot(y, classes)
    correct = majority = 0.0
    splits = _outer(groups, n_folds, seed, fit)
    for train, test in splits:
        values, counts = np.unique(y[train], return_counts=True)
        majority += float((y[test] == values[np.argmax(counts)]).sum())
        if len(values) < 2:  # nothing to tell apart: the probe can only say the one class it saw
            correct += float((y[test] == values[0]).sum())
            continue
        local = y[train]
        best = _inner_best(svd, train, targets, groups, seed,
                           lambda pred, rows: float((classes[pred.argmax(1)] == local[rows]).sum()))
        predictions = _ridge_predictions(svd, train, targets[train], test, (RIDGE_ALPHA[best],))[0]
        correct += float((classes[predictions.argmax(1)] == y[test]).sum())
    scored = sum(len(test) for _, test in splits)
    return correct / scored, majority / scored


def probe_trait(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int = FOLDS, seed: int = 0,
                svd: _Decompositions | None = None, fit: np.ndarray | None = None) -> float:
    """Identity-disjoint cross-validated R^2 of a ridge probe predicting continuous ``y``.

    The ridge strength is chosen per outer fold by an inner identity-disjoint
    cross-validation (lowest squared error); R^2 is computed over all
    held-out predictions (with ``fit``: fitted on those rows, R^2 over the rest).
    """
    svd = svd or _Decompositions(np.asarray(x, dtype=np.float64))
    predicted = np.full(len(y), np.nan)
    for train, test in _outer(groups, n_folds, seed, fit):
        local = y[train]
        best = _inner_best(svd, train, y, groups, seed,
                           lambda pred, rows: -float(((pred[:, 0] - local[rows]) ** 2).sum()))
        predicted[test] = _ridge_predictions(svd, train, local, test, (RIDGE_ALPHA[best],))[0][:, 0]
    scored = ~np.isnan(predicted)
    return _r2(y[scored], predicted[scored])


def probe_attributes(vectors: np.ndarray, attributes: pd.DataFrame, identities: np.ndarray,
                     seed: int = 0, fit: np.ndarray | None = None) -> list[ProbeResult]:
    """Probe ``vectors`` (one row per sample) for every column of ``attributes``.

    Columns named in :data:`CATEGORIES` (or holding text) are probed as
    categories, numeric ones as traits. Samples with NA in a column are left
    out of that column's probe; a column with fewer than two classes (or
    fewer than ``FOLDS`` identities; with ``fit``, fewer than 3 fitted
    identities for the inner folds, or none scored) is skipped. ``fit``
    marks the rows a probe is fitted on; the others are scored (see
    :func:`_outer`), and ``identities`` in a result counts the scored ones.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    identities = np.asarray(identities)
    if len(vectors) != len(attributes) or len(vectors) != len(identities):
        raise ValueError(f"vectors ({len(vectors)}), attributes ({len(attributes)}) and identities "
                         f"({len(identities)}) must have one row per sample")
    shared: dict[bytes, _Decompositions] = {}

    def decompositions(known: np.ndarray) -> _Decompositions:
        """The SVD cache of the rows with a known value (the same for every attribute known everywhere)."""
        return shared.setdefault(known.tobytes(), _Decompositions(vectors[known]))

    results = []
    for column in attributes.columns:
        known = attributes[column].notna().to_numpy()
        y = attributes[column].to_numpy()[known]
        groups = identities[known]
        fitted = None if fit is None else np.asarray(fit, dtype=bool)[known]
        if (len(np.unique(groups)) < FOLDS if fitted is None else
                len(np.unique(groups[fitted])) < 3 or fitted.all()):
            continue
        scored = len(np.unique(groups if fitted is None else groups[~fitted]))
        categorical = column in CATEGORIES or not pd.api.types.is_numeric_dtype(attributes[column])
        if categorical:
            y = y.astype(str)
            if len(np.unique(y)) < 2:
                continue
            score, chance = probe_category(vectors[known], y, groups, seed=seed, svd=decompositions(known),
                                           fit=fitted)
            results.append(ProbeResult(column, "accuracy", score, chance, scored, len(y)))
        else:
            score = probe_trait(vectors[known], y.astype(np.float64), groups, seed=seed, svd=decompositions(known),
                                fit=fitted)
            results.append(ProbeResult(column, "r2", score, 0.0, scored, len(y)))
    return results


def probe_report(representations: dict[str, np.ndarray], table: pd.DataFrame, attributes: pd.DataFrame,
                 voice_cfg: VoiceConfig | None = None, seed: int = 0, fit_split: str | None = None) -> pd.DataFrame:
    """Probe every representation per modality, beside the input-level features when ``voice_cfg`` is given.

    ``representations`` maps a name to vectors with one row per ``table``
    row (e.g. the backbone's embeddings, or the fusion's u for faces and v
    for voices); ``attributes`` has one row per table row (see
    :mod:`vfcross.data.attributes`). Returns one
    row per (representation, modality, attribute): ``representation,
    modality, attribute, metric, score, chance, identities, samples``.
    With ``fit_split`` (notebook 04: ``"val"``) every probe is fitted on that
    split's rows and scored on the others (the test identities), so no
    scored identity reaches a fit; without it, identity-disjoint CV.
    """
    table = table.reset_index(drop=True)
    attributes = attributes.reset_index(drop=True)
    identities = table["identity"].to_numpy()
    rows = []
    for modality in ("voice", "face"):
        mask = (table["modality"] == modality).to_numpy()
        if not mask.any():
            continue
        features = {name: np.asarray(vectors)[mask] for name, vectors in representations.items()}
        if voice_cfg is not None:
            features = {"input features": (voice_input_features(table["path"][mask], voice_cfg) if modality == "voice"
                                           else face_input_features(table["cache_path"][mask])), **features}
        for name, x in features.items():
            fit = None if fit_split is None else (table["split"][mask] == fit_split).to_numpy()
            for r in probe_attributes(x, attributes[mask].reset_index(drop=True), identities[mask], seed=seed,
                                      fit=fit):
                rows.append({"representation": name, "modality": modality, "attribute": r.attribute,
                             "metric": r.kind, "score": round(r.score, 4), "chance": round(r.chance, 4),
                             "identities": r.identities, "samples": r.samples})
    return pd.DataFrame(rows, columns=["representation", "modality", "attribute", "metric", "score", "chance",
                                       "identities", "samples"])
