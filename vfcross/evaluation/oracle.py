"""The ceiling of the synthetic data: an oracle that knows every identity's true attributes.

It scores a voice-face pair by the log-likelihood ratio of the attributes both identities were rendered from
(:func:`vfcross.data.synthetic.population.oracle_score`), leaving out those a list's negatives share: the Bayes score
of each list, the AUC a perfect reader of the attributes reaches without audio or pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.config import SynthConfig
from vfcross.data.synthetic.population import Identity, oracle_score
from vfcross.data.synthetic.writer import read_population, read_population_config
from vfcross.evaluation.evaluate import downsample_curve
from vfcross.evaluation.intervals import list_interval
from vfcross.evaluation.protocols import RESTRICTIONS, verification_pairs

#: Stand-in for a log-likelihood ratio of -inf (e.g. a gender mismatch): metrics need finite scores; such pairs
#: rank last, as ties.
IMPOSSIBLE = -1e9


def oracle_pair_scores(people: list[Identity], cfg: SynthConfig, voice_identities: np.ndarray,
                       face_identities: np.ndarray, restriction: str = "random") -> np.ndarray:
    """Oracle log-likelihood ratios of pairs given by the VoxCeleb1 ids of their voice and face, for the list
    ``restriction`` of the population ``people`` drawn with ``cfg``; each distinct identity pair is scored once."""
    if restriction not in RESTRICTIONS:
        raise ValueError(f"restriction must be one of {list(RESTRICTIONS)}, got {restriction!r}")
    voice_identities, face_identities = np.asarray(voice_identities, dtype=str), np.asarray(face_identities, dtype=str)
    if voice_identities.shape != face_identities.shape or voice_identities.ndim != 1:
        raise ValueError(f"voice and face identities must be 1-d and equally long, got {voice_identities.shape} "
                         f"and {face_identities.shape}")
    by_id = {p.vox_id: p for p in people}
    unknown = (set(voice_identities) | set(face_identities)) - set(by_id)
    if unknown:
        raise KeyError(f"identities not in the population: {sorted(unknown)[:5]}")
    pairs, index = np.unique(np.stack([voice_identities, face_identities], axis=1), axis=0, return_inverse=True)
    distinct = np.array([oracle_score(by_id[v].voice, by_id[f].face, cfg, RESTRICTIONS[restriction])
                         for v, f in pairs])
    return np.nan_to_num(distinct[index.ravel()], neginf=IMPOSSIBLE)


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
        cis = {f"{name}_ci": list_interval(score, name, f"oracle {restriction} {name}", notes, n_boot, seed)
               for name in ("auc", "eer")}
        out[restriction] = {"auc": score.auc, "eer": score.eer, **cis, "roc": downsample_curve(*score.roc())}
    return out, notes
