"""Attribute probes: what a representation says about gender, nationality, age and traits.

A probe is a ridge model on standardised frozen vectors (scikit-learn's ``RidgeClassifierCV``/``RidgeCV``), fitted
on some identities and scored on OTHER ones, its strength chosen by identity-grouped inner folds: it measures what a
representation carries in general, not what it memorised of people. Input features (:mod:`.features`) beside it
tell a limit of the data from one of the learning. Scores: accuracy beside the majority-class rate, or R^2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeClassifierCV, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vfcross.config import VoiceConfig
from vfcross.evaluation.features import face_input_features, voice_input_features

#: Categorical attributes (probed with a classifier even when their values are numbers); outer and inner folds.
CATEGORIES = ("gender", "nationality", "age")
FOLDS, INNER_FOLDS = 5, 3
#: Regularisation strengths tried for the probes (chosen per outer fold by the inner cross-validation).
RIDGE_ALPHA = (1.0, 10.0, 100.0, 1000.0, 10000.0)


def _group_folds(groups: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Identity-disjoint (train, test) folds by scikit-learn's ``GroupKFold``, the identities relabelled at random
    from ``seed`` so that it orders them by seed (its ``shuffle`` needs scikit-learn 1.6)."""
    _, codes = np.unique(groups, return_inverse=True)
    shuffled = np.random.default_rng(seed).permutation(codes.max() + 1)[codes]
    return list(GroupKFold(n_folds).split(shuffled, groups=shuffled))


def _outer(groups: np.ndarray, n_folds: int, seed: int, fit: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fitted rows, scored rows) of each outer split: the rows ``fit`` marks against the rest (so no scored
    identity reaches a fit, not even in another fold), else identity-disjoint folds."""
    if fit is not None:
        fit = np.asarray(fit, dtype=bool)
        return [(np.flatnonzero(fit), np.flatnonzero(~fit))]
    return _group_folds(groups, n_folds, seed)


def _fit_predict(estimator, x: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, test: np.ndarray,
                 seed: int, **kwargs) -> np.ndarray:
    """Predictions of rows ``test`` by a ridge probe fitted on rows ``train``, its strength chosen by inner
    identity-grouped folds of ``train`` (so never by the identities it is scored on)."""
    inner = _group_folds(groups[train], INNER_FOLDS, seed + 1)
    probe = make_pipeline(StandardScaler(), estimator(alphas=RIDGE_ALPHA, cv=inner, **kwargs))
    return probe.fit(x[train], y[train]).predict(x[test])


def probe_category(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int = FOLDS, seed: int = 0,
                   fit: np.ndarray | None = None) -> tuple[float, float]:
    """Identity-disjoint accuracy of a ridge one-vs-rest classifier, and the majority-class rate: that of predicting
    the fitted rows' most frequent class, what a probe learning nothing from ``x`` scores."""
    x, y, groups = np.asarray(x, dtype=np.float64), np.asarray(y), np.asarray(groups)
    correct = majority = 0
    splits = _outer(groups, n_folds, seed, fit)
    for train, test in splits:
        values, counts = np.unique(y[train], return_counts=True)
        majority += int((y[test] == values[np.argmax(counts)]).sum())
        one_class = len(values) < 2  # nothing to tell apart: the probe can only say the one class it saw
        predicted = values[0] if one_class else _fit_predict(RidgeClassifierCV, x, y, groups, train, test, seed)
        correct += int((predicted == y[test]).sum())
    scored = sum(len(test) for _, test in splits)
    return correct / scored, majority / scored


def probe_trait(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int = FOLDS, seed: int = 0,
                fit: np.ndarray | None = None) -> float:
    """Identity-disjoint R^2 of a ridge regression predicting continuous ``y``, over all held-out predictions."""
    x, y, groups = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(groups)
    splits = _outer(groups, n_folds, seed, fit)
    predicted = [_fit_predict(RidgeCV, x, y, groups, train, test, seed, scoring="neg_mean_squared_error")
                 for train, test in splits]
    return float(r2_score(y[np.concatenate([test for _, test in splits])], np.concatenate(predicted)))


def probe_attributes(vectors: np.ndarray, attributes: pd.DataFrame, identities: np.ndarray,
                     seed: int = 0, fit: np.ndarray | None = None) -> list[dict]:
    """Probe ``vectors`` (one row per sample) for every column of ``attributes``, one dict per probe: :data:`CATEGORIES`
    and text columns by accuracy beside chance, numeric ones by R^2; NA rows are left out of a column's probe. A
    column with one class, fewer than :data:`FOLDS` identities (with ``fit``: fewer than 3 fitted, or none scored)
    is skipped."""
    vectors, identities = np.asarray(vectors, dtype=np.float64), np.asarray(identities)
    if len(vectors) != len(attributes) or len(vectors) != len(identities):
        raise ValueError(f"vectors ({len(vectors)}), attributes ({len(attributes)}) and identities "
                         f"({len(identities)}) must have one row per sample")
    results = []
    for column in attributes.columns:
        known = attributes[column].notna().to_numpy()
        y, groups = attributes[column].to_numpy()[known], identities[known]
        fitted = None if fit is None else np.asarray(fit, dtype=bool)[known]
        if (len(np.unique(groups)) < FOLDS if fitted is None else
                len(np.unique(groups[fitted])) < INNER_FOLDS or fitted.all()):
            continue
        if column in CATEGORIES or not pd.api.types.is_numeric_dtype(attributes[column]):
            if len(np.unique(y.astype(str))) < 2:
                continue
            score, chance = probe_category(vectors[known], y.astype(str), groups, seed=seed, fit=fitted)
            metric = "accuracy"
        else:
            metric, score, chance = "r2", probe_trait(vectors[known], y, groups, seed=seed, fit=fitted), 0.0
        results.append({"attribute": column, "metric": metric, "score": score, "chance": chance, "identities":
                        len(np.unique(groups if fitted is None else groups[~fitted])), "samples": len(y)})
    return results


def probe_report(representations: dict[str, np.ndarray], table: pd.DataFrame, attributes: pd.DataFrame,
                 voice_cfg: VoiceConfig | None = None, seed: int = 0, fit_split: str | None = None) -> pd.DataFrame:
    """Probe every representation (vectors with one row per ``table`` row) per modality, beside the input features
    when ``voice_cfg`` is given; ``attributes`` has one row per table row. With ``fit_split`` (notebook 04: "val")
    every probe is fitted on that split's rows and scored on the others, else identity-disjoint CV. One row per
    (representation, modality, attribute)."""
    table, attributes = table.reset_index(drop=True), attributes.reset_index(drop=True)
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
        fit = None if fit_split is None else (table["split"][mask] == fit_split).to_numpy()
        for name, x in features.items():
            for r in probe_attributes(x, attributes[mask].reset_index(drop=True), identities[mask], seed, fit):
                rows.append({"representation": name, "modality": modality, **r, "score": round(r["score"], 4),
                             "chance": round(r["chance"], 4)})
    return pd.DataFrame(rows, columns=["representation", "modality", "attribute", "metric", "score", "chance",
                                       "identities", "samples"])
