"""The ceiling of the synthetic data: an oracle that knows every identity's true attributes.

For a voice-face pair the oracle scores the log-likelihood ratio of
:func:`vfcross.data.synthetic.population.oracle_score` between the attributes the
voice's identity was rendered from and those of the face's identity. It sees
no audio or pixels, so its AUC on a verification list is what a perfect
reader of the shared attributes reaches: the ceiling a learned model is read
against (chance is 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vfcross.data.synthetic.population import oracle_score
from vfcross.data.synthetic.writer import read_population, read_population_config

#: Stand-in for a log-likelihood ratio of -inf (e.g. a gender mismatch), so
#: that metrics, which need finite scores, rank such pairs last, as ties.
IMPOSSIBLE = -1e9


def oracle_scores(voice_identities: np.ndarray, face_identities: np.ndarray, population_root: str | Path
                  ) -> np.ndarray:
    """Oracle log-likelihood ratios of pairs given by the VoxCeleb1 ids of their voice and face."""
    cfg = read_population_config(population_root)
    people = {p.vox_id: p for p in read_population(population_root)}
    unknown = (set(voice_identities) | set(face_identities)) - set(people)
    if unknown:
        raise KeyError(f"identities not in the population at {population_root}: {sorted(unknown)[:5]}")
    scores = np.array([oracle_score(people[v].voice, people[f].face, cfg)
                       for v, f in zip(voice_identities, face_identities)])
    return np.nan_to_num(scores, neginf=IMPOSSIBLE)
