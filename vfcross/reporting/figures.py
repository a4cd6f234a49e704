"""Figures of the reports, in one seaborn style set on import; each function returns its matplotlib Figure.

Data plots are seaborn's, image panels matplotlib's; intervals come from the evaluation as the bars' error bars."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from vfcross.evaluation.protocols import RESTRICTIONS
from vfcross.preprocess import load_face, load_spectrogram

DPI = 100
PALETTE = "colorblind"
#: Width in inches of a full-width figure (a report column).
WIDTH = 7.0
#: Matplotlib settings laid over seaborn's "paper" context: one set of font sizes everywhere.
RC = {
    "figure.dpi": DPI, "savefig.dpi": DPI,
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 10,
    "lines.linewidth": 1.4, "lines.markersize": 4,
}
#: Colour and style of reference lines (chance, zero, the diagonal).
REFERENCE = {"color": "0.35", "lw": 1.0, "ls": ":"}
sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, rc=RC)


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save ``fig`` as a compact PNG at :data:`DPI` (parents created); another suffix is refused."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: save_figure writes PNG files; the name must end in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pil_kwargs={"optimize": True})
    return path


def _figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure with a 2-D array of axes, laid out by matplotlib's constrained layout."""
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained", **kwargs)


def _colours(labels: Iterable) -> dict:
    """One colour per label, in order: the colour-blind palette, or evenly spaced hues beyond its 10 colours."""
    labels = list(dict.fromkeys(labels))
    return dict(zip(labels, sns.color_palette(PALETTE if len(labels) <= 10 else "husl", len(labels))))


def _legend(fig: plt.Figure, ax: plt.Axes, ncol: int = 2, title: str | None = None) -> None:
    """One legend below the figure of the entries of ``ax`` (seaborn's and the reference lines'), each label once."""
    entries = {label: handle for handle, label in zip(*ax.get_legend_handles_labels())}
    for legend in filter(None, (each.get_legend() for each in fig.axes)):
        legend.remove()
    fig.legend(entries.values(), entries.keys(), loc="outside lower center", ncol=ncol, frameon=False, title=title)


def _image_axes(ax: plt.Axes) -> None:
    """An axes that shows an image: no ticks, no grid."""
    ax.set(xticks=[], yticks=[])
    ax.grid(False)


def _check_interval(low: float, high: float, where: str) -> None:
    """Raise when an interval is not two finite numbers with low <= high."""
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"{where}: interval ({low}, {high}) must be finite with low <= high")


def _bars(ax: plt.Axes, data: pd.DataFrame, x: str, y: str, hue: str, order: list, hue_order: list,
          palette) -> None:
    """A seaborn barplot of given values with given intervals (``low``, ``high``; NaN: none) as its error bars: each
    bar's rows are its value, then its interval's ends, which the estimator and the errorbar function take."""
    parts = [data.assign(_part=0)]
    if {"low", "high"} <= set(data):
        bounded = data.dropna(subset=["low", "high"])
        parts += [bounded.assign(**{y: bounded["low"], "_part": 1}), bounded.assign(**{y: bounded["high"], "_part": 2})]
    long = pd.concat(parts).sort_values("_part", kind="stable")
    sns.barplot(data=long, x=x, y=y, hue=hue, order=order, hue_order=hue_order, palette=palette, saturation=1,
                estimator=lambda v: v.iloc[0], errorbar=lambda v: (v.iloc[1], v.iloc[2]),
                err_kws={"color": "0.15", "linewidth": 1}, capsize=0.15, ax=ax)


