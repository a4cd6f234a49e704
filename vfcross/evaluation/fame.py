"""The FAME protocol (MAV-Celeb, or a bilingual synthetic population): face-voice verification across languages.

A model trained on the clips of ONE language (:func:`heard_only`) is scored on test identities' clips of the language
it heard and of the unheard one; the challenge's overall score is the mean of the four EERs. Every number has an
identity-level interval (a pair belongs to its voice's identity). Submission files are named and scored as the
organisers' ``computeScore.py`` does (mavceleb_baseline e3c56df): L2 distances, lower = same person.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.evaluation.intervals import LEVEL, cluster_values, interval, list_interval
from vfcross.evaluation.protocols import verification_pairs
from vfcross.metrics import eer, roc_auc
from vfcross.scores import AllPairs

HEARD, UNHEARD = "heard", "unheard"
#: The languages of each MAV-Celeb version (English and one other), as the organisers' computeScore.py pairs them.
MAVCELEB_LANGUAGES: dict[str, tuple[str, str]] = {"v1": ("English", "Urdu"), "v2": ("English", "Hindi"),
                                                  "v3": ("English", "German")}
#: How the challenge combines the four EERs into its one score.
OVERALL = "mean of the four EERs (FAME)"
#: Why a FAME result has no interval when its pairs come from one identity.
ONE_IDENTITY = "one test identity"


def heard_only(manifest: pd.DataFrame, language: str, split: str = "test") -> pd.DataFrame:
    """The rows a model trained on ``language`` may see: other languages' clips (or of none recorded) leave every
    split but ``split``, whose rows all stay; faces stay. ValueError when no training voice of ``language`` is left."""
    voice = manifest["modality"].eq("voice").to_numpy(dtype=bool)
    spoken = manifest["language"].eq(language).fillna(False).to_numpy(dtype=bool)
    evaluated = manifest["split"].eq(split).fillna(False).to_numpy(dtype=bool)
    kept = manifest[~voice | spoken | evaluated].reset_index(drop=True)
    training = kept["split"].eq("train").fillna(False) & kept["modality"].eq("voice")
    if not training.any():
        found = sorted(manifest.loc[voice, "language"].dropna().unique())
        raise ValueError(f"no training clips in {language!r}; the manifest's clips are in {found or 'no language'}")
    return kept


def evaluation_rows(table: pd.DataFrame, language: str) -> np.ndarray:
    """Mask of the rows scored for test language ``language``: its clips, and the faces of its videos (a face that
    records no language counts for every language)."""
    is_voice = table["modality"].eq("voice").to_numpy(dtype=bool)
    spoken = table["language"].eq(language).fillna(False).to_numpy(dtype=bool)
    unknown = table["language"].isna().to_numpy(dtype=bool)
    return (is_voice & spoken) | (~is_voice & (spoken | unknown))


def languages_of(table: pd.DataFrame) -> tuple[str, ...]:
    """The languages of a manifest's clips, English first (the challenge's pairs are English and another)."""
    found = set(table.loc[table["modality"].eq("voice"), "language"].dropna())
    return tuple(sorted(found, key=lambda lang: (lang != "English", lang)))


def _over_groups(metric, combine, groups: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                 sample_weight: np.ndarray | None = None) -> float:
    """``combine`` of ``metric`` on each group of pairs (weights as the identity bootstrap passes them): the mean
    EER is the overall score, unheard (group 1) minus heard (group 0) a gap."""
    values = []
    for m in (groups == group for group in np.unique(groups)):
        values.append(metric(scores[m], labels[m], sample_weight=None if sample_weight is None else sample_weight[m]))
    return float(combine(values))


_mean_eer = functools.partial(_over_groups, eer, np.mean)


def fame_evaluation(systems: Mapping[str, tuple[np.ndarray, pd.DataFrame]], languages: tuple[str, ...] | None = None,
                    n_pairs: int = 2000, seed: int = 0, n_boot: int = 1000, split: str = "test") -> dict:
    """Heard and unheard verification of one model per training language (``systems``: language -> (vectors,
    table) of the ``split`` rows, with a ``language`` column), each on the same ``n_pairs`` per test language: per
    model and test language ``results``, ``gaps`` (unheard - heard), ``overall`` (None with one model), ``notes``."""
    languages = tuple(systems) if languages is None else tuple(languages)
    if len(languages) != 2 or len(set(languages)) != 2:
        raise ValueError(f"the FAME protocol compares two languages, got {list(languages)}")
    unknown = [lang for lang in systems if lang not in languages]
    if unknown or not systems:
        raise ValueError(f"models of {unknown or 'no language'}: the protocol compares {list(languages)}")
    notes: list[str] = []
    results, parts = [], []
    for train in (lang for lang in languages if lang in systems):
        vectors, table = systems[train]
        if len(vectors) != len(table):
            raise ValueError(f"{train}: {len(vectors)} vectors for {len(table)} table rows")
        for test in (train, *(lang for lang in languages if lang != train)):
            rows = evaluation_rows(table, test)
            sub = table[rows].reset_index(drop=True)
            pairs = verification_pairs(sub, "random", n_pairs, seed, split)
            pairs = pairs.explicit() if isinstance(pairs, AllPairs) else pairs  # fewer than n_pairs: every pair
            scored = pairs.score(sub, vectors[rows])
            scores, clusters = scored.arrays[0], sub["identity"].to_numpy(dtype=str)[pairs.voice]
            entry = {"train": train, "test": test, "condition": HEARD if test == train else UNHEARD}
            for name in ("eer", "auc"):
                entry[name] = scored.value(name)
                entry[f"{name}_ci"] = list_interval(scored, name, f"trained on {train}, tested on {test}: "
                                                    f"{name.upper()}", notes, n_boot, seed, ONE_IDENTITY)
            results.append({**entry, "pairs": len(pairs), "identities": int(np.unique(clusters).size)})
            parts.append((clusters, scores, pairs.labels))
    clusters, scores, labels = (np.concatenate(column) for column in zip(*parts))
    groups = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
    overall = None
    if len(systems) == len(languages):
        values = lambda: cluster_values(_mean_eer, clusters, groups, scores, labels, n_boot=n_boot, seed=seed)
        overall = {"eer": _mean_eer(groups, scores, labels),
                   "ci": interval(values, "overall score", notes, len(np.unique(clusters)), ONE_IDENTITY),
                   "definition": OVERALL}
    gaps = {}
    for index, entry in enumerate(results[::2]):
        keep = (groups == 2 * index) | (groups == 2 * index + 1)
        arrays = (groups[keep] - 2 * index, scores[keep], labels[keep])  # group 0 heard, 1 unheard
        gap = gaps[entry["train"]] = {}
        for name, metric in (("eer", eer), ("auc", roc_auc)):
            statistic = functools.partial(_over_groups, metric, lambda v: v[1] - v[0])
            values = lambda s=statistic: cluster_values(s, clusters[keep], *arrays, n_boot=n_boot, seed=seed)
            gap[name] = statistic(*arrays)
            gap[f"{name}_ci"] = interval(values, f"trained on {entry['train']}: unheard - heard {name.upper()}",
                                         notes, len(np.unique(clusters[keep])), ONE_IDENTITY)
    settings = {"n_pairs": n_pairs, "seed": seed, "n_boot": n_boot, "split": split, "level": LEVEL,
                "interval": "identity cluster bootstrap (a pair belongs to its voice's identity)",
                "negatives": "random (another test identity's face)"}
    return {"languages": list(languages), "results": results, "gaps": gaps, "overall": overall, "notes": notes,
            "settings": settings}


def submission_name(train_language: str, test_language: str, version: str) -> str:
    """File name of the scores of the model trained on ``train_language`` for ``test_language``'s trial list, e.g.
    ``sub_score_v3_German_unheard.txt``; ValueError when MAV-Celeb ``version`` does not hold both languages."""
    languages = MAVCELEB_LANGUAGES.get(version)
    if languages is None or not {train_language, test_language} <= set(languages):
        raise ValueError(f"multilingual.mavceleb_version: MAV-Celeb {version} holds "
                         f"{' and '.join(languages) if languages else 'no such version'}, not "
                         f"{' and '.join(sorted({train_language, test_language}))}: set the version of the copy")
    condition = HEARD if train_language == test_language else UNHEARD
    return f"sub_score_{version}_{test_language}_{condition}.txt"


def l2_distances(voice_vectors: np.ndarray, face_vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 distance of voice and face embeddings, the challenge's score (lower = same person); on unit
    vectors ``sqrt(2 - 2 cos)``, so EERs agree with cosine scoring."""
    voice_vectors, face_vectors = np.asarray(voice_vectors, float), np.asarray(face_vectors, float)
    if voice_vectors.shape != face_vectors.shape or voice_vectors.ndim != 2:
        raise ValueError(f"voice and face embeddings must be (trials, d) alike, got {voice_vectors.shape} "
                         f"and {face_vectors.shape}")
    return np.linalg.norm(voice_vectors - face_vectors, axis=1)


def write_submission(path: str | os.PathLike, keys: pd.Series | list[str], scores: np.ndarray) -> Path:
    """Write one ``<key> <score>`` line per trial, in the trial list's order, six decimals. ValueError on lengths
    that differ, a repeated, empty or blank-holding key, or a score that is not finite: each key is scored once."""
    keys = [str(k) for k in keys]
    scores = np.asarray(scores, dtype=float).ravel()
    if len(keys) != len(scores):
        raise ValueError(f"{len(keys)} keys but {len(scores)} scores")
    bad = next((k for k in keys if not k or any(c.isspace() for c in k)), None)
    if bad is not None:
        raise ValueError(f"trial key {bad!r} is empty or holds a blank")
    if len(set(keys)) != len(keys):
        raise ValueError("a trial key is repeated")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are not finite")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} {score:f}\n" for key, score in zip(keys, scores)))
    return path

