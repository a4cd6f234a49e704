"""Evaluation protocols: verification pairs, 1:N matching trials, retrieval tasks.

Every protocol object refers to ROW POSITIONS (0 .. len(table) - 1, not
index labels) of one manifest-like table whose row i corresponds to
embedding vector i. The table has at least the columns ``identity``,
``modality`` ('voice' | 'face') and ``split``; the demographic restrictions
read ``gender``, ``nationality`` and ``age``, the official lists ``relpath``.

Protocols come from two places and end up as the same objects:

* generators over the rows of one split: :func:`verification_pairs`
  takes every voice-face pair its restriction allows (or a sample of
  them without replacement), :func:`retrieval_task` every query against
  every gallery item, and :func:`matching_trials` draws trials from a
  seed (an identity first, then one of its samples, so identities with
  many samples do not dominate);
* the official VoxCeleb1 lists parsed by :mod:`vfcross.data.protocol_files`
  (:func:`from_verification_list`, :func:`from_matching_list`,
  :func:`from_galleries`), joined to the table through ``relpath``. A list
  row is scored only when all its files are rows of the table; the others
  are never dropped silently: the protocol's :class:`Coverage` counts them
  and names each one with the files it lacks.

The scoring helpers turn a protocol plus L2-normalised row vectors (the
voice rows hold voice embeddings v, the face rows face embeddings u) into
the inputs of :mod:`vfcross.metrics`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.data.protocol_files import (
    MatchingList,
    RetrievalGallery,
    VerificationList,
    manifest_rows,
)
from vfcross.metrics import retrieval_map

#: Attributes that a negative pair must share, per verification restriction.
RESTRICTIONS: dict[str, tuple[str, ...]] = {
    "random": (),
    "G": ("gender",),
    "N": ("nationality",),
    "A": ("age",),
    "GNA": ("gender", "nationality", "age"),
}
#: The restricted lists (paper Table 3), in that order: every restriction but "random".
GROUPED: tuple[str, ...] = tuple(name for name in RESTRICTIONS if name != "random")
#: Probe and candidate modality of each matching/retrieval direction.
DIRECTIONS: dict[str, tuple[str, str]] = {"v2f": ("voice", "face"), "f2v": ("face", "voice")}


def _positions(values: np.ndarray, name: str, ndim: int) -> np.ndarray:
    """A read-only int64 copy of row positions, checked to be ``ndim``-dimensional and >= 0."""
    array = np.asarray(values)
    if array.ndim != ndim or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a {ndim}-d integer array, got shape {array.shape}, dtype {array.dtype}")
    array = array.astype(np.int64)
    if (array < 0).any():
        raise ValueError(f"{name} holds negative row positions")
    array.flags.writeable = False
    return array


def _check_direction(direction: str) -> tuple[str, str]:
    """(probe modality, candidate modality) of a direction; ValueError for unknown ones."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    return DIRECTIONS[direction]


@dataclass(frozen=True, eq=False)
class Coverage:
    """Which rows of one official list file a protocol scores: those whose files are all rows of the table.

    ``rows`` is the number of rows in the file; ``missing_rows`` the 0-based
    positions (in file order) of the rows left out, and ``missing_files``
    for each of them the root-relative paths it references that the table
    lacks. Nothing leaves a protocol without being listed here.
    """

    source: str
    rows: int
    missing_rows: np.ndarray
    missing_files: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        """Check that every left-out row names the files it lacks; freeze the positions."""
        object.__setattr__(self, "missing_rows", _positions(self.missing_rows, "missing_rows", 1))
        if len(self.missing_files) != len(self.missing_rows):
            raise ValueError("missing_files must name the absent files of every missing row")

    @classmethod
    def of(cls, source: str, paths: np.ndarray, positions: np.ndarray) -> Coverage:
        """Coverage of a list whose rows reference ``paths`` (rows, k), found at table ``positions`` (-1: absent)."""
        paths = np.asarray(paths).reshape(len(positions), -1)
        absent = np.asarray(positions).reshape(len(positions), -1) < 0
        missing = np.flatnonzero(absent.any(axis=1))
        return cls(source, len(positions), missing, tuple(tuple(paths[i][absent[i]].tolist()) for i in missing))

    @property
    def name(self) -> str:
        """The list's file name."""
        return Path(self.source).name

    @property
    def scored(self) -> int:
        """Rows whose files are all in the table."""
        return self.rows - len(self.missing_rows)

    def as_dict(self) -> dict:
        """JSON-ready counts: ``{"list", "rows", "scored", "missing"}``."""
        return {"list": self.name, "rows": self.rows, "scored": self.scored, "missing": len(self.missing_rows)}


