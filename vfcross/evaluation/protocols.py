"""Evaluation protocols, generated or official, and the one registry of what the evaluation scores.

A protocol refers to row positions of one manifest-like table whose row i is embedding i. Generated protocols come
from one split: every voice-face pair a restriction allows (:class:`AllPairs`, never held whole) or a sample,
matching trials drawn from a seed, every query against the whole gallery. Official VoxCeleb1 lists are joined to
the rows in one place (:func:`join`), with a :class:`Coverage` naming every row left out and why.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.config import EvalConfig
from vfcross.data.protocol_files import (ListFile, manifest_rows, read_matching_list, read_retrieval_gallery,
                                         read_verification_list)
from vfcross.data.voxceleb import META_FILE, read_meta
from vfcross.scores import AllPairs, Groups, VerificationPairs, _rows, positions
from vfcross.metrics import retrieval_map

#: Attributes that a negative pair must share, per verification restriction.
RESTRICTIONS: dict[str, tuple[str, ...]] = {"random": (), "G": ("gender",), "N": ("nationality",), "A": ("age",),
                                            "GNA": ("gender", "nationality", "age")}
#: The restricted lists (paper Table 3), in that order.
GROUPED: tuple[str, ...] = tuple(name for name in RESTRICTIONS if name != "random")
#: Probe and candidate modality of each matching/retrieval direction, and its short name in result keys.
DIRECTIONS: dict[str, tuple[str, str]] = {"v2f": ("voice", "face"), "f2v": ("face", "voice")}
SHORT = {"v2f": "vf", "f2v": "fv"}
#: Largest generated 1:N matching gallery (paper Table 4: N = 2 .. 10); the official 1:2 lists' restrictions.
MAX_N = 10
GROUPED_MATCHING = ("G", "N", "GN")
#: Why a list row's file is not scored.
ABSENT, NOT_IN_TABLE = "absent from the dataset", "not in the evaluated table"


@dataclass(frozen=True, eq=False)
class Coverage:
    """Which rows of one official list a protocol scores: ``missing_rows`` (0-based, file order) are left out,
    each with the root-relative ``missing_files`` the table lacks."""

    source: str
    rows: int
    missing_rows: np.ndarray
    missing_files: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return Path(self.source).name

    @property
    def scored(self) -> int:
        return self.rows - len(self.missing_rows)


def join(listed: ListFile, table: pd.DataFrame) -> tuple[np.ndarray, Coverage]:
    """The table positions (kept rows, k) of a list's rows whose files are all in ``table``, and its coverage: the
    one place a list meets the rows. ValueError when a kept row's identities disagree with the table's."""
    found = manifest_rows(listed.paths, table)
    absent = found < 0
    missing, whole = np.flatnonzero(absent.any(axis=1)), ~absent.any(axis=1)
    coverage = Coverage(listed.source, len(listed), missing,
                        tuple(tuple(listed.paths[i][absent[i]].tolist()) for i in missing))
    kept = found[whole]
    if (table["identity"].to_numpy(dtype=str)[kept] != listed.identities[whole]).any():
        raise ValueError(f"{listed.source}: the table's identities disagree with the list's (is it the same dataset?)")
    return kept, coverage


@dataclass(frozen=True, eq=False)
class MatchingTrials:
    """1:N trials: a probe row and N candidate rows of the other modality, column 0 the true match, nested."""

    direction: str
    probes: np.ndarray
    candidates: np.ndarray
    coverage: tuple[Coverage, ...] = ()

    def __post_init__(self) -> None:
        _check_direction(self.direction)
        object.__setattr__(self, "probes", positions(self.probes, "probes", 1))
        object.__setattr__(self, "candidates", positions(self.candidates, "candidates", 2))
        if len(self.candidates) != len(self.probes) or self.candidates.shape[1] < 2:
            raise ValueError(f"candidates must have shape (trials={len(self.probes)}, N >= 2), "
                             f"got {self.candidates.shape}")

    def __len__(self) -> int:
        return len(self.probes)

    @property
    def max_n(self) -> int:
        return self.candidates.shape[1]

    def similarities(self, vectors: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """(trials, N) cosine similarities of each probe to its candidates, in chunks of trials."""
        vectors = _rows(vectors, max(self.probes.max(), self.candidates.max()) + 1)
        return np.concatenate([np.einsum("td,tnd->tn", vectors[self.probes[s:s + chunk]],
                                         vectors[self.candidates[s:s + chunk]]) for s in range(0, len(self), chunk)])


@dataclass(frozen=True, eq=False)
class RetrievalTask:
    """Every query row ranks all gallery rows (the other modality); relevant = same identity."""

    direction: str
    queries: np.ndarray
    gallery: np.ndarray
    coverage: tuple[Coverage, ...] = ()

    def __post_init__(self) -> None:
        _check_direction(self.direction)
        object.__setattr__(self, "queries", positions(self.queries, "queries", 1))
        object.__setattr__(self, "gallery", positions(self.gallery, "gallery", 1))

    def __len__(self) -> int:
        return len(self.queries)

    def average_precisions(self, vectors: np.ndarray, table: pd.DataFrame, memory_gb: float = 2.0) -> np.ndarray:
        """Per-query average precision (NaN: no item of its identity in the gallery), in memory-bounded chunks."""
        vectors = _rows(vectors, len(table))
        identity = table["identity"].to_numpy(dtype=str)
        chunk = max(1, int(memory_gb * 1e9 / (24 * max(1, len(self.gallery)))))
        return retrieval_map(vectors[self.queries], vectors[self.gallery], identity[self.queries],
                             identity[self.gallery], chunk)


Protocol = VerificationPairs | AllPairs | MatchingTrials | RetrievalTask


def _check_direction(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    return DIRECTIONS[direction]


def _split_rows(table: pd.DataFrame, split: str) -> np.ndarray:
    """Row positions of ``split`` (NA never matches)."""
    if split not in set(table["split"].dropna()):
        raise ValueError(f"no rows with split == {split!r}")
    return np.flatnonzero(table["split"].eq(split).fillna(False).to_numpy(dtype=bool))


def _population(table: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, Groups, Groups, np.ndarray]:
    """(identities with both modalities, their voice rows, face rows, one row each for identity attributes)."""
    identity = table["identity"].to_numpy(dtype=str)[rows]
    modality = table["modality"].to_numpy(dtype=str)[rows]
    complete = np.intersect1d(identity[modality == "voice"], identity[modality == "face"])
    keep = np.isin(identity, complete)
    rows, identity, modality = rows[keep], identity[keep], modality[keep]
    codes = np.searchsorted(complete, identity)
    _, first = np.unique(codes, return_index=True)
    voice, face = modality == "voice", modality == "face"
    return (complete, Groups.of(codes[voice], rows[voice], len(complete)),
            Groups.of(codes[face], rows[face], len(complete)), rows[first])


def split_identities(table: pd.DataFrame, split: str = "test") -> np.ndarray:
    """Sorted identities of ``split`` with at least one voice and one face: the generated protocols' population."""
    return _population(table, _split_rows(table, split))[0]


