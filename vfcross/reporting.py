"""Figures and tables written into ``reports/`` by the notebooks.

Figures are saved as small PNGs (:func:`save_figure`); every plotting function
returns its matplotlib figure so a notebook shows it inline too.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vfcross.config import VoiceConfig
from vfcross.preprocess.voices import read_audio, vad

DPI = 80


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save ``fig`` as a compact PNG (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def sample_grid(manifest: pd.DataFrame, identities: int = 6, faces: int = 3, voices: int = 2,
                seed: int = 0) -> plt.Figure:
    """Aligned face crops and spectrograms of a few identities, one identity per row."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(sorted(manifest["identity"].unique()), min(identities, manifest["identity"].nunique()),
                        replace=False)
    fig, axes = plt.subplots(len(chosen), faces + voices, figsize=(1.6 * (faces + voices), 1.6 * len(chosen)),
                             squeeze=False)
    for row, ident in zip(axes, sorted(chosen)):
        rows = manifest[manifest["identity"] == ident]
        picks = [("face", p) for p in rows[rows.modality == "face"]["cache_path"].head(faces)]
        picks += [("voice", p) for p in rows[rows.modality == "voice"]["cache_path"].head(voices)]
        for ax, (modality, path) in zip(row, picks):
            data = np.load(path)
            if modality == "face":
                ax.imshow(data)
            else:
                ax.imshow(data.astype(np.float32), origin="lower", aspect="auto", cmap="magma")
        for ax in row:
            ax.set_xticks([]), ax.set_yticks([])
        first = rows.iloc[0]
        row[0].set_ylabel(f"{ident}\n{first.gender} {first.nationality}\n{first.age if pd.notna(first.age) else ''}",
                          fontsize=7)
    fig.suptitle("aligned faces | spectrograms (normalised, frequency up)", fontsize=9)
    fig.tight_layout()
    return fig


def vad_figure(path: str | Path, cfg: VoiceConfig) -> plt.Figure:
    """A clip's waveform before VAD (dropped frames shaded) and after it."""
    audio = read_audio(path, cfg.sample_rate)
    kept, keep = vad(audio, cfg.sample_rate, cfg)
    hop = len(audio) / max(1, len(keep))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 3.5), sharex=True)
    t = np.arange(len(audio)) / cfg.sample_rate
    top.plot(t, audio, lw=0.4, color="tab:blue")
    for k in np.flatnonzero(~keep):
        top.axvspan(k * hop / cfg.sample_rate, (k + 1) * hop / cfg.sample_rate, color="tab:red", alpha=0.15, lw=0)
    top.set_title(f"before VAD ({len(audio) / cfg.sample_rate:.2f} s; red = dropped frames)", fontsize=9)
    bottom.plot(np.arange(len(kept)) / cfg.sample_rate, kept, lw=0.4, color="tab:green")
    bottom.set_title(f"after VAD ({len(kept) / cfg.sample_rate:.2f} s kept)", fontsize=9)
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    return fig


def training_curves(history: list[dict], title: str = "training") -> plt.Figure:
    """Loss components, accuracies and validation AUC per epoch of a run's history."""
    table = pd.DataFrame(history).set_index("epoch")
    losses = [c for c in ("loss", "ce", "center", "opl") if c in table]
    scores = [c for c in table.columns if c.endswith(("accuracy", "auc"))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    table[losses].plot(ax=left, marker=".")
    left.set_title(f"{title}: losses", fontsize=9)
    table[scores].plot(ax=right, marker=".")
    right.axhline(0.5, color="grey", lw=0.8, ls=":")
    right.set_ylim(0, 1)
    right.set_title(f"{title}: accuracy and validation AUC", fontsize=9)
    fig.tight_layout()
    return fig


def tsne_figure(vectors: np.ndarray, table: pd.DataFrame, identities: int = 12, seed: int = 0) -> plt.Figure:
    """2-D t-SNE of embeddings, coloured by identity, marked by modality (o face, x voice)."""
    from sklearn.manifold import TSNE

    chosen = sorted(table["identity"].unique())[:identities]
    mask = table["identity"].isin(chosen).to_numpy()
    points = TSNE(n_components=2, perplexity=min(30, max(5, mask.sum() // 4)), init="pca",
                  random_state=seed).fit_transform(vectors[mask])
    sub = table[mask]
    colours = dict(zip(chosen, plt.get_cmap("tab20").colors))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (ident, modality), idx in sub.groupby(["identity", "modality"]).indices.items():
        ax.scatter(points[idx, 0], points[idx, 1], color=colours[ident], marker="o" if modality == "face" else "x",
                   s=22 if modality == "face" else 30, alpha=0.85)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"t-SNE of {len(chosen)} test identities (o face, x voice)", fontsize=9)
    return fig
