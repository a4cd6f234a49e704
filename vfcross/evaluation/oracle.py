"""The ceiling of the synthetic data: an oracle that knows every identity's true attributes.

For a voice-face pair the oracle scores the log-likelihood ratio of
:func:`vfcross.data.synthetic.population.oracle_score` between the attributes the
voice's identity was rendered from and those of the face's identity, for the
list being scored: on a list whose negatives share gender (G), nationality
(N), age (A) or all three (GNA) the shared attributes' terms are dropped,
since they are equally likely under both hypotheses there. That makes it the
Bayes score of each list. It sees no audio or pixels, so its AUC on a
verification list is what a perfect reader of the shared attributes reaches:
the ceiling a learned model is read against (chance is 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.config import SynthConfig
from vfcross.data.synthetic.population import Identity, oracle_score
from vfcross.data.synthetic.writer import (
    SPLIT_NAMES,
    read_population,
    read_population_config,
)
from vfcross.evaluation.evaluate import downsample_curve
from vfcross.evaluation.intervals import list_interval
from vfcross.evaluation.protocols import RESTRICTIONS, verification_pairs

#: Stand-in for a log-likelihood ratio of -inf (e.g. a gender mismatch), so
#: that metrics, which need finite scores, rank such pairs last, as ties.
IMPOSSIBLE = -1e9


def _check_restriction(restriction: str) -> tuple[str, ...]:
    """The attributes the negatives of a verification list share."""
    if restriction not in RESTRICTIONS:
        raise ValueError(f"restriction must be one of {list(RESTRICTIONS)}, got {restriction!r}")
    return RESTRICTIONS[restriction]


def oracle_pair_scores(
    people: list[Identity],
    cfg: SynthConfig,
    voice_identities: np.ndarray,
    face_identities: np.ndarray,
    restriction: str = "random",
) -> np.ndarray:
    """Oracle log-likelihood ratios of pairs given by the VoxCeleb1 ids of their voice and face.

    ``people`` and ``cfg`` describe the population (as :func:`sample_population`
    returns it, or read from a folder); ``restriction`` is the verification
    list the pairs come from ('random', 'G', 'N', 'A', 'GNA'). Each distinct
    (voice, face) identity pair is scored once. -inf becomes :data:`IMPOSSIBLE`.
    """
    shared = _check_restriction(restriction)
    voice_identities, face_identities = np.asarray(voice_identities, dtype=str), np.asarray(face_identities, dtype=str)
    if voice_identities.shape != face_identities.shape or voice_identities.ndim != 1:
        raise ValueError(
            f"voice and face identities must be 1-d and equally long, got {voice_identities.shape} and "
            f"{face_identities.shape}"
        )
    by_id = {p.vox_id: p for p in people}
    unknown = (set(voice_identities) | set(face_identities)) - set(by_id)
    if unknown:
        raise KeyError(f"identities not in the population: {sorted(unknown)[:5]}")
    pairs, index = np.unique(np.stack([voice_identities, face_identities], axis=1), axis=0, return_inverse=True)
    distinct = np.array([oracle_score(by_id[v].voice, by_id[f].face, cfg, shared) for v, f in pairs])
    return np.nan_to_num(distinct[index.ravel()], neginf=IMPOSSIBLE)


def oracle_scores(
    voice_identities: np.ndarray, face_identities: np.ndarray, population_root: str | Path, restriction: str = "random"
) -> np.ndarray:
    """Oracle log-likelihood ratios of pairs of a population folder's identities, for one verification list.

    As :func:`oracle_pair_scores`, reading the population and its
    configuration from ``population_root`` (its ``population.json``).
    """
    _check_restriction(restriction)
    cfg = read_population_config(population_root)
    people = read_population(population_root)
    try:
        return oracle_pair_scores(people, cfg, voice_identities, face_identities, restriction)
    except KeyError as error:
        raise KeyError(f"{error.args[0]} (population at {population_root})") from None


def population_table(people: list[Identity]) -> pd.DataFrame:
    """A minimal manifest-like table of a population: one voice row and one face row per identity.

    Columns ``identity`` (VoxCeleb1 id), ``modality``, ``split``, ``gender``,
    ``nationality``, ``age`` (the identity's true attributes, as the dataset
    writer puts them in the meta table), so the protocol generators of
    :mod:`vfcross.evaluation.protocols` can draw pairs for the oracle
    without rendering any data.
    """
    rows = [
        {
            "identity": p.vox_id,
            "modality": modality,
            "split": SPLIT_NAMES[p.split],
            "gender": p.face.gender,
            "nationality": p.face.nationality,
            "age": p.age,
        }
        for p in people
        for modality in ("voice", "face")
    ]
    return pd.DataFrame(rows, columns=["identity", "modality", "split", "gender", "nationality", "age"])


def oracle_evaluation(table: pd.DataFrame, population_root: str | Path, n_pairs: int, seed: int, n_boot: int,
                      split: str = "test", memory_gb: float = 2.0) -> tuple[dict[str, dict], list[str]]:
    """The oracle on every verification list that :func:`~vfcross.evaluation.evaluate.evaluate` scores, drawn as it
    draws them (same ``seed``): ``({list: {"auc", "eer", "auc_ci", "eer_ci", "roc"}}, notes)``; a list that cannot
    be drawn on this data is left out with a note."""
    cfg, people = read_population_config(population_root), read_population(population_root)
    identity = table["identity"].to_numpy(dtype=str)
    out, notes = {}, []
    for restriction in RESTRICTIONS:
        try:
            pairs = verification_pairs(table, restriction, n_pairs, seed, split)
        except ValueError as error:
            notes.append(f"oracle {restriction}: {error}")
            continue
        llr = lambda v, f, r=restriction: oracle_pair_scores(people, cfg, identity[v], identity[f], r)
        score = pairs.score(table, pair_scores=llr, memory_gb=memory_gb)
        entry = {"auc": score.auc, "eer": score.eer}
        for name in ("auc", "eer"):
            entry[f"{name}_ci"] = list_interval(score, name, f"oracle {restriction} {name}", notes, n_boot, seed)
        entry["roc"] = downsample_curve(*score.roc())
        out[restriction] = entry
    return out, notes