def verification_pairs(table: pd.DataFrame, restriction: str, n_pairs: int, seed: int,
                       split: str = "test") -> AllPairs | VerificationPairs:
    """Every voice-face pair of ``split``'s identities that ``restriction`` allows (negatives: voice of A, face of
    B != A sharing A's restricted attributes), or ``n_pairs`` > 0 sampled without replacement from ``seed``. Rows
    with NA in a restricted attribute are left out with a warning; ValueError when no negative pair exists."""
    if restriction not in RESTRICTIONS:
        raise ValueError(f"restriction must be one of {list(RESTRICTIONS)}, got {restriction!r}")
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be 0 (every pair) or a number of pairs to sample, got {n_pairs}")
    attributes = RESTRICTIONS[restriction]
    rows = _split_rows(table, split)
    if attributes:
        missing = table[list(attributes)].iloc[rows].isna().any(axis=1).to_numpy(dtype=bool)
        if missing.any():
            warnings.warn(f"verification {restriction}: {int(missing.sum())} of {len(rows)} rows "
                          f"({table['identity'].iloc[rows[missing]].nunique()} identities) have no "
                          f"{'/'.join(attributes)} and are excluded", stacklevel=2)
        rows = rows[~missing]
        if not len(rows):
            raise ValueError(f"verification {restriction}: no row of split {split!r} has {'/'.join(attributes)}")
    identities, voices, faces, first = _population(table, rows)
    if len(identities) == 0:
        raise ValueError(f"verification {restriction}: no identity of split {split!r} has both a voice and a face")
    keys = (table[list(attributes)].iloc[first].astype(str).groupby(list(attributes), sort=True).ngroup()
            .to_numpy(dtype=np.int64) if attributes else np.zeros(len(identities), dtype=np.int64))
    pairs = AllPairs(restriction, identities, voices, faces, keys)
    positives, negatives = pairs.counts()
    if not negatives:
        raise ValueError(f"verification {restriction}: no identity of split {split!r} shares "
                         f"{'/'.join(attributes) or 'the split'} with another identity, so no negative pair exists")
    return pairs.sample(n_pairs, np.random.default_rng(seed)) if 0 < n_pairs < positives + negatives else pairs


