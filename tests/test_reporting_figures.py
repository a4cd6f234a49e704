"""The report figures render on small fake inputs and draw what they claim (lines, bars, intervals)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from PIL import Image

from fakes import fake_preprocessed
from vfcross.config import VoiceConfig
from vfcross.preprocess.voices import vad, vad_mask
from vfcross.reporting import figures


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test made, so pyplot does not accumulate them."""
    yield
    plt.close("all")


def line_labels(ax) -> list[str]:
    """Labels of the labelled lines of an axes: reference lines and seaborn's (empty) legend entries."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def data_lines(ax) -> list:
    """The lines seaborn drew from data (unlabelled, non-empty; reference lines carry a label)."""
    return [line for line in ax.get_lines() if line.get_label().startswith("_") and len(line.get_xdata())]


def coloured(lines, colour) -> list:
    """The lines drawn in ``colour``."""
    return [line for line in lines if matplotlib.colors.same_color(line.get_color(), colour)]


def legend_texts(fig) -> list[str]:
    """Texts of every legend of a figure (figure-level and axes-level)."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def interval_segments(ax) -> list[tuple[float, float, float]]:
    """(x, low, high) of every error bar seaborn drew on an axes (the vertical segments of its lines), sorted."""
    found = []
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        for i in range(len(x) - 1):
            if x[i] == x[i + 1] and np.isfinite(y[i:i + 2]).all() and y[i] != y[i + 1]:
                found.append((round(float(x[i]), 6), float(min(y[i:i + 2])), float(max(y[i:i + 2]))))
    return sorted(found)


def polygon_area(vertices: np.ndarray) -> float:
    """Area of a closed polygon (shoelace formula)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def bar_patches(ax) -> list:
    """The bar rectangles seaborn drew (from the axes' bar containers)."""
    return [p for c in ax.containers if isinstance(c, BarContainer) for p in c]


HISTORY = [
    {"epoch": 1, "lr": 1e-3, "loss": 6.2, "ce": 5.7, "center": 0.5, "train_accuracy": 0.01, "time_s": 1.0},
    {"epoch": 2, "lr": 1e-3, "loss": 5.1, "ce": 4.7, "center": 0.4, "train_accuracy": 0.05,
     "val_auc": 0.55, "val_face_id_accuracy": 0.1, "val_voice_id_accuracy": 0.05, "time_s": 1.0},
    {"epoch": 3, "lr": 1e-3, "loss": 4.0, "ce": 3.7, "center": 0.3, "train_accuracy": 0.12, "time_s": 1.0},
    {"epoch": 4, "lr": 1e-3, "loss": 3.2, "ce": 2.9, "center": 0.3, "train_accuracy": 0.2,
     "val_auc": 0.62, "val_face_id_accuracy": 0.3, "val_voice_id_accuracy": 0.1, "time_s": 1.0},
]
FUSION_HISTORY = [{"epoch": e, "loss": 2.4 - 0.1 * e, "ce": 1.4 - 0.1 * e, "opl": 1.0, "train_accuracy": 0.2 * e,
                   "gate_mean": 0.5, "val_auc": 0.6 + 0.01 * e} for e in range(1, 4)]


# --- style and saving -----------------------------------------------------------------------------
def test_style_is_applied_on_import_and_save_figure_writes_a_png(tmp_path):
    assert matplotlib.rcParams["savefig.dpi"] == figures.DPI
    assert matplotlib.rcParams["axes.titlesize"] == figures.RC["axes.titlesize"]
    fig = figures.gate_histogram(np.linspace(0, 1, 20))
    path = figures.save_figure(fig, tmp_path / "sub" / "gate.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert 100 < image.width < 1200 and 100 < image.height < 1200
    with pytest.raises(ValueError, match="must end in .png"):
        figures.save_figure(fig, tmp_path / "gate.pdf")


# --- training ----------------------------------------------------------------------------------------
def test_training_curves_panels_chance_and_selected_epoch():
    chance = math.log(1000)
    fig = figures.training_curves(HISTORY, "single stream", chance=chance, selected_epoch=4)
    assert len(fig.axes) == 3  # loss + ce | center | accuracies and AUC
    loss_ax, _, score_ax = fig.axes
    chance_lines = [line for line in loss_ax.get_lines() if line.get_label().startswith("chance: ln N")]
    assert len(chance_lines) == 1 and np.allclose(chance_lines[0].get_ydata(), chance)
    for ax in fig.axes:  # the selected epoch is marked on every panel
        marks = [line for line in ax.get_lines() if line.get_label() == "selected epoch 4"]
        assert len(marks) == 1 and np.allclose(marks[0].get_xdata(), 4)
    names = legend_texts(fig)
    for name in ("total loss", "cross-entropy", "center loss", "train accuracy", "validation AUC"):
        assert name in names
    assert "lr" not in names and "time s" not in names
    # validation logged at epochs 2 and 4 only: drawn there, not at 1 and 3
    (auc,) = coloured(data_lines(score_ax), figures.METRIC_COLOURS["val_auc"])
    assert list(auc.get_xdata()) == [2, 4] and list(auc.get_ydata()) == [0.55, 0.62]


def test_training_curves_without_chance_and_with_fusion_terms():
    fig = figures.training_curves(FUSION_HISTORY, "fusion")
    assert len(fig.axes) == 3
    assert not any(label.startswith("chance: ln") for ax in fig.axes for label in line_labels(ax))
    names = legend_texts(fig)
    assert "orthogonal projection loss" in names and "mean gate k" in names and "center loss" not in names


def test_training_curves_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        figures.training_curves([])
    with pytest.raises(ValueError, match="selected epoch 9"):
        figures.training_curves(HISTORY, selected_epoch=9)


def test_seed_curves_one_line_per_run_and_chance():
    runs = {f"seed {s}": [{"epoch": e, "val_auc": 0.5 + 0.02 * e + 0.01 * s} for e in range(1, 6)]
            for s in range(3)}
    fig = figures.seed_curves(runs, "val_auc", chance=0.5)
    (ax,) = fig.axes
    drawn = sorted(tuple(np.round(line.get_ydata(), 6)) for line in data_lines(ax))
    assert drawn == sorted(tuple(np.round([r["val_auc"] for r in h], 6)) for h in runs.values())
    assert [t for t in legend_texts(fig) if t in runs] == list(runs)
    assert [line.get_label() for line in ax.get_lines()].count("chance 0.5") == 1
    with pytest.raises(ValueError, match="never logged 'val_auc'"):
        figures.seed_curves({"a": [{"epoch": 1, "loss": 1.0}]}, "val_auc")


def test_tsne_and_gate_histogram():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"identity": np.repeat([f"id{i}" for i in range(4)], 6),
                          "modality": np.tile(["face", "voice"], 12)})
    vectors = rng.normal(size=(24, 8)) + np.repeat(np.eye(8)[:4] * 5, 6, axis=0)
    fig = figures.tsne_figure(vectors, table, identities=3)
    (ax,) = fig.axes
    assert sum(len(c.get_offsets()) for c in ax.collections) == 18  # 3 identities x 6 samples
    with pytest.raises(ValueError, match="5 vectors for 24"):
        figures.tsne_figure(vectors[:5], table)
    k = np.array([0.1, 0.2, 0.5, 0.5, 0.9])
    fig = figures.gate_histogram(k)
    (ax,) = fig.axes
    assert sum(p.get_height() for p in ax.patches) == len(k)
    assert "mean 0.44" in legend_texts(fig)