def sample_grid(manifest: pd.DataFrame, identities: int = 6, faces: int = 3, voices: int = 2,
                seed: int = 0) -> plt.Figure:
    """Aligned face crops and spectrograms (frequency up) of ``identities`` random identities, one per row,
    labelled with the identity and its gender, nationality and age."""
    missing = {"identity", "modality", "cache_path"} - set(manifest.columns)
    if missing:
        raise ValueError(f"sample_grid: the manifest lacks column(s) {sorted(missing)}")
    everyone = sorted(manifest["identity"].unique())
    chosen = sorted(np.random.default_rng(seed).choice(everyone, min(identities, len(everyone)), replace=False))
    fig, axes = _figure(len(chosen), faces + voices, (1.3 * (faces + voices), 1.3 * len(chosen)))
    for row, ident in zip(axes, chosen):
        rows = manifest[manifest["identity"] == ident]
        for ax, path in zip(row, rows[rows["modality"] == "face"]["cache_path"].head(faces)):
            ax.imshow(load_face(path))
        for ax, path in zip(row[faces:], rows[rows["modality"] == "voice"]["cache_path"].head(voices)):
            ax.imshow(load_spectrogram(path), origin="lower", aspect="auto", cmap="magma")
        for ax in row:
            _image_axes(ax)
        first = rows.iloc[0]
        facts = [str(first[c]) for c in ("gender", "nationality", "age") if c in rows and pd.notna(first[c])]
        row[0].set_ylabel("\n".join([str(ident), " ".join(facts)]), fontsize=RC["xtick.labelsize"])
    fig.suptitle(f"{faces} aligned faces | {voices} spectrograms (normalised, frequency up) per identity")
    return fig