def matching_trials(table: pd.DataFrame, direction: str, n_trials: int, seed: int, max_n: int = 10,
                    split: str = "test") -> MatchingTrials:
    """1:N trials drawn from ``split``, nested for N = 2 .. ``max_n``: a probe identity uniformly, one of its samples,
    the true match a random sample of its other modality, then impostors of distinct other identities."""
    probe_modality, candidate_modality = _check_direction(direction)
    if max_n < 2 or n_trials < 1:
        raise ValueError(f"need max_n >= 2 and n_trials >= 1, got max_n={max_n}, n_trials={n_trials}")
    identities, voices, faces, _ = _population(table, _split_rows(table, split))
    m = len(identities)
    if m < max_n:
        raise ValueError(f"matching {direction}: 1:{max_n} trials need {max_n} identities with both modalities in "
                         f"split {split!r}, found {m}")
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, m, n_trials)
    drawn = np.empty((n_trials, max_n), dtype=np.int64)
    drawn[:, 0] = truth
    for trial, identity in enumerate(truth):
        others = rng.choice(m - 1, size=max_n - 1, replace=False)
        drawn[trial, 1:] = others + (others >= identity)
    groups = {"voice": voices, "face": faces}
    probes = groups[probe_modality].draw(truth, rng)
    candidates = groups[candidate_modality].draw(drawn.ravel(), rng).reshape(drawn.shape)
    return MatchingTrials(direction, probes, candidates)


def retrieval_task(table: pd.DataFrame, direction: str, split: str = "test") -> RetrievalTask:
    """Every sample of ``split`` in the query modality queries every sample of the other modality."""
    query_modality, gallery_modality = _check_direction(direction)
    rows = _split_rows(table, split)
    modality = table["modality"].to_numpy(dtype=str)[rows]
    return RetrievalTask(direction, rows[modality == query_modality], rows[modality == gallery_modality])


@dataclass(frozen=True)
class Spec:
    """One protocol: where its result goes (``key``), ``kind``, ``variant`` (restriction or direction), scorer
    (``metric``), official ``files``, and whether it is drawn without lists."""

    key: tuple[str, ...]
    kind: str
    variant: str
    metric: str
    title: str
    files: tuple[str, ...] = ()
    generated: bool = True

    @property
    def source_key(self) -> tuple:
        return self.kind, self.variant, self.files


def _veriflist(restriction: str) -> tuple[str]:
    return (f"veriflist_test_{restriction}_unseenunheard.txt",)


#: Every protocol of the evaluation, in the order of the result.
REGISTRY: tuple[Spec, ...] = (
    Spec(("verification",), "verification", "random", "verification", "verification", _veriflist("random")),
    Spec(("roc",), "verification", "random", "roc", "roc", _veriflist("random")),
    *(Spec(("grouped_auc", r), "verification", r, "auc", f"grouped AUC {r}", _veriflist(r)) for r in GROUPED),
    *(Spec((f"matching_{SHORT[d]}",), "matching", d, "matching", f"matching {d}", (f"matching_{d}_U.csv",))
      for d in DIRECTIONS),
    *(Spec(("grouped_matching", SHORT[d], g), "matching", d, "matching", f"matching {d} {g}",
           (f"matching_{d}_{g}.csv",), generated=False) for d in DIRECTIONS for g in GROUPED_MATCHING),
    *(Spec(("map", SHORT[d]), "retrieval", d, "retrieval", f"retrieval {d}", ("wav_20k.csv", "jpg_20k.csv"))
      for d in DIRECTIONS),
)
OFFICIAL_FILES: tuple[str, ...] = tuple(dict.fromkeys(f for spec in REGISTRY for f in spec.files))


@dataclass(frozen=True)
class Made:
    """One protocol made on a table, labelled by where it came from; None (with ``notes``) where it could not be."""

    label: str
    protocol: Protocol | None
    notes: tuple[str, ...] = ()

    @property
    def coverage(self) -> tuple[Coverage, ...]:
        return getattr(self.protocol, "coverage", ())

    @property
    def scorable(self) -> bool:
        return self.protocol is not None and len(self.protocol) > 0

    @property
    def note(self) -> str:
        """Why nothing can be scored ("" when something can)."""
        return "" if self.scorable else ("; ".join(self.notes)
                                         or "no row of the list has all its files in the evaluated table")

    def counts(self) -> dict[str, int]:
        """``{"rows", "scored", "missing"}``: list rows, rows scored and rows left out (generated: every unit)."""
        if not self.coverage:
            n = 0 if self.protocol is None else len(self.protocol) + len(getattr(self.protocol, "gallery", ()))
            return {"rows": n, "scored": n, "missing": 0}
        rows, scored = sum(c.rows for c in self.coverage), sum(c.scored for c in self.coverage)
        return {"rows": rows, "scored": scored, "missing": rows - scored}