# --- evaluation ---------------------------------------------------------------------------------------
def test_similarity_histograms_are_per_class_densities():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(30), np.zeros(300)]
    scores = np.r_[rng.normal(0.4, 0.1, 30), rng.normal(0.0, 0.1, 300)]
    fig = figures.similarity_histograms({"backbone": (scores, labels), "fusion": (scores * 1.2, labels)})
    assert len(fig.axes) == 2
    for ax in fig.axes:
        # two step histograms, each a density normalised on its own (area 1 whatever the class size)
        areas = [polygon_area(c.get_paths()[0].vertices) for c in ax.collections]
        assert areas == pytest.approx([1.0, 1.0], rel=1e-6)
        assert len(data_lines(ax)) == 2  # one KDE per class
    assert legend_texts(fig) == ["different identity", "same identity"]
    with pytest.raises(ValueError, match="both same- and different-identity"):
        figures.similarity_histograms({"x": (scores, np.ones_like(scores))})
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        figures.similarity_histograms({"x": (np.ones(3), np.ones(2))})


def test_roc_det_one_curve_per_scorer_and_chance():
    curves = {"ours": (np.array([0, 0.1, 0.3, 1.0]), np.array([0, 0.5, 0.8, 1.0])),
              "oracle": (np.array([0, 0.05, 1.0]), np.array([0, 0.9, 1.0]))}
    fig = figures.roc_det_figure(curves)
    roc, det = fig.axes
    drawn = data_lines(roc)
    assert len(drawn) == 2
    assert np.allclose(drawn[0].get_xdata(), curves["ours"][0]) and np.allclose(drawn[0].get_ydata(), curves["ours"][1])
    assert "chance" in line_labels(roc)
    # DET keeps only the inner points (rates strictly between 0 and 1): 2 of ours, 1 of the oracle's
    assert sorted(len(line.get_xdata()) for line in data_lines(det)) == [1, 2]
    assert legend_texts(fig)[:2] == ["ours", "oracle"]
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        figures.roc_det_figure({"bad": ([0, 2], [0, 1])})