def vad_figure(audio: np.ndarray, kept: np.ndarray, sample_rate: int) -> plt.Figure:
    """A clip's waveform before voice activity detection, the samples ``kept`` mask drops shaded, and after it."""
    colours = sns.color_palette(PALETTE)
    fig, axes = _figure(2, 1, (WIDTH, 3.2), sharex=True)
    top, bottom = axes[:, 0]
    top.plot(np.arange(len(audio)) / sample_rate, audio, lw=0.4, color=colours[0])
    edges = np.flatnonzero(np.diff(np.r_[0, (~kept).astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        top.axvspan(start / sample_rate, stop / sample_rate, color=colours[3], alpha=0.3, lw=0)
    top.set_title(f"before VAD ({len(audio) / sample_rate:.2f} s; "
                  f"shaded: {(~kept).sum() / sample_rate:.2f} s dropped)")
    bottom.plot(np.arange(kept.sum()) / sample_rate, audio[kept], lw=0.4, color=colours[2])
    bottom.set_title(f"after VAD ({kept.sum() / sample_rate:.2f} s kept)")
    bottom.set_xlabel("seconds")
    return fig


#: Readable names of the loss components and validation numbers of a training log.
METRIC_NAMES = {
    "loss": "total loss", "ce": "cross-entropy", "center": "center loss", "opl": "orthogonal projection loss",
    "train_accuracy": "train accuracy", "val_auc": "validation AUC",
    "val_face_id_accuracy": "validation face ID accuracy", "val_voice_id_accuracy": "validation voice ID accuracy",
    "gate_mean": "mean gate k",
}
#: One colour per metric, the same in every training figure and distinct within one (the palette's
#: pale pink and yellow left out: they read badly on white; the gate in dark purple, apart from the AUC).
METRIC_COLOURS = {"loss": "0.15", "gate_mean": "#5b2a86", **{key: sns.color_palette(PALETTE)[i] for key, i in (
    ("ce", 0), ("val_auc", 1), ("center", 2), ("opl", 3), ("val_face_id_accuracy", 4), ("train_accuracy", 7),
    ("val_voice_id_accuracy", 9))}}


def _metric_name(key: str) -> str:
    """The readable name of a training-log key (unknown keys with underscores as spaces)."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def _history_table(history: Sequence[Mapping], where: str) -> pd.DataFrame:
    """A run's per-epoch records as a table indexed by epoch; raises on an empty or epoch-less history."""
    if not history:
        raise ValueError(f"{where}: the history is empty (no epoch was logged)")
    if any("epoch" not in record for record in history):
        raise ValueError(f"{where}: every record needs an 'epoch' key (as written by vfcross.training)")
    return pd.DataFrame(list(history)).set_index("epoch").sort_index()


def _epoch_lines(ax: plt.Axes, table: pd.DataFrame, keys: Sequence[str]) -> None:
    """One seaborn line per key over epochs; epochs where a key was not logged are skipped, not zeroed."""
    long = (table[list(keys)].rename(columns=_metric_name).rename_axis("epoch").reset_index()
            .melt(id_vars="epoch", var_name="metric", value_name="value").dropna())
    palette = {_metric_name(k): METRIC_COLOURS.get(k, "0.3") for k in keys}
    sns.lineplot(data=long, x="epoch", y="value", hue="metric", hue_order=list(palette), palette=palette, marker="o",
                 estimator=None, errorbar=None, ax=ax)
    ax.set_ylabel("")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def training_curves(history: Sequence[Mapping], title: str = "training", chance: float | None = None,
                    selected_epoch: int | None = None) -> plt.Figure:
    """Losses and validation numbers per epoch of one run (``vfcross.training.read_log``): total loss and
    cross-entropy (with ``chance`` = ln N), the other loss terms, and accuracies/AUCs/gate on [0, 1]; validation
    numbers at the epochs they were logged, ``selected_epoch`` marked on every panel."""
    table = _history_table(history, "training_curves")
    if selected_epoch is not None and selected_epoch not in table.index:
        raise ValueError(f"training_curves: selected epoch {selected_epoch} is not in the history "
                         f"(epochs {table.index.min()}-{table.index.max()})")
    scores = [c for c in table.columns if c.endswith(("accuracy", "auc"))] + [c for c in ("gate_mean",) if c in table]
    panels = {"loss": [k for k in ("loss", "ce") if k in table],
              "loss terms": [k for k in ("center", "opl") if k in table], "accuracy, AUC": scores}
    panels = {name: keys for name, keys in panels.items() if keys} or {"": []}
    fig, [axes] = _figure(1, len(panels), (WIDTH if len(panels) > 1 else 4.5, 3.4))
    for ax, (name, keys) in zip(axes, panels.items()):
        if keys:
            _epoch_lines(ax, table, keys)
            ax.set_title(f"{title}: {name}")
        if chance is not None and ax is axes[0]:
            ax.axhline(chance, **REFERENCE, label=f"chance: ln N = {chance:.2f}")
        if name == "accuracy, AUC":
            ax.axhline(0.5, **REFERENCE, label="AUC chance 0.5")
            ax.set_ylim(0, 1)
        if selected_epoch is not None:
            ax.axvline(selected_epoch, color="0.15", lw=1, ls="--", label=f"selected epoch {selected_epoch}")
        ax.set_xlabel("epoch")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)  # each panel's entries below it
    return fig


def seed_curves(histories: Mapping[str, Sequence[Mapping]], metric: str, chance: float | None = None,
                title: str | None = None) -> plt.Figure:
    """One line per run (e.g. per training seed) of ``metric`` per epoch, with an optional ``chance`` line."""
    if not histories:
        raise ValueError("seed_curves: no runs given")
    frames = []
    for run, history in histories.items():
        table = _history_table(history, f"seed_curves (run {run!r})")
        if metric not in table or table[metric].isna().all():
            raise ValueError(f"seed_curves: run {run!r} never logged {metric!r} (keys: {sorted(table.columns)})")
        frames.append(table[metric].dropna().rename("value").rename_axis("epoch").reset_index().assign(run=str(run)))
    long = pd.concat(frames, ignore_index=True)
    runs = [str(r) for r in histories]
    fig, [[ax]] = _figure(1, 1, (4.5, 3.0))
    sns.lineplot(data=long, x="epoch", y="value", hue="run", hue_order=runs, palette=_colours(runs), marker="o",
                 estimator=None, errorbar=None, ax=ax)
    if chance is not None:
        ax.axhline(chance, **REFERENCE, label=f"chance {chance:.3g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(ylabel=_metric_name(metric), title=title or f"{_metric_name(metric)} per epoch, {len(runs)} runs")
    _legend(fig, ax, ncol=3)
    return fig


def tsne_figure(vectors: np.ndarray, table: pd.DataFrame, identities: int = 12, seed: int = 0) -> plt.Figure:
    """2-D t-SNE of the embeddings of the first ``identities`` identities: colour = identity, marker = modality."""
    from sklearn.manifold import TSNE

    if len(vectors) != len(table):
        raise ValueError(f"tsne_figure: {len(vectors)} vectors for {len(table)} table rows")
    chosen = sorted(table["identity"].unique())[:identities]
    mask = table["identity"].isin(chosen).to_numpy()
    if mask.sum() < 4:
        raise ValueError(f"tsne_figure: {mask.sum()} samples are too few for t-SNE")
    points = TSNE(n_components=2, perplexity=float(min(30, max(2, mask.sum() // 4))), init="pca",
                  random_state=seed).fit_transform(np.asarray(vectors)[mask])
    data = table.loc[mask, ["identity", "modality"]].reset_index(drop=True).assign(x=points[:, 0], y=points[:, 1])
    fig, [[ax]] = _figure(1, 1, (4.8, 4.6))
    markers = {"face": "o", "voice": "X"}
    sns.scatterplot(data=data, x="x", y="y", hue="identity", hue_order=chosen, palette=_colours(chosen),
                    style="modality", markers=markers, s=30, alpha=0.85, legend=False, ax=ax)
    ax.legend([Line2D([], [], marker=m, color="0.3", ls="", ms=6) for m in markers.values()], list(markers),
              title="modality (colour = identity)", loc="best")
    ax.set(xticks=[], yticks=[], xlabel="", ylabel="", title=f"t-SNE of {len(chosen)} test identities")
    return fig


def gate_histogram(k: np.ndarray) -> plt.Figure:
    """Distribution of the fusion gate k (weight of the face; 1 - k weighs the voice)."""
    k = np.ravel(np.asarray(k, dtype=float))
    if k.size == 0:
        raise ValueError("gate_histogram: no gate values")
    fig, [[ax]] = _figure(1, 1, (4.5, 2.8))
    sns.histplot(x=k, bins=50, binrange=(0, 1), color=sns.color_palette(PALETTE)[4], ax=ax)
    ax.axvline(float(k.mean()), color="0.15", lw=1, label=f"mean {k.mean():.2f}")
    ax.set(xlabel="k (0 = rely on the voice, 1 = rely on the face)", ylabel="gate entries",
           title="attention gate on validation pairs")
    ax.legend()
    return fig


#: Names and colours of the two classes of voice-face pairs, the same in every panel.
PAIR_CLASSES = {"different identity": sns.color_palette(PALETTE)[7], "same identity": sns.color_palette(PALETTE)[0]}


def similarity_histograms(panels: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """Cosine similarities of same- and different-identity pairs, one panel per ``{title: (scores, labels)}``;
    each class a density of its own, so the overlap reads as the verification error whatever the class sizes."""
    if not panels:
        raise ValueError("similarity_histograms: no panels given")
    fig, axes = _figure(1, len(panels), (min(WIDTH, 3.6 * len(panels)), 2.9), sharey=False)
    for ax, (title, (scores, labels)) in zip(axes[0], panels.items()):
        scores, labels = np.ravel(scores).astype(float), np.ravel(labels).astype(bool)
        if len(scores) != len(labels):
            raise ValueError(f"similarity_histograms: panel {title!r} has {len(scores)} scores "
                             f"but {len(labels)} labels")
        if labels.all() or not labels.any():
            raise ValueError(f"similarity_histograms: panel {title!r} needs both same- and different-identity pairs")
        data = pd.DataFrame({"cosine similarity": scores,
                             "pair": np.where(labels, "same identity", "different identity")})
        bins = np.linspace(min(scores.min(), -0.2), max(scores.max(), 0.2), 50)
        sns.histplot(data=data, x="cosine similarity", hue="pair", hue_order=list(PAIR_CLASSES),
                     palette=PAIR_CLASSES, stat="density", common_norm=False, bins=bins, element="step",
                     alpha=0.3, kde=True, line_kws={"lw": 1.2}, legend=False, ax=ax)
        ax.text(0.02, 0.97, f"{labels.sum()} same\n{(~labels).sum()} different", transform=ax.transAxes,
                va="top", fontsize=RC["legend.fontsize"])
        ax.set(title=title, ylabel="density")
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5) for c in PAIR_CLASSES.values()], list(PAIR_CLASSES),
               loc="outside lower center", ncol=2, frameon=False)
    return fig


def roc_det_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """ROC and DET curves (``{label: (fpr, tpr)}``); the DET on probit axes, where rates of 0 or 1 are left out."""
    from scipy.stats import norm

    if not curves:
        raise ValueError("roc_det_figure: no curves given")
    frames = []
    for label, (fpr, tpr) in curves.items():
        fpr, tpr = np.ravel(fpr).astype(float), np.ravel(tpr).astype(float)
        if len(fpr) != len(tpr) or len(fpr) < 2:
            raise ValueError(f"roc_det_figure: curve {label!r} needs as many (>= 2) fpr as tpr values "
                             f"(got {len(fpr)} and {len(tpr)})")
        if not (np.all((fpr >= 0) & (fpr <= 1)) and np.all((tpr >= 0) & (tpr <= 1))):
            raise ValueError(f"roc_det_figure: curve {label!r} has rates outside [0, 1]")
        frames.append(pd.DataFrame({"curve": label, "fpr": fpr, "tpr": tpr}))
    data = pd.concat(frames, ignore_index=True)
    inner = (data.fpr > 0) & (data.fpr < 1) & (data.tpr > 0) & (data.tpr < 1)
    det_data = data[inner].assign(far=lambda d: norm.ppf(d.fpr), frr=lambda d: norm.ppf(1 - d.tpr))
    labels, palette = list(curves), _colours(curves)
    fig, [[roc, det]] = _figure(1, 2, (WIDTH, 3.3))
    common = dict(hue="curve", hue_order=labels, palette=palette, estimator=None, sort=False, errorbar=None)
    sns.lineplot(data=data, x="fpr", y="tpr", ax=roc, **common)
    roc.plot([0, 1], [0, 1], **REFERENCE, label="chance")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1), title="ROC")
    roc.set_aspect("equal")
    sns.lineplot(data=det_data, x="far", y="frr", ax=det, legend=False, **common)
    ticks, limits = [0.01, 0.05, 0.2, 0.5, 0.8, 0.95], norm.ppf([0.005, 0.98])
    det.plot(limits, limits, **REFERENCE, label="FAR = FRR")
    det.set(xticks=norm.ppf(ticks), xticklabels=[f"{t:.0%}" for t in ticks], yticks=norm.ppf(ticks),
            yticklabels=[f"{t:.0%}" for t in ticks], xlim=limits, ylim=limits, xlabel="false acceptance rate",
            ylabel="false rejection rate", title="DET (EER where a curve meets the diagonal)")
    det.set_aspect("equal")
    _legend(fig, roc)
    return fig


def grouped_auc_figure(groups: Mapping[str, Mapping[str, float]],
                       ci: Mapping[str, Mapping[str, tuple[float, float]]] | None = None) -> plt.Figure:
    """Bars of verification AUC (%) per negative restriction (Table 3), one colour per method: ``groups`` maps a
    method to ``{restriction: AUC %}`` (missing: a gap), ``ci`` to ``{restriction: (low, high)}`` drawn as given."""
    if not groups:
        raise ValueError("grouped_auc_figure: no groups given")
    ci = ci or {}
    for method, by_key in ci.items():
        for key, (low, high) in by_key.items():
            _check_interval(low, high, f"grouped_auc_figure: {method!r} {key}")
            if groups.get(method, {}).get(key) is None:
                raise ValueError(f"grouped_auc_figure: interval for {method!r} {key} but no AUC to draw it on")
    seen = list(dict.fromkeys(k for values in groups.values() for k in values))
    keys = [k for k in RESTRICTIONS if k in seen] + [k for k in seen if k not in RESTRICTIONS]
    rows = [{"method": m, "restriction": k, "AUC (%)": float(v),
             **dict(zip(("low", "high"), ci.get(m, {}).get(k, (np.nan, np.nan))))}
            for m, values in groups.items() for k, v in values.items() if v is not None and np.isfinite(float(v))]
    data = pd.DataFrame(rows, columns=["method", "restriction", "AUC (%)", "low", "high"])
    methods = list(groups)
    fig, [[ax]] = _figure(1, 1, (WIDTH, 3.4))
    _bars(ax, data, "restriction", "AUC (%)", "method", keys, methods, _colours(methods))
    ax.axhline(50, **REFERENCE, label="chance (50%)")
    lowest = np.nanmin([*data["AUC (%)"], *data["low"], 50])
    ax.set(ylim=(min(40, 5 * np.floor(lowest / 5) - 5), 100), title="verification AUC by negative restriction "
           "(Table 3)", xlabel="negative pairs restricted to the same ... (G gender, N nationality, A age)")
    _legend(fig, ax)
    return fig


def matching_figure(curves: Mapping[str, Mapping[int, float]]) -> plt.Figure:
    """1:N matching accuracy (%) against N, one line per ``{label: {N: accuracy %}}``, with chance 100/N (Fig. 6)."""
    if not curves:
        raise ValueError("matching_figure: no curves given")
    rows = [{"curve": label, "N": int(n), "accuracy (%)": float(a)} for label, acc in curves.items()
            for n, a in acc.items()]
    data = pd.DataFrame(rows, columns=["curve", "N", "accuracy (%)"])
    if data.empty:
        raise ValueError("matching_figure: every curve is empty")
    labels = list(curves)
    fig, [[ax]] = _figure(1, 1, (5.0, 3.6))
    sns.lineplot(data=data, x="N", y="accuracy (%)", hue="curve", hue_order=labels, palette=_colours(labels),
                 style="curve", style_order=labels, markers=True, dashes=False, estimator=None, errorbar=None, ax=ax)
    n = np.arange(data.N.min(), data.N.max() + 1)
    ax.plot(n, 100 / n, **REFERENCE, marker=".", label="chance (1/N)")
    ax.set_xticks(sorted(data.N.unique()))
    ax.set(xlabel="N (gallery size)", ylim=(0, 100), title="1:N matching (Fig. 6)")
    _legend(fig, ax)
    return fig


def retrieval_panel(query_spectrogram: np.ndarray, faces: list[np.ndarray], is_match: list[bool],
                    title: str) -> plt.Figure:
    """A voice query's spectrogram beside its top-ranked faces, true matches framed in green (Fig. 7)."""
    if len(faces) != len(is_match):
        raise ValueError(f"retrieval_panel: {len(faces)} faces but {len(is_match)} match flags")
    match_colour = sns.color_palette(PALETTE)[2]
    fig, [axes] = _figure(1, 1 + len(faces), (1.5 * (1 + len(faces)), 1.9))
    axes[0].imshow(np.asarray(query_spectrogram, dtype=np.float32), origin="lower", aspect="auto", cmap="magma")
    axes[0].set_title("voice query")
    for rank, (ax, face, match) in enumerate(zip(axes[1:], faces, is_match), start=1):
        ax.imshow(face)
        ax.set_title(f"#{rank}" + (" match" if match else ""), color=match_colour if match else "black")
        plt.setp(ax.spines.values(), visible=True, edgecolor=match_colour if match else "lightgrey",
                 linewidth=3 if match else 1)
    for ax in axes:
        _image_axes(ax)
    fig.suptitle(title)
    return fig


#: Columns :func:`probe_figure` needs; ``low`` and ``high`` (an interval of the score) are optional.
PROBE_COLUMNS = ("representation", "modality", "attribute", "metric", "score", "chance")
#: Panel title and y label of each probe metric.
PROBE_METRICS = {"accuracy": ("categories", "accuracy"), "r2": ("traits", "R²")}
#: The lowest R^2 drawn; lower scores are clipped at the axis and printed on their bar.
R2_FLOOR = -0.5


def _check_probe_table(table: pd.DataFrame) -> None:
    """Raise on a probe table with missing columns, unknown values or repeated probes."""
    missing = [c for c in PROBE_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"probe_figure: the table lacks column(s) {missing}")
    if table.empty:
        raise ValueError("probe_figure: the table is empty")
    for column, allowed in (("metric", PROBE_METRICS), ("modality", ("voice", "face"))):
        unknown = sorted(set(table[column]) - set(allowed))
        if unknown:
            raise ValueError(f"probe_figure: unknown {column} value(s) {unknown} (expected {list(allowed)})")
    repeated = table.duplicated(["representation", "modality", "attribute", "metric"])
    if repeated.any():
        raise ValueError(f"probe_figure: repeated probe(s) {table[repeated][list(PROBE_COLUMNS[:4])].values.tolist()}")


def probe_figure(table: pd.DataFrame) -> plt.Figure:
    """Attribute probes of several representations (``table``: columns :data:`PROBE_COLUMNS`, optional
    ``low``/``high``), a row of panels per modality: accuracy left, R² right, a chance line per attribute, R² below
    :data:`R2_FLOOR` clipped and printed."""
    _check_probe_table(table)
    table = table.reset_index(drop=True)
    for probe in table.reindex(columns=[*PROBE_COLUMNS[:3], "low", "high"]).dropna().itertuples():
        _check_interval(probe.low, probe.high, f"probe_figure: {probe.representation!r} {probe.modality} "
                                               f"{probe.attribute}")
    r2 = table.loc[table["metric"] == "r2"].reindex(columns=["score", "low", "high"]).to_numpy(float)
    limits = {"accuracy": (0.0, 1.03),  # R²: 0 and every score and interval above the floor, with a margin
              "r2": (max(R2_FLOOR, np.nanmin(r2, initial=0.0)) - 0.05, np.nanmax(r2, initial=0.0) + 0.05)}
    representations = list(dict.fromkeys(table["representation"]))
    modalities = [m for m in ("voice", "face") if m in set(table["modality"])]
    metrics = [m for m in PROBE_METRICS if m in set(table["metric"])]
    fig, axes = _figure(len(modalities), len(metrics), (WIDTH, 2.7 * len(modalities) + 0.6), sharey="col")
    for row, modality in zip(axes, modalities):
        for ax, metric in zip(row, metrics):
            part = table[(table["modality"] == modality) & (table["metric"] == metric)]
            attributes = list(dict.fromkeys(table.loc[table["metric"] == metric, "attribute"]))
            _bars(ax, part.assign(score=part["score"].clip(lower=R2_FLOOR)), "attribute", "score", "representation",
                  attributes, representations, _colours(representations))
            for attribute, chance in part.groupby("attribute", sort=False)["chance"].first().items():
                x = attributes.index(attribute)
                ax.hlines(chance, x - 0.4, x + 0.4, color="black", lw=1.6, zorder=4, label="chance level")
            for probe in part[part["score"] < R2_FLOOR].itertuples():
                ax.text(attributes.index(probe.attribute), R2_FLOOR, f" {probe.representation}: {probe.score:.1f}",
                        rotation=90, ha="center", va="bottom", fontsize=6)
            title, ylabel = PROBE_METRICS[metric]
            ax.set(title=f"{modality}: {title}", xlabel="", ylabel=ylabel, ylim=limits[metric])
            if metric == "r2":
                ax.axhline(0, color="0.35", lw=1)
    _legend(fig, axes[0, 0], ncol=min(len(representations) + 1, 5), title="representation")
    return fig


def _check_difference_rows(rows: Sequence[Mapping]) -> None:
    """Raise on a paired-difference row without its keys, with a bad interval or with an inconsistent margin."""
    if not rows:
        raise ValueError("paired_differences_figure: no rows given")
    for i, row in enumerate(rows):
        where = f"paired_differences_figure: row {i}"
        missing = [k for k in ("label", "estimate", "low", "high") if k not in row]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        where += f" ({row['label']!r})"
        if (row["low"] is None) != (row["high"] is None):
            raise ValueError(f"{where} has only one interval bound")
        if row["low"] is not None:  # None: no interval could be made; the dot is drawn alone
            _check_interval(row["low"], row["high"], where)
    margins = pd.DataFrame(list(rows)).reindex(columns=["label", "margin"]).dropna().groupby("label")["margin"].unique()
    for label, found in margins[margins.map(len) > 1].items():
        raise ValueError(f"paired_differences_figure: {label!r} has several margins {sorted(map(float, found))}")


#: Colour of a decision interval by its verdict (else black): Paul Tol's colour-blind-safe green and wine.
VERDICT_COLOURS = {"holds": "#117733", "contradicted": "#882255", "inconclusive": "0.45"}


def paired_differences_figure(rows: Sequence[Mapping], title: str = "paired differences",
                              xlabel: str = "difference in AUC (percentage points)") -> plt.Figure:
    """Forest plot of paired differences (AUC points), one row per ``label``: a row without ``seed`` is the
    decision interval (coloured by ``verdict``, ``delta`` ticked), rows with one are the seeds' dots below it;
    ``margin`` shades ±margin; ``low``/``high`` None draw the dot alone."""
    _check_difference_rows(rows)
    labels = list(dict.fromkeys(row["label"] for row in rows))
    seeds = sorted({row["seed"] for row in rows if row.get("seed") is not None})
    seed_colours = _colours(seeds)
    fig, [[ax]] = _figure(1, 1, (WIDTH * 0.8, 0.9 + 0.62 * len(labels)))
    label_y = ax.get_yaxis_transform()  # x in axes fractions, y in data
    for y, label in enumerate(labels):
        mine = [r for r in rows if r["label"] == label]
        pooled = [r for r in mine if r.get("seed") is None]
        per_seed = sorted((r for r in mine if r.get("seed") is not None), key=lambda r: str(r["seed"]))
        margin = next((r["margin"] for r in mine if r.get("margin") is not None), None)
        if margin is not None:
            ax.fill_betweenx([y - 0.2, y + 0.35], -margin, margin, color=sns.color_palette(PALETTE)[9],
                             alpha=0.25, lw=0, label="equivalence margin")
        verdict = next((r["verdict"] for r in pooled if r.get("verdict")), None)
        ax.text(0.0, y - 0.28, label + (f": {verdict}" if verdict else ""), transform=label_y, ha="left",
                va="bottom", fontsize=7, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        for row in pooled:
            colour = VERDICT_COLOURS.get(row.get("verdict"), "black")
            if row["low"] is not None:
                ax.hlines(y, row["low"], row["high"], color=colour, lw=3)
            name = "mean over seeds" if seeds else "estimate"
            ax.plot(row["estimate"], y, marker="D", color=colour, ls="", ms=5,
                    label=f"{name}, {row['verdict']}" if row.get("verdict") else name)
            if row.get("delta") is not None:
                ax.vlines(row["delta"], y - 0.2, y + 0.2, color="0.3", lw=1, ls="--",
                          label="smallest gain that matters")
        spread = len(per_seed) > 1 and not pooled  # without a decision interval the seeds get a line each
        offsets = np.linspace(-0.15, 0.15, len(per_seed)) if spread else [0.0] * len(per_seed)
        for offset, row in zip(offsets, per_seed):
            colour = seed_colours[row["seed"]]
            seed_y = y + offset + (0.25 if pooled else 0.0)
            if row["low"] is not None:
                ax.hlines(seed_y, row["low"], row["high"], color=colour, lw=1)
            ax.plot(row["estimate"], seed_y, marker="o", color=colour, ls="", ms=3.5, label=f"seed {row['seed']}")
    ax.axvline(0, color="0.15", lw=1, label="no difference")
    ax.set_yticks(range(len(labels)), [""] * len(labels))
    ax.set_ylim(len(labels) - 0.45, -0.75)
    ax.grid(False, axis="y")
    ax.set(xlabel=xlabel, title=title)
    _legend(fig, ax, ncol=min(4, 3 + len(seeds)))
    return fig
