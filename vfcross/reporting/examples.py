"""Worked examples for the reports: one voice query and the faces ranked for it (Fig. 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vfcross.preprocess import load_face, load_spectrogram
from vfcross.reporting.figures import retrieval_panel


def retrieval_example(vectors: np.ndarray, table: pd.DataFrame, seed: int = 0, top: int = 5):
    """Fig. 7: a random test voice (drawn from ``seed``) beside the ``top`` faces ranked highest for it, from the
    test-time embeddings ``vectors`` of ``table``'s rows."""
    table = table.reset_index(drop=True)
    voices = np.flatnonzero((table["modality"] == "voice").to_numpy())
    faces = np.flatnonzero((table["modality"] == "face").to_numpy())
    query = voices[np.random.default_rng(seed).integers(len(voices))]
    ranked = faces[np.argsort(-(vectors[faces] @ vectors[query]))[:top]]
    identity = table["identity"].to_numpy()
    return retrieval_panel(load_spectrogram(table["cache_path"][query]),
                           [load_face(table["cache_path"][i]) for i in ranked],
                           list(identity[ranked] == identity[query]), f"query: a voice of {identity[query]}")
