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
from vfcross.preprocess import load_face, load_spectrogram
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
            if modality == "face":
                ax.imshow(load_face(path))
            else:
                ax.imshow(load_spectrogram(path), origin="lower", aspect="auto", cmap="magma")
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


def gate_histogram(k: np.ndarray) -> plt.Figure:
    """Distribution of the fusion gate k (the weight of the face projection; 1 - k weighs the voice)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(np.ravel(k), bins=50, range=(0, 1), color="tab:purple", alpha=0.8)
    ax.axvline(float(np.mean(k)), color="black", lw=1, label=f"mean {np.mean(k):.2f}")
    ax.set_xlabel("k (0 = rely on the voice, 1 = rely on the face)")
    ax.set_ylabel("gate entries")
    ax.legend(fontsize=8)
    ax.set_title("attention gate on validation pairs", fontsize=9)
    fig.tight_layout()
    return fig


def similarity_histograms(panels: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """Cosine-similarity histograms of positive vs negative voice-face pairs, one panel per model."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3), squeeze=False)
    for ax, (title, (scores, labels)) in zip(axes[0], panels.items()):
        labels = np.asarray(labels).astype(bool)
        bins = np.linspace(min(scores.min(), -0.2), max(scores.max(), 0.2), 50)
        ax.hist(scores[~labels], bins=bins, density=True, alpha=0.6, label="different identity")
        ax.hist(scores[labels], bins=bins, density=True, alpha=0.6, label="same identity")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("cosine similarity")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- Figures of the evaluation (Tables 2-5, Figs. 6-7) ------------------------------------------------
def roc_det_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """ROC and DET curves of several scorers; ``curves`` maps a label to (fpr, tpr)."""
    from scipy.stats import norm

    fig, (roc, det) = plt.subplots(1, 2, figsize=(9, 3.8))
    for label, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr), np.asarray(tpr)
        roc.plot(fpr, tpr, label=label)
        keep = (fpr > 0) & (fpr < 1) & (tpr > 0) & (tpr < 1)
        det.plot(norm.ppf(fpr[keep]), norm.ppf(1 - tpr[keep]), label=label)
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    roc.set_xlabel("false positive rate"), roc.set_ylabel("true positive rate"), roc.set_title("ROC", fontsize=9)
    ticks = np.array([0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    det.set_xticks(norm.ppf(ticks), [f"{t:.0%}" for t in ticks])
    det.set_yticks(norm.ppf(ticks), [f"{t:.0%}" for t in ticks])
    det.plot(norm.ppf([0.01, 0.99]), norm.ppf([0.01, 0.99]), color="grey", lw=0.8, ls=":")
    det.set_xlabel("false acceptance rate"), det.set_ylabel("false rejection rate")
    det.set_title("DET (EER where a curve meets the diagonal)", fontsize=9)
    roc.legend(fontsize=7)
    fig.tight_layout()
    return fig


def grouped_auc_figure(groups: dict[str, dict[str, float]], ci: dict[str, dict[str, tuple]] | None = None
                       ) -> plt.Figure:
    """Bars of verification AUC per negative restriction; ``groups`` maps a row label to {G: auc, ...} in %."""
    keys = ["random", "G", "N", "A", "GNA"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(groups)
    for i, (label, values) in enumerate(groups.items()):
        x = np.arange(len(keys)) + i * width
        heights = [values.get(k, np.nan) for k in keys]
        errors = None
        if ci and label in ci:
            errors = np.array([[h - ci[label][k][0], ci[label][k][1] - h] if k in ci[label] else [0, 0]
                               for h, k in zip(heights, keys)]).T
        ax.bar(x, heights, width, yerr=errors, capsize=2, label=label)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys)
    ax.set_ylabel("AUC (%)"), ax.set_ylim(40, 100)
    ax.set_title("verification AUC by negative restriction (Table 3)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def matching_figure(curves: dict[str, dict[int, float]]) -> plt.Figure:
    """1:N matching accuracy (%) against N with the chance line 100/N (Fig. 6)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    n = np.arange(2, 11)
    for label, acc in curves.items():
        xs = sorted(acc)
        ax.plot(xs, [acc[x] for x in xs], marker="o", ms=3, label=label)
    ax.plot(n, 100 / n, color="grey", ls=":", label="chance (1/N)")
    ax.set_xlabel("N (gallery size)"), ax.set_ylabel("accuracy (%)"), ax.set_ylim(0, 100)
    ax.set_title("1:N matching (Fig. 6)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def retrieval_panel(query_spectrogram: np.ndarray, faces: list[np.ndarray], is_match: list[bool],
                    title: str) -> plt.Figure:
    """A voice query's spectrogram beside its top-ranked faces, true matches framed in green (Fig. 7)."""
    fig, axes = plt.subplots(1, 1 + len(faces), figsize=(2.0 * (1 + len(faces)), 2.2))
    axes[0].imshow(query_spectrogram.astype(np.float32), origin="lower", aspect="auto", cmap="magma")
    axes[0].set_title("voice query", fontsize=8)
    for rank, (ax, face, match) in enumerate(zip(axes[1:], faces, is_match), start=1):
        ax.imshow(face)
        ax.set_title(f"#{rank}" + (" match" if match else ""), fontsize=8, color="green" if match else "black")
        for spine in ax.spines.values():
            spine.set_edgecolor("green" if match else "lightgrey")
            spine.set_linewidth(3 if match else 1)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