@dataclass
class Protocols:
    """The registry made on one table: one :class:`Made` per spec key, and why each missing list file is missing."""

    source: str
    made: dict[tuple[str, ...], Made]
    reasons: dict[str, str] = field(default_factory=dict)
    folder: str = ""

    def get(self, key: tuple[str, ...]) -> Made | None:
        return self.made.get(key)

    def verification(self, restriction: str) -> Made | None:
        return self.get(("verification",) if restriction == "random" else ("grouped_auc", restriction))

    def coverage(self) -> list[dict]:
        """One record per distinct protocol: label, result keys, rows, scored, missing (by reason), note."""
        records: dict[int, dict] = {}
        for key, made in self.made.items():
            if id(made) not in records:
                record = records[id(made)] = {"protocol": made.label, "results": [], **made.counts()}
                if made.coverage:
                    record["missing_by_reason"] = dict(Counter(
                        self._row_reason(files) for c in made.coverage for files in c.missing_files))
                if made.note:
                    record["note"] = made.note
            records[id(made)]["results"].append(".".join(key))
        return list(records.values())

    def missing_rows(self) -> pd.DataFrame:
        """Every official list row left out: ``list, row`` (1-based), the ``missing`` files and the ``reason``."""
        seen: dict[str, Coverage] = {c.source: c for made in self.made.values() for c in made.coverage}
        columns = ["list", "row", "missing", "reason"]
        parts = [pd.DataFrame({"list": c.name, "row": c.missing_rows + 1,
                               "missing": [" ".join(files) for files in c.missing_files],
                               "reason": [self._row_reason(files) for files in c.missing_files]}, columns=columns)
                 for c in seen.values()]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    def write_missing(self, folder: str | os.PathLike, name: str = "missing_rows.csv.gz") -> Path:
        """Write :meth:`missing_rows` (gzip by the suffix: a partial copy leaves out hundreds of thousands of rows)."""
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.missing_rows().to_csv(path, index=False)
        return path

    def _row_reason(self, files: tuple[str, ...]) -> str:
        return "; ".join(dict.fromkeys(self.reasons.get(f, NOT_IN_TABLE) for f in files))


def generated_protocols(table: pd.DataFrame, seed: int = 0, n_pairs: int = 0, n_trials: int = 2000,
                        split: str = "test", kinds: tuple[str, ...] = ("verification", "matching", "retrieval"),
                        ) -> Protocols:
    """The registry's generated protocols of ``kinds`` on the ``split`` rows, deterministic from ``seed``; matching
    goes up to N = 10 (fewer with fewer identities); one that cannot be drawn is kept with the reason in its notes."""
    label = f"generated (seed {seed})"
    max_n = min(MAX_N, len(split_identities(table, split)))

    def draw(spec: Spec) -> Made:
        try:
            if spec.kind == "verification":
                pairs = verification_pairs(table, spec.variant, n_pairs, seed, split)
                return Made(f"{label}, {pairs.sampling}" if pairs.sampling else label, pairs)
            if spec.kind == "matching":
                if max_n < 2:
                    return Made(label, None, (f"split {split!r} has fewer than 2 identities with both modalities",))
                return Made(label, matching_trials(table, spec.variant, n_trials, seed, max_n, split))
            return Made(label, retrieval_task(table, spec.variant, split))
        except ValueError as error:
            return Made(label, None, (str(error),))

    return Protocols(label, _by_source([s for s in REGISTRY if s.generated and s.kind in kinds], draw))


def _by_source(specs: list[Spec], make) -> dict[tuple[str, ...], Made]:
    """One :class:`Made` per spec key, made once per distinct source (a list several results read is scored once)."""
    made, by_source = {}, {}
    for spec in specs:
        made[spec.key] = by_source[spec.source_key] = by_source.get(spec.source_key) or make(spec)
    return made


@dataclass(frozen=True)
class OfficialLists:
    """The parsed official files of one lists folder, and those of :data:`OFFICIAL_FILES` it lacks."""

    folder: Path
    lists: dict[str, ListFile]
    absent: tuple[str, ...]

    def relpaths(self) -> set[str]:
        """Every root-relative path the lists reference."""
        return {p for lst in self.lists.values() for p in np.unique(lst.paths).tolist()}