@dataclass(frozen=True, eq=False)
class VerificationPairs:
    """Voice-face verification pairs: row positions of the voice and the face, label 1 = same identity.

    ``name`` is the restriction the negatives obey ('random', 'G', 'N', 'A', 'GNA').
    ``coverage`` is empty for generated pairs; for an official list it says
    which of the list's rows these pairs are (:class:`Coverage`).
    ``drawn_from`` is the number of pairs of the generated list these were
    sampled from without replacement (0: every pair of it, or an official list).
    """

    name: str
    voice: np.ndarray
    face: np.ndarray
    labels: np.ndarray
    coverage: tuple[Coverage, ...] = ()
    drawn_from: int = 0

    def __post_init__(self) -> None:
        """Check names, shapes and labels; freeze the arrays."""
        if self.name not in RESTRICTIONS:
            raise ValueError(f"name must be one of {list(RESTRICTIONS)}, got {self.name!r}")
        object.__setattr__(self, "voice", _positions(self.voice, "voice", 1))
        object.__setattr__(self, "face", _positions(self.face, "face", 1))
        object.__setattr__(self, "labels", _positions(self.labels, "labels", 1))
        if not len(self.voice) == len(self.face) == len(self.labels):
            raise ValueError("voice, face and labels differ in length")
        if not np.isin(self.labels, (0, 1)).all():
            raise ValueError("labels must be 0 or 1")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sampling(self) -> str:
        """How a sampled list was drawn, e.g. "sampled 200 of 1,440 pairs without replacement" ("" if not sampled)."""
        return f"sampled {len(self):,} of {self.drawn_from:,} pairs without replacement" if self.drawn_from else ""


@dataclass(frozen=True, eq=False)
class MatchingTrials:
    """1:N matching trials: a probe row and N_max candidate rows of the other modality.

    ``direction`` 'v2f' means voice probes and face candidates, 'f2v' the
    reverse. Column 0 of ``candidates`` is the true match; the columns are
    nested, so :meth:`subset_n` gives the 1:n trials for any n <= N_max.
    ``coverage`` as in :class:`VerificationPairs`.
    """

    direction: str
    probes: np.ndarray
    candidates: np.ndarray
    coverage: tuple[Coverage, ...] = ()

    def __post_init__(self) -> None:
        """Check the direction and shapes; freeze the arrays."""
        _check_direction(self.direction)
        object.__setattr__(self, "probes", _positions(self.probes, "probes", 1))
        object.__setattr__(self, "candidates", _positions(self.candidates, "candidates", 2))
        if len(self.candidates) != len(self.probes) or self.candidates.ndim != 2 or self.candidates.shape[1] < 2:
            raise ValueError(
                f"candidates must have shape (trials={len(self.probes)}, N >= 2), got {self.candidates.shape}"
            )

    def __len__(self) -> int:
        return len(self.probes)

    @property
    def max_n(self) -> int:
        """Number of candidates per trial."""
        return self.candidates.shape[1]

    def subset_n(self, n: int) -> MatchingTrials:
        """The same trials with only the first ``n`` candidates (the true match and n - 1 impostors)."""
        if not 2 <= n <= self.max_n:
            raise ValueError(f"n must be in 2..{self.max_n}, got {n}")
        return MatchingTrials(self.direction, self.probes, self.candidates[:, :n], self.coverage)