def test_grouped_auc_bars_and_the_given_intervals():
    groups = {"ours": {"random": 71.0, "G": 52.0, "N": 70.0, "A": 69.0, "GNA": 49.0},
              "paper": {"random": 82.5, "G": 68.8, "N": 70.8, "A": 76.9, "GNA": 58.2},
              "oracle": {"random": 89.0, "G": 76.0}}  # a missing value leaves a gap
    ci = {"ours": {"random": (69.5, 72.0), "G": (50.0, 53.5), "GNA": (47.0, 51.0)}}
    fig = figures.grouped_auc_figure(groups, ci)
    (ax,) = fig.axes
    bars = bar_patches(ax)
    assert len(bars) == 12
    centre = {round(p.get_height(), 6): round(p.get_x() + p.get_width() / 2, 6) for p in bars}
    expected = sorted((centre[groups["ours"][k]], low, high) for k, (low, high) in ci["ours"].items())
    assert interval_segments(ax) == expected
    assert "chance (50%)" in line_labels(ax)
    with pytest.raises(ValueError, match="low <= high"):
        figures.grouped_auc_figure(groups, {"ours": {"G": (55.0, 50.0)}})
    with pytest.raises(ValueError, match="no AUC to draw it on"):
        figures.grouped_auc_figure(groups, {"oracle": {"GNA": (50.0, 55.0)}})


def test_matching_lines_and_chance():
    curves = {"V-F ours": {2: 70.0, 4: 45.0, 6: 33.0}, "V-F paper": {"2": 83, "4": 64, "6": 51}}
    fig = figures.matching_figure(curves)
    (ax,) = fig.axes
    drawn = sorted((list(line.get_xdata()), list(line.get_ydata())) for line in data_lines(ax))
    assert drawn == [([2, 4, 6], [70.0, 45.0, 33.0]), ([2, 4, 6], [83.0, 64.0, 51.0])]
    chance = next(line for line in ax.get_lines() if line.get_label() == "chance (1/N)")
    assert np.allclose(chance.get_ydata(), 100 / np.arange(2, 7))


def test_image_panels(tmp_path):
    manifest = fake_preprocessed(tmp_path, {"train": 3}, n_face=2, n_voice=2, face_size=16, freq=33)
    manifest["gender"] = "f"
    fig = figures.sample_grid(manifest, identities=2, faces=2, voices=1)
    assert len(fig.axes) == 2 * 3
    assert sum(len(ax.images) for ax in fig.axes) == 6
    faces = [np.zeros((16, 16, 3), np.uint8)] * 3
    fig = figures.retrieval_panel(np.zeros((33, 20), np.float16), faces, [True, False, True], "query")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[1:]] == ["#1 match", "#2", "#3 match"]


def test_vad_figure_shades_exactly_the_dropped_samples():
    cfg = VoiceConfig()
    rng = np.random.default_rng(0)
    audio = np.r_[rng.normal(0, 0.3, 8000), np.zeros(4000), rng.normal(0, 0.3, 8000)].astype(np.float32)
    mask, _ = vad_mask(audio, cfg.sample_rate, cfg)
    fig = figures.vad_figure(audio, mask, cfg.sample_rate)
    top, bottom = fig.axes
    shaded = sum(p.get_width() if hasattr(p, "get_width") else np.ptp(p.get_xy()[:, 0]) for p in top.patches)
    kept, _ = vad(audio, cfg.sample_rate, cfg)
    assert shaded == pytest.approx((len(audio) - len(kept)) / cfg.sample_rate, abs=1e-6)
    assert len(bottom.get_lines()[0].get_xdata()) == len(kept)


# --- analysis ----------------------------------------------------------------------------------------
def probe_table() -> pd.DataFrame:
    """3 representations x 2 modalities x 6 attributes (3 categories, 3 traits)."""
    rows = []
    for r, representation in enumerate(["input features", "backbone", "fusion u/v"]):
        for modality in ("voice", "face"):
            for attribute, chance in (("gender", 0.5), ("nationality", 0.2), ("age", 0.34)):
                rows.append({"representation": representation, "modality": modality, "attribute": attribute,
                             "metric": "accuracy", "score": chance + 0.1 * r, "chance": chance})
            for attribute in ("build", "length", "liveliness"):
                rows.append({"representation": representation, "modality": modality, "attribute": attribute,
                             "metric": "r2", "score": 0.1 * r - 0.05, "chance": 0.0})
    return pd.DataFrame(rows)


