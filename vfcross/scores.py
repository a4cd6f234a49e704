"""Verification lists (listed pairs, or every pair of grouped rows) scored in memory that does not grow with the pairs.

:class:`ListScore` holds the exact AUC and EER and the identity-level replicates of both (a pair belongs to its
voice's identity). A large every-pair list (:class:`AllPairs`) is streamed in blocks of one voice identity, the
EER's replicates read from per-identity histograms within a stated bound (``eer_bound``). docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vfcross.metrics import _check_binary, _interpolated_eer, eer, roc_points

#: Bytes per pair of the in-memory path (scores, labels, codes and the EER's sorted copies).
BYTES_PER_PAIR = 100
#: Histogram bins of the streamed path (per identity, positives and negatives), over ``SCORE_RANGE``.
BINS = 65536
SCORE_RANGE = (-1.0, 1.0)

#: (voice identity code, float scores of that identity's voices against some faces), as a list streams them.
Blocks = Callable[[bool], Iterator[tuple[int, np.ndarray]]]


def exact_pairs(memory_gb: float) -> int:
    """The most pairs scored in memory (the rest are streamed) within ``memory_gb``."""
    return int(memory_gb * 1e9 / BYTES_PER_PAIR)


def block_pairs(memory_gb: float) -> int:
    """Scores of one streamed block (float32 scores, their sorted copy, ranks): an eighth of the budget."""
    return max(1, int(memory_gb * 1e9 / 8 / 16))


@dataclass(eq=False)
class ListScore:
    """One verification list scored by one system. ``pairs[i, k]`` counts the (positive of identity i, negative of
    identity k) pairs in the right order, ties half; a small list keeps its ``arrays`` (scores, labels, codes), a
    streamed one its histogram ``edges`` and per identity the positives and negatives above each edge (``binned``)."""
    identities: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    pairs: np.ndarray
    eer: float
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    binned: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    eer_bound: float = 0.0

    def __len__(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    @property
    def auc(self) -> float:
        """P(positive > negative), ties half: exactly :func:`vfcross.metrics.roc_auc` of the list."""
        return float(self.pairs.sum() / (self.positives.sum() * self.negatives.sum()))

    def value(self, metric: str) -> float:
        """The list's ``"auc"`` or ``"eer"``."""
        return self.auc if metric == "auc" else self.eer

    @classmethod
    def of(cls, scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray,
           identities: np.ndarray | None = None) -> ListScore:
        """A list given as arrays; ``clusters`` is each pair's identity, among ``identities`` (default: those seen)."""
        scores, labels, _ = _check_binary(scores, labels)
        universe, codes = _codes(clusters, identities, len(scores))
        m = len(universe)
        pairs = np.zeros((m, m))
        positive, p_codes = scores[labels], codes[labels]
        negatives = np.bincount(codes[~labels], minlength=m)
        grouped, ends = scores[~labels][np.argsort(codes[~labels], kind="stable")], np.cumsum(negatives)
        for k in np.flatnonzero(negatives):
            part = np.sort(grouped[ends[k] - negatives[k]:ends[k]])
            below = np.searchsorted(part, positive, "left") + np.searchsorted(part, positive, "right")
            pairs[:, k] = np.bincount(p_codes, weights=below / 2, minlength=m)
        return cls(universe, np.bincount(p_codes, minlength=m).astype(float), negatives.astype(float), pairs,
                   eer(scores, labels), arrays=(scores, labels, codes))

    @classmethod
    def stream(cls, blocks: Blocks, identities: np.ndarray, memory_gb: float = 2.0) -> ListScore:
        """A list given as ``blocks(positive)``, each (voice identity code, scores), never held whole. ``pairs`` is
        exact (every positive ranked in each sorted block); the EER's crossing is found on the histograms and refined
        exactly on one more pass over the negatives inside its bin."""
        m, budget = len(identities), memory_gb * 1e9
        bins = int(min(BINS, max(256, budget / 4 / (16 * m))))
        edges = np.r_[-np.inf, np.linspace(*SCORE_RANGE, bins - 1), np.inf]
        codes, positive = _gathered(blocks(True))
        if 24 * len(positive) > budget / 2:  # float32 scores, int32 codes, and an int64 order while sorting
            raise ValueError(f"the list's {len(positive):,} positive pairs do not fit eval.memory_gb = {memory_gb}: "
                             "raise it, or sample pairs with eval.n_pairs")
        chunk = block_pairs(memory_gb)
        order = np.argsort(positive, kind="stable")
        positive, codes = positive[order], codes[order]
        cells = codes * bins + np.searchsorted(edges, positive, "right") - 1
        above_pos = _above(np.bincount(cells, minlength=m * bins).reshape(m, bins))
        pairs, hist_neg = np.zeros((m, m)), np.zeros((m, bins))
        for k, block in blocks(False):
            block = np.sort(block.ravel())
            hist_neg[k] += np.diff(np.searchsorted(block, edges, "left"))
            for start in range(0, len(positive), chunk):
                part = positive[start:start + chunk]
                ranks = np.searchsorted(block, part, "left") + np.searchsorted(block, part, "right")
                pairs[:, k] += np.bincount(codes[start:start + chunk], weights=ranks, minlength=m)
        pairs /= 2
        above_neg = _above(hist_neg)
        del hist_neg
        score = cls(np.asarray(identities), above_pos[:, -1], above_neg[:, -1], pairs, np.nan,
                    binned=(edges, above_pos, above_neg))
        if not (score.positives.sum() and score.negatives.sum()):
            raise ValueError("need both positive and negative pairs")
        score.eer = _streamed_eer(blocks, positive, edges, above_pos, above_neg)
        return score

    def replicates(self, metric: str, draws: np.ndarray, identities: np.ndarray | None = None) -> np.ndarray:
        """The metric on each identity resample (``draws``: resamples x identities, how often each is drawn).
        ``identities`` names the draws' columns when they are not this list's own; NaN where a class is missing."""
        w = np.atleast_2d(np.asarray(draws, dtype=np.float64))
        if identities is not None and not np.array_equal(identities, self.identities):
            w = w[:, _codes(self.identities, identities, len(self.identities))[1]]
        if metric == "auc":
            denominator = (w @ self.positives) * (w @ self.negatives)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(denominator > 0, np.einsum("bi,bi->b", w @ self.pairs, w) / denominator, np.nan)
        if self.arrays is not None:
            return _IdentityEER(*self.arrays, len(self.identities))(w)
        values, bound = _binned_eer(w, *self.binned[1:])
        self.eer_bound = max(self.eer_bound, bound)
        return values

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """False and true positive rates from (0, 0) to (1, 1): every threshold, or the histogram edges."""
        if self.arrays is not None:
            return roc_points(*self.arrays[:2])[:2]
        tps, fps = self.binned[1].sum(0), self.binned[2].sum(0)
        return fps / fps[-1], tps / tps[-1]