@dataclass(frozen=True, eq=False)
class RetrievalTask:
    """Every query row ranks all gallery rows (the other modality); relevant = same identity.

    ``coverage`` as in :class:`VerificationPairs`: for official galleries,
    one entry per gallery file (the query modality's first).
    """

    direction: str
    queries: np.ndarray
    gallery: np.ndarray
    coverage: tuple[Coverage, ...] = ()

    def __post_init__(self) -> None:
        """Check the direction; freeze the arrays."""
        _check_direction(self.direction)
        object.__setattr__(self, "queries", _positions(self.queries, "queries", 1))
        object.__setattr__(self, "gallery", _positions(self.gallery, "gallery", 1))


@dataclass(frozen=True)
class _Groups:
    """Rows of one modality grouped by identity, for drawing a random sample of an identity."""

    rows: np.ndarray  # row positions sorted by identity code
    starts: np.ndarray  # per identity code: first index into rows
    counts: np.ndarray  # per identity code: number of rows

    @classmethod
    def of(cls, codes: np.ndarray, positions: np.ndarray, n_identities: int) -> _Groups:
        """Group ``positions`` by their identity ``codes`` (0 .. n_identities - 1)."""
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=n_identities)
        return cls(positions[order], np.r_[0, np.cumsum(counts)[:-1]], counts)

    def draw(self, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn row of each identity code in ``identities``."""
        return self.rows[self.starts[identities] + rng.integers(0, self.counts[identities])]


@dataclass(frozen=True)
class _Population:
    """The identities of one split that have both a voice and a face, with their rows."""

    identities: np.ndarray  # sorted identity strings; index = identity code
    voices: _Groups
    faces: _Groups
    first_row: np.ndarray  # per identity code: one row position, for identity-level attributes

    def groups(self, modality: str) -> _Groups:
        """The row groups of ``modality``."""
        return self.voices if modality == "voice" else self.faces


def _split_rows(table: pd.DataFrame, split: str) -> np.ndarray:
    """Row positions of ``table`` whose split is ``split`` (NA never matches)."""
    if split not in set(table["split"].dropna()):
        raise ValueError(f"no rows with split == {split!r}")
    return np.flatnonzero(table["split"].eq(split).fillna(False).to_numpy(dtype=bool))


def _population(table: pd.DataFrame, rows: np.ndarray) -> _Population:
    """Group ``rows`` of ``table`` into identities having both modalities."""
    identity = table["identity"].to_numpy(dtype=str)[rows]
    modality = table["modality"].to_numpy(dtype=str)[rows]
    complete = np.intersect1d(identity[modality == "voice"], identity[modality == "face"])
    keep = np.isin(identity, complete)
    rows, identity, modality = rows[keep], identity[keep], modality[keep]
    codes = np.searchsorted(complete, identity)
    voice, face = modality == "voice", modality == "face"
    _, first = np.unique(codes, return_index=True)
    return _Population(
        identities=complete,
        voices=_Groups.of(codes[voice], rows[voice], len(complete)),
        faces=_Groups.of(codes[face], rows[face], len(complete)),
        first_row=rows[first],
    )


def split_identities(table: pd.DataFrame, split: str = "test") -> np.ndarray:
    """Sorted identities of ``split`` that have at least one voice and one face: the protocols' population."""
    return _population(table, _split_rows(table, split)).identities


def _without_missing(table: pd.DataFrame, rows: np.ndarray, attributes: tuple[str, ...], what: str) -> np.ndarray:
    """``rows`` minus those with NA in any of ``attributes``, warning how many were excluded."""
    if not attributes:
        return rows
    missing = table[list(attributes)].iloc[rows].isna().any(axis=1).to_numpy(dtype=bool)
    if missing.any():
        identities = table["identity"].iloc[rows[missing]].nunique()
        warnings.warn(
            f"{what}: {int(missing.sum())} of {len(rows)} rows ({identities} identities) have no "
            f"{'/'.join(attributes)} and are excluded",
            stacklevel=3,
        )
    return rows[~missing]


def _attribute_keys(table: pd.DataFrame, population: _Population, attributes: tuple[str, ...]) -> np.ndarray:
    """Per identity code, an integer key equal for identities sharing all ``attributes``."""
    if not attributes:
        return np.zeros(len(population.identities), dtype=np.int64)
    values = table[list(attributes)].iloc[population.first_row].astype(str)
    return values.groupby(list(attributes), sort=True).ngroup().to_numpy(dtype=np.int64)


def _all_pairs(population: _Population, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voice rows, face rows, labels) of every voice of A against every face of B, for A and B sharing a key.

    B == A gives the positives; B != A with the same key the negatives. Each
    pair occurs exactly once, grouped by (voice identity, face identity).
    """
    a, b = np.nonzero(keys[:, np.newaxis] == keys[np.newaxis, :])
    voices, faces = population.voices, population.faces
    sizes = voices.counts[a] * faces.counts[b]
    pair = np.repeat(np.arange(len(a)), sizes)
    within = np.arange(len(pair)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    per_face = faces.counts[b[pair]]
    voice = voices.rows[voices.starts[a[pair]] + within // per_face]
    face = faces.rows[faces.starts[b[pair]] + within % per_face]
    return voice, face, (a[pair] == b[pair]).astype(np.int64)


def _sample(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n_pairs`` distinct pairs: half positive, half negative where each class has enough."""
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_negative = min(n_pairs - min(n_pairs // 2, len(positives)), len(negatives))
    n_positive = n_pairs - n_negative
    return np.sort(np.r_[rng.choice(positives, n_positive, replace=False),
                         rng.choice(negatives, n_negative, replace=False)])


def verification_pairs(
    table: pd.DataFrame, restriction: str, n_pairs: int, seed: int, split: str = "test"
) -> VerificationPairs:
    """Every voice-face verification pair of the identities of ``split`` (or ``n_pairs`` of them, sampled).

    Positives are every (voice, face) of one identity, negatives every
    (voice of A, face of B != A); under restriction G, N, A or GNA, B must
    share A's gender, nationality, age or all three. Why every pair: the
    identity, not the pair, is the unit of the (cluster bootstrap) interval,
    scoring is cheap, and sampling with replacement repeated about half of
    the positives of a 60-identity split. ``n_pairs`` = 0 scores every pair;
    a positive ``n_pairs`` below the total samples that many WITHOUT
    replacement, half positive and half negative where each class has
    enough (``seed``), and the result's ``drawn_from`` records the total.
    Rows with NA in a restricted attribute are excluded (with a warning);
    ValueError if no identity shares the restriction with another (no
    negative). Only identities with both a voice and a face in the split
    take part.
    """
    if restriction not in RESTRICTIONS:
        raise ValueError(f"restriction must be one of {list(RESTRICTIONS)}, got {restriction!r}")
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be 0 (every pair) or a number of pairs to sample, got {n_pairs}")
    attributes = RESTRICTIONS[restriction]
    rows = _without_missing(table, _split_rows(table, split), attributes, f"verification {restriction}")
    population = _population(table, rows)
    if len(population.identities) == 0:
        raise ValueError(f"verification {restriction}: no identity of split {split!r} has both a voice and a face")
    voice, face, labels = _all_pairs(population, _attribute_keys(table, population, attributes))
    if labels.all():
        raise ValueError(
            f"verification {restriction}: no identity of split {split!r} shares "
            f"{'/'.join(attributes) or 'the split'} with another identity, so no negative pair exists"
        )
    if not 0 < n_pairs < len(labels):
        return VerificationPairs(restriction, voice, face, labels)
    keep = _sample(labels, n_pairs, np.random.default_rng(seed))
    return VerificationPairs(restriction, voice[keep], face[keep], labels[keep], drawn_from=len(labels))


def matching_trials(
    table: pd.DataFrame, direction: str, n_trials: int, seed: int, max_n: int = 10, split: str = "test"
) -> MatchingTrials:
    """1:N matching trials drawn from the identities of ``split``, nested for N = 2 .. ``max_n``.

    Each trial draws a probe identity A uniformly and one of its samples of
    the probe modality; the true match (column 0) is a random sample of A's
    other modality, followed by ``max_n - 1`` impostors: random samples of
    distinct identities != A, in random order, so the first k columns are a
    1:k trial. ValueError if the split has fewer than ``max_n`` identities
    with both modalities.
    """
    probe_modality, candidate_modality = _check_direction(direction)
    if max_n < 2 or n_trials < 1:
        raise ValueError(f"need max_n >= 2 and n_trials >= 1, got max_n={max_n}, n_trials={n_trials}")
    population = _population(table, _split_rows(table, split))
    n_identities = len(population.identities)
    if n_identities < max_n:
        raise ValueError(
            f"matching {direction}: 1:{max_n} trials need {max_n} identities with both modalities in "
            f"split {split!r}, found {n_identities}"
        )
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_identities, n_trials)
    identities = np.empty((n_trials, max_n), dtype=np.int64)
    identities[:, 0] = truth
    for trial, identity in enumerate(truth):
        others = rng.choice(n_identities - 1, size=max_n - 1, replace=False)
        identities[trial, 1:] = others + (others >= identity)
    probes = population.groups(probe_modality).draw(truth, rng)
    candidates = population.groups(candidate_modality).draw(identities.ravel(), rng).reshape(identities.shape)
    return MatchingTrials(direction, probes, candidates)


def retrieval_task(table: pd.DataFrame, direction: str, split: str = "test") -> RetrievalTask:
    """Every sample of ``split`` in the query modality queries every sample of the other modality."""
    query_modality, gallery_modality = _check_direction(direction)
    rows = _split_rows(table, split)
    modality = table["modality"].to_numpy(dtype=str)[rows]
    return RetrievalTask(direction, rows[modality == query_modality], rows[modality == gallery_modality])


def _check_identities(table: pd.DataFrame, positions: np.ndarray, identities: np.ndarray, what: str) -> None:
    """Raise if the table's identities at ``positions`` disagree with the list's."""
    found = table["identity"].to_numpy(dtype=str)[positions]
    if (found != np.asarray(identities, dtype=str)).any():
        raise ValueError(f"{what}: the table's identities disagree with the list's (is it the same dataset?)")


def _present(coverage: Coverage) -> np.ndarray:
    """Mask of the list rows that ``coverage`` scores."""
    keep = np.ones(coverage.rows, dtype=bool)
    keep[coverage.missing_rows] = False
    return keep


def from_verification_list(vlist: VerificationList, table: pd.DataFrame, name: str | None = None) -> VerificationPairs:
    """The pairs of an official verification list whose voice and face are both rows of ``table``.

    The other pairs are left out and recorded in the result's ``coverage``
    (possibly all of them: then the pairs are empty). ``name`` overrides the
    list's own (needed when the file is not named as in the official release).
    """
    name = vlist.name if name is None else name
    if name not in RESTRICTIONS:
        raise ValueError(f"verification list name {name!r} is not one of {list(RESTRICTIONS)}; pass name=")
    voice = manifest_rows(vlist.voice_paths, table)
    face = manifest_rows(vlist.face_paths, table)
    coverage = Coverage.of(vlist.source, vlist.path_matrix(), np.stack([voice, face], axis=1))
    keep = _present(coverage)
    _check_identities(table, voice[keep], vlist.voice_identities[keep], vlist.source)
    _check_identities(table, face[keep], vlist.face_identities[keep], vlist.source)
    return VerificationPairs(name, voice[keep], face[keep], vlist.labels[keep], (coverage,))


def from_matching_list(mlist: MatchingList, table: pd.DataFrame) -> MatchingTrials:
    """The trials of an official matching list whose probe and candidates are all rows of ``table``.

    The other trials are left out and recorded in the result's ``coverage``
    (possibly all of them: then there are no trials).
    """
    probes = manifest_rows(mlist.probes, table)
    candidates = manifest_rows(mlist.candidates, table)
    coverage = Coverage.of(mlist.source, mlist.path_matrix(), np.column_stack([probes, candidates]))
    keep = _present(coverage)
    _check_identities(table, probes[keep], mlist.probe_identities[keep], mlist.source)
    _check_identities(table, candidates[keep], mlist.candidate_identities[keep], mlist.source)
    return MatchingTrials(mlist.direction, probes[keep], candidates[keep], (coverage,))


def _gallery_rows(gallery: RetrievalGallery, table: pd.DataFrame, modality: str) -> tuple[np.ndarray, Coverage]:
    """Row positions of a gallery's files in ``table`` (absent ones left out) and the gallery's coverage."""
    if gallery.modality != modality:
        raise ValueError(f"{gallery.source} is a {gallery.modality} gallery, expected {modality}")
    positions = manifest_rows(gallery.paths, table)
    coverage = Coverage.of(gallery.source, gallery.paths, positions)
    keep = _present(coverage)
    _check_identities(table, positions[keep], gallery.identities[keep], gallery.source)
    return positions[keep], coverage


def from_galleries(
    voice_gallery: RetrievalGallery, face_gallery: RetrievalGallery, table: pd.DataFrame, direction: str
) -> RetrievalTask:
    """A retrieval task from the official galleries: the query modality's gallery queries the other.

    Gallery entries whose files are not in ``table`` are left out and
    recorded in the result's ``coverage`` (one entry per gallery, the query
    gallery first).
    """
    _check_direction(direction)
    voices, voice_coverage = _gallery_rows(voice_gallery, table, "voice")
    faces, face_coverage = _gallery_rows(face_gallery, table, "face")
    if direction == "v2f":
        return RetrievalTask(direction, voices, faces, (voice_coverage, face_coverage))
    return RetrievalTask(direction, faces, voices, (face_coverage, voice_coverage))


def _check_vectors(vectors: np.ndarray, needed: int) -> np.ndarray:
    """``vectors`` as a 2-d array with a row for every position up to ``needed``."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) < needed:
        raise ValueError(f"vectors must be (rows, d) with at least {needed} rows, got {vectors.shape}")
    return vectors


def verification_scores(pairs: VerificationPairs, vectors: np.ndarray, chunk_size: int = 65536) -> np.ndarray:
    """Cosine similarity of every pair: row-wise dot products of L2-normalised row ``vectors``.

    ``chunk_size`` pairs at a time, so a list of every pair never gathers all its vectors at once.
    """
    vectors = _check_vectors(vectors, int(max(pairs.voice.max(initial=-1), pairs.face.max(initial=-1))) + 1)
    parts = [np.einsum("ij,ij->i", vectors[pairs.voice[start : start + chunk_size]],
                       vectors[pairs.face[start : start + chunk_size]]) for start in range(0, len(pairs), chunk_size)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=vectors.dtype)


def matching_similarities(trials: MatchingTrials, vectors: np.ndarray, chunk_size: int = 4096) -> np.ndarray:
    """(trials, N_max) cosine similarities of each probe to its candidates, column 0 the true match.

    Computed ``chunk_size`` trials at a time so the gathered candidate
    vectors stay small.
    """
    vectors = _check_vectors(vectors, int(max(trials.probes.max(), trials.candidates.max())) + 1)
    parts = [
        np.einsum(
            "td,tnd->tn",
            vectors[trials.probes[start : start + chunk_size]],
            vectors[trials.candidates[start : start + chunk_size]],
        )
        for start in range(0, len(trials), chunk_size)
    ]
    return np.concatenate(parts)


def retrieval_average_precisions(
    task: RetrievalTask, vectors: np.ndarray, table: pd.DataFrame, chunk_size: int = 1024
) -> np.ndarray:
    """Per-query average precision of a retrieval task (NaN: no same-identity item in the gallery).

    Relevance is identity equality read from ``table``; similarity is the
    dot product of L2-normalised row ``vectors`` (see
    :func:`~vfcross.metrics.retrieval_map`).
    """
    vectors = _check_vectors(vectors, len(table))
    identity = table["identity"].to_numpy(dtype=str)
    return retrieval_map(
        vectors[task.queries], vectors[task.gallery], identity[task.queries], identity[task.gallery], chunk_size
    )
