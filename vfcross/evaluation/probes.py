"""Attribute probes: what a representation says about gender, nationality, age and traits.

A probe is a linear model (a ridge classifier for a category, ridge
regression for a continuous trait) fitted on the frozen vectors of some
identities and scored on the vectors of OTHER identities (identity-disjoint
folds), so it measures what the representation carries about an attribute
in general, not what it memorised about particular people. Each modality is
probed on its own: a voice representation for the attributes the voice was
rendered from, a face representation for the face's.

The same probes on simple input-level features (:func:`voice_input_features`:
pitch and MFCC statistics of the raw audio; :func:`face_input_features`:
downsampled pixels of the aligned crop) tell whether a limit lies in the data
(the attribute is hard to read even from the input) or in the learning (the
input carries it, the learned embedding does not).

Scores: for a category, accuracy beside the majority-class rate of the
scored folds (chance); for a trait, the coefficient of determination R^2
(0 = no better than the mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchaudio
from PIL import Image

from vfcross.config import VoiceConfig
from vfcross.preprocess.faces import load_face
from vfcross.preprocess.voices import read_audio, vad

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
    return [(_train_rows(len(groups), test), test) for test in _folds(groups, n_folds, seed)]


def _train_rows(n: int, test: np.ndarray) -> np.ndarray:
    """The rows not in ``test``."""
    return np.setdiff1d(np.arange(n), test)


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
        train = _train_rows(len(outer), fold)
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


# --- input-level features ----------------------------------------------------------------------
def _pitch_track(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fundamental frequency (Hz) of the voiced frames, by normalised autocorrelation (60-400 Hz).

    A 40 ms frame every 10 ms counts as voiced when its autocorrelation peak
    in the pitch range exceeds 0.5 of its energy.
    """
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    if len(audio) < frame:
        return np.empty(0)
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    lo, hi = int(sample_rate / 400), int(sample_rate / 60)
    lag = lo + np.argmax(acf[:, lo:hi], axis=1)
    strength = acf[np.arange(len(acf)), lag] / (acf[:, 0] + 1e-12)
    return sample_rate / lag[strength > 0.5]


def voice_input_features(paths: list[str] | np.ndarray, cfg: VoiceConfig) -> np.ndarray:
    """Simple acoustic statistics of each audio file: what the input offers a linear reader.

    Per clip (after the same VAD as training): pitch (median, quartiles and
    spread of log F0, voiced fraction), speech rate proxies (duration kept by
    the VAD, rate of energy peaks), and the mean and standard deviation of
    20 MFCCs. Returns an (n, 48) array.
    """
    mfcc = torchaudio.transforms.MFCC(sample_rate=cfg.sample_rate, n_mfcc=20,
                                      melkwargs={"n_fft": 512, "hop_length": 160, "n_mels": 40})
    rows = []
    for path in paths:
        audio = read_audio(path, cfg.sample_rate)
        kept, _ = vad(audio, cfg.sample_rate, cfg)
        f0 = _pitch_track(kept, cfg.sample_rate)
        log_f0 = np.log(f0) if len(f0) else np.full(1, np.log(150.0))
        q1, med, q3 = np.percentile(log_f0, [25, 50, 75])
        coeffs = mfcc(torch.from_numpy(np.ascontiguousarray(kept, dtype=np.float32))).numpy()
        envelope = np.convolve(np.abs(kept), np.ones(400) / 400, mode="same")[::160]
        peaks = np.sum((envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] > envelope[2:])
                       & (envelope[1:-1] > envelope.mean()))
        seconds = len(kept) / cfg.sample_rate
        rows.append(np.r_[med, q1, q3, log_f0.std(), len(f0) / max(1, len(kept) // 160), seconds,
                          peaks / max(seconds, 1e-3), len(audio) / cfg.sample_rate,
                          coeffs.mean(axis=1), coeffs.std(axis=1)])
    return np.asarray(rows, dtype=np.float64)


def face_input_features(cache_paths: list[str] | np.ndarray, side: int = 16) -> np.ndarray:
    """Downsampled aligned face crops (``side`` x ``side`` RGB, flattened): the pixels a linear reader sees."""
    rows = []
    for path in cache_paths:
        image = Image.fromarray(load_face(path)).resize((side, side), Image.Resampling.BOX)
        rows.append(np.asarray(image, dtype=np.float64).ravel() / 255.0)
    return np.asarray(rows)


def synthetic_attributes(table: pd.DataFrame, population_root: str | Path) -> pd.DataFrame:
    """The rendered attributes of each row's modality (voice rows: the voice's, face rows: the face's).

    Columns gender, nationality, age and one per trait, from the population's
    ``population.json``; rows in the table's order.
    """
    from vfcross.data.synthetic.population import TRAITS
    from vfcross.data.synthetic.writer import read_population

    people = {p.vox_id: p for p in read_population(population_root)}
    rows = []
    for identity, modality in zip(table["identity"], table["modality"]):
        attrs = getattr(people[identity], "voice" if modality == "voice" else "face")
        rows.append({"gender": attrs.gender, "nationality": attrs.nationality, "age": attrs.age_group,
                     **dict(zip(TRAITS, attrs.traits))})
    return pd.DataFrame(rows, index=table.index)


def metadata_attributes(table: pd.DataFrame) -> pd.DataFrame:
    """The attributes a dataset's metadata gives (gender, nationality, age; NA where unknown), in row order.

    On VoxCeleb1 these are the identity's, for both of its modalities (its
    meta table has no age: that column stays NA and is not probed).
    """
    return table[["gender", "nationality", "age"]].astype("object").where(table[["gender", "nationality", "age"]]
                                                                         .notna(), None)


def probe_report(representations: dict[str, np.ndarray], table: pd.DataFrame, attributes: pd.DataFrame,
                 voice_cfg: VoiceConfig | None = None, seed: int = 0, fit_split: str | None = None) -> pd.DataFrame:
    """Probe every representation per modality, beside the input-level features when ``voice_cfg`` is given.

    ``representations`` maps a name to vectors with one row per ``table``
    row (e.g. the backbone's embeddings, or the fusion's u for faces and v
    for voices); ``attributes`` has one row per table row (see
    :func:`synthetic_attributes`, :func:`metadata_attributes`). Returns one
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