def _codes(clusters: np.ndarray, identities: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted universe, each cluster's index in it); ValueError for a label outside ``identities``."""
    clusters = np.asarray(clusters).ravel()
    if len(clusters) != n:
        raise ValueError(f"clusters must give each of the {n} pairs one identity, got {len(clusters)}")
    universe = np.unique(clusters) if identities is None else np.unique(np.asarray(identities))
    codes = np.searchsorted(universe, clusters)
    if len(universe) == 0 or (codes >= len(universe)).any() or (universe[np.minimum(codes, len(universe) - 1)]
                                                                 != clusters).any():
        raise ValueError("clusters hold labels that are not among the given identities")
    return universe, codes


def _gathered(blocks: Iterable[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scores) of blocks concatenated."""
    parts = [(np.full(block.size, k, dtype=np.int32), block.ravel()) for k, block in blocks]
    if not parts:
        return np.empty(0, dtype=np.int32), np.empty(0)
    return tuple(np.concatenate(column) for column in zip(*parts))


def _above(counts: np.ndarray) -> np.ndarray:
    """Per row of bin ``counts``, the count above each edge from the top (column 0: none) to the bottom (all)."""
    out = np.zeros((len(counts), counts.shape[1] + 1))
    np.cumsum(counts[:, ::-1], axis=1, out=out[:, 1:])
    return out


def _crossings(w: np.ndarray, above_positive: np.ndarray, above_negative: np.ndarray):
    """(row, ROC point r, true and false positives at every point) for each row of identity weights ``w`` (rows x
    identities) holding both classes; ``above_*[i, q]`` counts identity i's pairs above ROC point q (thresholds
    falling with q), and FPR = 1 - TPR is crossed between points r - 1 and r."""
    tps, fps = w @ above_positive, w @ above_negative
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = (1 - tps / tps[:, -1:]) - fps / fps[:, -1:]
    for b in np.flatnonzero((tps[:, -1] > 0) & (fps[:, -1] > 0)):
        yield b, int(np.argmax(gap[b] <= 0)), tps[b], fps[b]  # r >= 1: the gap is 1 at point 0


def _streamed_eer(blocks: Blocks, positive: np.ndarray, edges: np.ndarray, above_positive: np.ndarray,
                  above_negative: np.ndarray) -> float:
    """The exact EER: the bin where FPR meets 1 - TPR, then the ROC points inside it from one more pass, which
    keeps only the bin's distinct scores and their counts."""
    _, r, tp_above, fp_above = next(_crossings(np.ones((1, len(above_positive))), above_positive, above_negative))
    low, high = edges[len(edges) - 1 - r], edges[len(edges) - r]  # the bin between ROC points r - 1 and r
    found = positive[np.searchsorted(positive, low, "left"):np.searchsorted(positive, high, "left")]
    values, counts = np.unique(found.astype(np.float64), return_counts=True)
    counts = np.c_[counts, np.zeros(len(counts))]  # (positives, negatives) per distinct score
    for _, block in blocks(False):
        inside, n = np.unique(block[(block >= low) & (block < high)].astype(np.float64), return_counts=True)
        values, where = np.unique(np.r_[values, inside], return_inverse=True)
        counts = np.c_[np.bincount(where, np.r_[counts[:, 0], np.zeros(len(n))], len(values)),
                       np.bincount(where, np.r_[counts[:, 1], n], len(values))]
    tps = tp_above[r - 1] + np.r_[0.0, np.cumsum(counts[::-1, 0])]
    fps = fp_above[r - 1] + np.r_[0.0, np.cumsum(counts[::-1, 1])]
    return _interpolated_eer(fps / fp_above[-1], tps / tp_above[-1])


def _binned_eer(w: np.ndarray, above_positive: np.ndarray, above_negative: np.ndarray,
                batch: int = 16) -> tuple[np.ndarray, float]:
    """Each resample's EER interpolated between the histogram edges around its crossing, and the largest error
    (the resample's share of negatives in that bin)."""
    out, bound = np.full(len(w), np.nan), 0.0
    for start in range(0, len(w), batch):
        for b, r, tps, fps in _crossings(w[start:start + batch], above_positive, above_negative):
            fpr, tpr = fps[[r - 1, r]] / fps[-1], tps[[r - 1, r]] / tps[-1]
            out[start + b] = _interpolated_eer(fpr, tpr)
            bound = max(bound, float(fpr[1] - fpr[0]))
    return out, bound


class _IdentityEER:
    """EER under identity weights, exactly, without a pass over every pair per resample. Per identity, positives and
    negatives above ~``grid`` ROC points are counted once; a resample finds its crossing by two matrix products and
    weighs only the pairs between the two points around it."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray, codes: np.ndarray, m: int, grid: int = 512) -> None:
        order = np.argsort(-scores, kind="mergesort")
        ordered = -scores[order]
        group = np.r_[0, np.cumsum(ordered[1:] != ordered[:-1])]
        n_groups = int(group[-1]) + 1
        self.codes, self.labels = np.asarray(codes, dtype=np.int64)[order], labels[order]
        self.starts = np.r_[np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]), len(ordered)]
        self.points = np.unique(np.linspace(0, n_groups, grid + 1).astype(np.int64))  # ROC point q: groups < q
        segment = np.searchsorted(self.points, group, side="right") - 1
        cells = len(self.points) - 1
        count = np.bincount(self.codes * cells + segment, weights=self.labels, minlength=m * cells).reshape(m, cells)
        total = np.bincount(self.codes * cells + segment, minlength=m * cells).reshape(m, cells)
        self.above_positive = np.c_[np.zeros(m), np.cumsum(count, axis=1)]
        self.above_negative = np.c_[np.zeros(m), np.cumsum(total - count, axis=1)]

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """EER for each row of identity weights (resamples, m); NaN where a class has no weight."""
        out = np.full(len(w), np.nan)
        for b, r, tps, fps in _crossings(w, self.above_positive, self.above_negative):
            first, last = self.points[r - 1], self.points[r]
            rows = slice(self.starts[first], self.starts[last])
            weight, positive = w[b][self.codes[rows]], self.labels[rows]
            bounds = self.starts[first:last] - self.starts[first]
            tp = tps[r - 1] + np.r_[0.0, np.cumsum(np.add.reduceat(np.where(positive, weight, 0.0), bounds))]
            fp = fps[r - 1] + np.r_[0.0, np.cumsum(np.add.reduceat(np.where(positive, 0.0, weight), bounds))]
            out[b] = _interpolated_eer(fp / fps[-1], tp / tps[-1])
        return out


def positions(values: np.ndarray, name: str, ndim: int) -> np.ndarray:
    """A read-only int64 copy of row positions, checked to be ``ndim``-dimensional and >= 0."""
    array = np.asarray(values)
    if array.ndim != ndim or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a {ndim}-d integer array, got shape {array.shape}, dtype {array.dtype}")
    array = array.astype(np.int64)
    if (array < 0).any():
        raise ValueError(f"{name} holds negative row positions")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class VerificationPairs:
    """Listed voice-face pairs (row positions, label 1 = same identity) under restriction ``name``. ``coverage``:
    which rows of an official list these are; ``drawn_from``: pairs they were sampled from (0: none)."""
    name: str
    voice: np.ndarray
    face: np.ndarray
    labels: np.ndarray
    coverage: tuple = ()
    drawn_from: int = 0

    def __post_init__(self) -> None:
        for name in ("voice", "face", "labels"):
            object.__setattr__(self, name, positions(getattr(self, name), name, 1))
        if not len(self.voice) == len(self.face) == len(self.labels):
            raise ValueError("voice, face and labels differ in length")
        if not np.isin(self.labels, (0, 1)).all():
            raise ValueError("labels must be 0 or 1")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sampling(self) -> str:
        """E.g. "sampled 200 of 1,440 pairs without replacement" ("" if not sampled)."""
        return f"sampled {len(self):,} of {self.drawn_from:,} pairs without replacement" if self.drawn_from else ""

    def scores(self, vectors: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Cosine similarity of every pair (row-wise dot products of L2-normalised ``vectors``), in chunks."""
        vectors = _rows(vectors, max(self.voice.max(initial=-1), self.face.max(initial=-1)) + 1)
        parts = [np.einsum("ij,ij->i", vectors[self.voice[s:s + chunk]], vectors[self.face[s:s + chunk]])
                 for s in range(0, len(self), chunk)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=vectors.dtype)

    def score(self, table: pd.DataFrame, vectors: np.ndarray | None = None, pair_scores=None,
              memory_gb: float = 2.0) -> ListScore:
        """The list scored by ``vectors`` (or ``pair_scores(voice_rows, face_rows)``), pairs belonging to voices."""
        scores = self.scores(vectors) if pair_scores is None else pair_scores(self.voice, self.face)
        return ListScore.of(scores, self.labels, table["identity"].to_numpy(dtype=str)[self.voice])


def _rows(vectors: np.ndarray, needed: int) -> np.ndarray:
    """``vectors`` as a 2-d array with a row for every position below ``needed``."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) < needed:
        raise ValueError(f"vectors must be (rows, d) with at least {needed} rows, got {vectors.shape}")
    return vectors


@dataclass(frozen=True)
class Groups:
    """Rows of one modality grouped by identity code: ``rows[starts[c]:starts[c] + counts[c]]``."""
    rows: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, codes: np.ndarray, positions: np.ndarray, n: int) -> Groups:
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=n)
        return cls(positions[order], np.r_[0, np.cumsum(counts)[:-1]], counts)

    def of_identity(self, c: int) -> np.ndarray:
        return self.rows[self.starts[c]:self.starts[c] + self.counts[c]]

    def draw(self, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn row of each identity code in ``identities``."""
        return self.rows[self.starts[identities] + rng.integers(0, self.counts[identities])]


@dataclass(frozen=True, eq=False)
class AllPairs:
    """Every voice of identity A against every face of B, for A and B sharing ``keys`` (B == A: positives). Never held
    whole: :meth:`score` computes them in blocks of one voice identity."""
    name: str
    identities: np.ndarray
    voices: Groups
    faces: Groups
    keys: np.ndarray
    coverage: tuple = ()
    drawn_from: int = 0
    sampling: str = ""

    def counts(self) -> tuple[int, int]:
        """(positive, negative) pairs."""
        v, f = self.voices.counts, self.faces.counts
        per_key = np.bincount(self.keys, weights=f)[self.keys]
        return int(v @ f), int(v @ (per_key - f))

    def __len__(self) -> int:
        return sum(self.counts())

    def _faces_met(self, k: int, positive: bool) -> np.ndarray:
        """The face rows identity k's voices are compared with."""
        if positive:
            return self.faces.of_identity(k)
        return np.concatenate([self.faces.of_identity(b) for b in np.flatnonzero(self.keys == self.keys[k]) if b != k]
                              or [np.empty(0, dtype=np.int64)])

    def blocks(self, block, positive: bool, max_pairs: int):
        """(k, ``block(voice rows, face rows)``) over every voice identity k, at most ``max_pairs`` scores each."""
        for k in range(len(self.identities)):
            voices, faces = self.voices.of_identity(k), self._faces_met(k, positive)
            step = max(1, max_pairs // max(1, len(faces)))
            for start in range(0, len(voices) if len(faces) else 0, step):
                yield k, block(voices[start:start + step], faces)

    def score(self, table: pd.DataFrame, vectors: np.ndarray | None = None, pair_scores=None,
              memory_gb: float = 2.0):
        """Every pair scored by ``vectors`` (cosine) or ``pair_scores(voice_rows, face_rows)``: listed and scored as
        explicit pairs up to :func:`exact_pairs`, else streamed in blocks (matrix products)."""
        if len(self) <= exact_pairs(memory_gb):
            return self.explicit().score(table, vectors, pair_scores)
        if pair_scores is None:
            vectors = np.asarray(vectors)
            block = lambda v, f: vectors[v] @ vectors[f].T if 4 * len(f) < len(vectors) else (vectors[v] @ vectors.T)[:, f]
        else:
            block = lambda v, f: pair_scores(np.repeat(v, len(f)), np.tile(f, len(v))).reshape(len(v), len(f))
        return ListScore.stream(lambda positive: self.blocks(block, positive, block_pairs(memory_gb)), self.identities,
                                memory_gb)

    def explicit(self):
        """Every pair listed (voice-identity major, then face identity), as the generated list before blocks."""
        return self._pairs(np.arange(len(self)), 0)

    def sample(self, n_pairs: int, rng: np.random.Generator) -> VerificationPairs:
        """``n_pairs`` distinct pairs, half positive where each class has enough, in the order of every pair. Drawn by
        their ordinal among the positives and the negatives, so none is built beyond the sample."""
        a, b = np.nonzero(self.keys[:, None] == self.keys[None, :])
        sizes = self.voices.counts[a] * self.faces.counts[b]
        starts = np.cumsum(sizes) - sizes
        positive = a == b
        n_pos, n_neg = int(sizes[positive].sum()), int(sizes[~positive].sum())
        n_negative = min(n_pairs - min(n_pairs // 2, n_pos), n_neg)
        chosen = []
        for mask, n_class, n in ((positive, n_pos, n_pairs - n_negative), (~positive, n_neg, n_negative)):
            ordinal = rng.choice(n_class, n, replace=False)
            ends = np.cumsum(sizes[mask])
            block = np.searchsorted(ends, ordinal, "right")
            chosen.append(starts[mask][block] + ordinal - (ends - sizes[mask])[block])
        return self._pairs(np.sort(np.concatenate(chosen)), n_pos + n_neg)

    def _pairs(self, where: np.ndarray, drawn_from: int):
        """The pairs at ordinals ``where`` (sorted) of the every-pair order, as listed pairs."""
        a, b = np.nonzero(self.keys[:, None] == self.keys[None, :])
        sizes = self.voices.counts[a] * self.faces.counts[b]
        starts = np.cumsum(sizes) - sizes
        block = np.searchsorted(starts, where, "right") - 1
        within, width = where - starts[block], self.faces.counts[b[block]]
        voice = self.voices.rows[self.voices.starts[a[block]] + within // width]
        face = self.faces.rows[self.faces.starts[b[block]] + within % width]
        return VerificationPairs(self.name, voice, face, (a[block] == b[block]).astype(np.int64), drawn_from=drawn_from)


def every_pair(table: pd.DataFrame) -> AllPairs:
    """Every voice-face pair of ``table``'s rows, whatever their split (the training loops' validation list)."""
    identities, codes = np.unique(table["identity"].to_numpy(dtype=str), return_inverse=True)
    rows, voice = np.arange(len(table)), table["modality"].to_numpy(dtype=str) == "voice"
    return AllPairs("random", identities, Groups.of(codes[voice], rows[voice], len(identities)),
                    Groups.of(codes[~voice], rows[~voice], len(identities)), np.zeros(len(identities), dtype=np.int64))


@dataclass(frozen=True)
class SeedScores:
    """One verification list scored by every training seed of every system (``scores[system][i]``: seed
    ``seeds[system][i]``); ``identities`` are the units every interval resamples."""
    restriction: str
    identities: np.ndarray
    scores: dict[str, list[ListScore]]
    seeds: dict[str, list[int]]