def test_probe_figure_panels_bars_and_chance_ticks():
    fig = figures.probe_figure(probe_table())
    assert len(fig.axes) == 4  # (voice, face) x (accuracy, R^2)
    for ax in fig.axes:
        assert len(bar_patches(ax)) == 9  # 3 attributes x 3 representations
        ticks = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() == "chance level"]
        assert len(ticks) == 3  # one across each attribute's bars
    accuracy = fig.axes[0]
    assert accuracy.get_title() == "voice: categories"
    gender_ticks = sorted(float(c.get_segments()[0][0, 1]) for c in accuracy.collections
                          if c.get_label() == "chance level")
    assert gender_ticks.count(0.2) == 1 and gender_ticks.count(0.5) == 1
    assert {"input features", "backbone", "fusion u/v", "chance level"} <= set(legend_texts(fig))


def test_probe_figure_intervals_clipping_and_bad_tables():
    table = probe_table()
    r2 = table.index[(table.metric == "r2")][0]
    table.loc[r2, "score"] = -4.2
    table["low"], table["high"] = table["score"] - 0.05, table["score"] + 0.05
    fig = figures.probe_figure(table)
    assert sum(len(interval_segments(ax)) for ax in fig.axes) == len(table)
    assert [t.get_text().strip() for ax in fig.axes for t in ax.texts] == ["input features: -4.2"]  # clipped
    clipped = min(p.get_y() + min(0, p.get_height()) for ax in fig.axes for p in bar_patches(ax))
    assert clipped == pytest.approx(figures.R2_FLOOR)
    with pytest.raises(ValueError, match="lacks column"):
        figures.probe_figure(table.drop(columns="chance"))
    with pytest.raises(ValueError, match="unknown metric"):
        figures.probe_figure(table.assign(metric="auc"))
    with pytest.raises(ValueError, match="repeated probe"):
        figures.probe_figure(pd.concat([table, table.head(1)]))


def test_paired_differences_dots_per_seed_intervals_and_margin():
    rows = [{"label": "fusion - backbone", "estimate": 1.0, "low": -0.5, "high": 2.5, "seed": s} for s in (0, 1, 2)]
    rows += [{"label": "fusion - backbone", "estimate": 1.1, "low": 0.2, "high": 2.0, "verdict": "holds"}]
    rows += [{"label": "dual - single", "estimate": 0.2, "low": -0.8, "high": 1.1, "margin": 1.5}]
    fig = figures.paired_differences_figure(rows)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == ["fusion - backbone: holds", "dual - single"]  # written above each row
    dots = [line for line in ax.get_lines() if line.get_label().startswith("seed ")]
    assert len(dots) == 3
    intervals = sorted((round(float(s[0, 0]), 6), round(float(s[1, 0]), 6))
                       for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments())
    assert intervals == sorted((r["low"], r["high"]) for r in rows)
    zero = [line for line in ax.get_lines() if line.get_label() == "no difference"]
    assert len(zero) == 1 and np.allclose(zero[0].get_xdata(), 0)
    band = [c for c in ax.collections if c.get_label() == "equivalence margin"]
    assert len(band) == 1
    xs = band[0].get_paths()[0].vertices[:, 0]
    assert xs.min() == pytest.approx(-1.5) and xs.max() == pytest.approx(1.5)
    expected = {"seed 0", "seed 1", "seed 2", "mean over seeds, holds", "equivalence margin", "no difference"}
    assert expected <= set(legend_texts(fig))
    with pytest.raises(ValueError, match="row 0 lacks \\['high'\\]"):
        figures.paired_differences_figure([{"label": "x", "estimate": 0, "low": 0}])
    with pytest.raises(ValueError, match="several margins"):
        figures.paired_differences_figure([{**rows[-1], "margin": 1.0}, rows[-1]])


def test_paired_differences_without_an_interval_draw_the_dot_alone():
    fig = figures.paired_differences_figure([{"label": "a", "estimate": 1.0, "low": None, "high": None, "seed": 0},
                                             {"label": "a", "estimate": 2.0, "low": 0.5, "high": 3.5, "seed": 1}])
    ax = fig.axes[0]
    assert len(ax.collections) == 1  # one interval line, for the seed that has one
    with pytest.raises(ValueError, match="one interval bound"):
        figures.paired_differences_figure([{"label": "a", "estimate": 1.0, "low": 0.0, "high": None}])