def find_meta(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The meta table (``vox1_meta.csv``) of a lists folder: in the folder, else in the dataset ``root``."""
    for place in (folder, root):
        if place is not None and (Path(place) / META_FILE).is_file():
            return Path(place) / META_FILE
    raise FileNotFoundError(f"no {META_FILE} in {folder}" + (f" or {root}" if root is not None else "")
                            + ": the lists name faces by VGGFace1 name, which it maps to IDs")


def read_official_lists(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> OfficialLists:
    """Parse the official files of ``folder``; absent ones are recorded, none at all is FileNotFoundError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"lists folder not found: {folder}")
    present = [name for name in OFFICIAL_FILES if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(f"{folder} holds none of the official list files (e.g. {OFFICIAL_FILES[0]}, "
                                "matching_v2f_U.csv, wav_20k.csv)")
    meta = read_meta(find_meta(folder, root))
    lists = {name: read_verification_list(folder / name, meta) if name.startswith("veriflist")
             else read_matching_list(folder / name, meta) if name.startswith("matching")
             else read_retrieval_gallery(folder / name, "voice" if name.startswith("wav") else "face", meta)
             for name in present}
    return OfficialLists(folder, lists, tuple(n for n in OFFICIAL_FILES if n not in lists))


def _official(spec: Spec, lists: OfficialLists, table: pd.DataFrame, split: str | None) -> Made:
    """One official protocol joined to ``table``, with a note on identities outside ``split``."""
    label = "official: " + " + ".join(spec.files)
    absent = [f for f in spec.files if f not in lists.lists]
    if absent:
        return Made(label, None, (f"{', '.join(absent)} not found in {lists.folder}",))
    listed = [lists.lists[f] for f in spec.files]
    joined = [join(lst, table) for lst in listed]
    (rows, coverage), *_ = joined
    if spec.kind == "verification":
        scored = ~np.isin(np.arange(coverage.rows), coverage.missing_rows)
        protocol = VerificationPairs(spec.variant, rows[:, 0], rows[:, 1], listed[0].labels[scored], (coverage,))
    elif spec.kind == "matching":
        if listed[0].direction != spec.variant:
            raise ValueError(f"{spec.files[0]} holds {listed[0].direction} trials, expected {spec.variant}")
        protocol = MatchingTrials(spec.variant, rows[:, 0], rows[:, 1:], (coverage,))
    else:  # the lists are (voices, faces): v2f queries the voices
        (queries, query_cov), (gallery, gallery_cov) = joined if spec.variant == "v2f" else joined[::-1]
        protocol = RetrievalTask(spec.variant, queries[:, 0], gallery[:, 0], (query_cov, gallery_cov))
    notes = ()
    if split is not None and "split" in table and not table["split"].isna().all():
        rows = np.unique(np.concatenate([r.ravel() for r, _ in joined]))
        outside = table["identity"].iloc[rows][table["split"].iloc[rows].ne(split).fillna(True).to_numpy(bool)]
        if outside.nunique():
            notes = (f"{label}: {outside.nunique()} identities of its scored rows are not in split {split!r} "
                     "of the table",)
    return Made(label, protocol, notes)


def official_protocols(lists: OfficialLists, table: pd.DataFrame, split: str | None = "test",
                       root: str | os.PathLike | None = None, skipped: dict[str, str] | None = None) -> Protocols:
    """The registry's official protocols joined to ``table``; a file a row lacks is explained by ``skipped``
    (preprocessing's reason), else :data:`ABSENT` when not under ``root``, else :data:`NOT_IN_TABLE`."""
    made = _by_source([s for s in REGISTRY if s.files], lambda spec: _official(spec, lists, table, split))
    missing = {f for m in made.values() for c in m.coverage for files in c.missing_files for f in files}
    skipped, root = skipped or {}, Path(root) if root is not None else None
    reasons = {f: f"skipped in preprocessing: {skipped[f]}" if f in skipped
               else ABSENT if root is not None and not (root / f).is_file() else NOT_IN_TABLE for f in missing}
    return Protocols(f"official lists in {lists.folder.name}", made, reasons, str(lists.folder))


def protocols_for(table: pd.DataFrame, cfg: EvalConfig, root: str | os.PathLike | None = None,
                  skipped: dict[str, str] | None = None, lists: OfficialLists | None = None) -> Protocols:
    """The official lists of ``cfg.lists`` (or ``lists``) when set, else protocols generated from ``cfg.split``."""
    if lists is None and cfg.lists:
        lists = read_official_lists(cfg.lists, root)
    if lists is not None:
        return official_protocols(lists, table, cfg.split, root, skipped)
    return generated_protocols(table, cfg.seed, cfg.n_pairs, cfg.n_trials, cfg.split)
