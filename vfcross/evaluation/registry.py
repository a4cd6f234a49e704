"""The one registry of evaluation protocols, generated or official, and where each came from.

Every protocol the evaluation scores is one :class:`Spec` of
:data:`REGISTRY`: where its result goes in
:func:`~vfcross.evaluation.evaluate.evaluate`'s output, what kind of
protocol it is (verification pairs, matching trials, a retrieval task), its
variant (a restriction or a direction), how it is scored, and the file(s)
that define it in the official VoxCeleb1 lists. Adding a protocol is adding
one entry here (and, for a new kind of scoring, one scorer in
:mod:`.evaluate`).

A :class:`Protocols` is the registry made concrete on one table, from one
of two sources:

* :func:`generated_protocols`: drawn from the rows of one split,
  deterministic from a seed (:mod:`.protocols`);
* :func:`official_protocols`: the Learnable-PINs / official files of a
  lists folder (:func:`read_official_lists`), parsed by
  :mod:`vfcross.data.protocol_files` and joined to the table by ``relpath``.
  Every list row is scored when all its files are rows of the table, and
  counted and listed (:meth:`Protocols.missing_rows`, with the reason each
  file is missing) when not.

:func:`protocols_for` picks the source from an :class:`~vfcross.config.EvalConfig`
(its ``lists`` folder, empty for generated protocols). Each made protocol
(:class:`Made`) carries a label saying where it came from, e.g.
``"official: veriflist_test_G_unseenunheard.txt"`` or ``"generated (seed 0)"``,
and its coverage: how many of the list's rows were scored.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.config import EvalConfig
from vfcross.data.protocol_files import (
    MatchingList,
    RetrievalGallery,
    VerificationList,
    read_matching_list,
    read_retrieval_gallery,
    read_verification_list,
)
from vfcross.data.voxceleb import META_FILE, read_meta
from vfcross.evaluation.protocols import (
    Coverage,
    MatchingTrials,
    RetrievalTask,
    GROUPED,
    VerificationPairs,
    from_galleries,
    from_matching_list,
    from_verification_list,
    matching_trials,
    retrieval_task,
    split_identities,
    verification_pairs,
)

#: Largest gallery of the generated 1:N matching (paper Table 4: N = 2 .. 10).
MAX_N = 10
#: Restrictions of the official 1:2 matching lists beyond the unrestricted U.
GROUPED_MATCHING = ("G", "N", "GN")
#: Short names of the directions in result keys (paper: V-F, F-V).
SHORT = {"v2f": "vf", "f2v": "fv"}
#: Reasons a list row's file is not scored (see :meth:`Protocols.missing_rows`).
ABSENT = "absent from the dataset"
NOT_IN_TABLE = "not in the evaluated table"

Protocol = VerificationPairs | MatchingTrials | RetrievalTask


@dataclass(frozen=True)
class Spec:
    """One protocol of the evaluation.

    ``key`` is where its result goes in the output of
    :func:`~vfcross.evaluation.evaluate.evaluate` (e.g. ``("grouped_auc",
    "G")``); ``kind`` is "verification", "matching" or "retrieval";
    ``variant`` the restriction (verification) or direction (matching,
    retrieval) it is drawn with; ``metric`` names its scorer in
    :data:`vfcross.evaluation.evaluate.SCORERS`; ``title`` names it in notes;
    ``files`` are its official list file(s) (none: no official list);
    ``generated`` says whether it is drawn when no lists are given. Specs
    with the same kind, variant and files share one made protocol (the ROC is
    scored on the verification pairs).
    """

    key: tuple[str, ...]
    kind: str
    variant: str
    metric: str
    title: str
    files: tuple[str, ...] = ()
    generated: bool = True

    @property
    def source_key(self) -> tuple[str, str, tuple[str, ...]]:
        """What identifies the protocol itself, whatever is computed from it."""
        return self.kind, self.variant, self.files


def _veriflist(restriction: str) -> tuple[str]:
    """The official verification list of a restriction (unseen-unheard test identities)."""
    return (f"veriflist_test_{restriction}_unseenunheard.txt",)


#: Every protocol of the evaluation, in the order of the result.
REGISTRY: tuple[Spec, ...] = (
    Spec(("verification",), "verification", "random", "verification", "verification", _veriflist("random")),
    Spec(("roc",), "verification", "random", "roc", "roc", _veriflist("random")),
    *(Spec(("grouped_auc", r), "verification", r, "auc", f"grouped AUC {r}", _veriflist(r)) for r in GROUPED),
    *(Spec((f"matching_{SHORT[d]}",), "matching", d, "matching", f"matching {d}", (f"matching_{d}_U.csv",))
      for d in ("v2f", "f2v")),
    *(Spec(("grouped_matching", SHORT[d], g), "matching", d, "matching", f"matching {d} {g}",
           (f"matching_{d}_{g}.csv",), generated=False)
      for d in ("v2f", "f2v") for g in GROUPED_MATCHING),
    *(Spec(("map", SHORT[d]), "retrieval", d, "retrieval", f"retrieval {d}", ("wav_20k.csv", "jpg_20k.csv"))
      for d in ("v2f", "f2v")),
)

#: Every official file the registry reads, in order.
OFFICIAL_FILES: tuple[str, ...] = tuple(dict.fromkeys(f for spec in REGISTRY for f in spec.files))


@dataclass(frozen=True)
class Made:
    """One protocol made on a table: where it came from, the protocol, and why it may not be scorable.

    ``protocol`` is None where it could not be made (a generated restriction
    impossible on this data, an official file absent); ``notes`` then says
    why. ``coverage`` is the protocol's list coverage (empty when generated).
    """

    label: str
    protocol: Protocol | None
    notes: tuple[str, ...] = ()

    @property
    def official(self) -> bool:
        """Whether the protocol comes from official list files."""
        return self.label.startswith("official")

    @property
    def coverage(self) -> tuple[Coverage, ...]:
        """The coverage of each list file the protocol comes from."""
        return self.protocol.coverage if self.protocol is not None else ()

    @property
    def scorable(self) -> bool:
        """Whether there is anything to score."""
        return self.protocol is not None and len(protocol_rows(self.protocol)[0]) > 0

    @property
    def note(self) -> str:
        """Why nothing can be scored ("" when something can)."""
        if self.scorable:
            return ""
        return "; ".join(self.notes) or "no row of the list has all its files in the evaluated table"

    def counts(self) -> dict[str, int]:
        """``{"rows", "scored", "missing"}``: list rows, rows scored and rows left out.

        For a generated protocol every drawn unit is scored; for a retrieval
        task the rows are the entries of both galleries.
        """
        if self.protocol is None:
            return {"rows": 0, "scored": 0, "missing": 0}
        if not self.coverage:
            n = len(protocol_rows(self.protocol)[0])  # the scored units: pairs, trials or queries
            if isinstance(self.protocol, RetrievalTask):
                n += len(self.protocol.gallery)
            return {"rows": n, "scored": n, "missing": 0}
        rows = sum(c.rows for c in self.coverage)
        scored = sum(c.scored for c in self.coverage)
        return {"rows": rows, "scored": scored, "missing": rows - scored}


@dataclass
class Protocols:
    """The registry made concrete on one table: one :class:`Made` per spec key.

    ``source`` says where the protocols came from ("generated (seed 0)" or
    "official lists in <folder>"); ``reasons`` maps each file a list row
    lacks to why (:data:`ABSENT`, a preprocessing reason, :data:`NOT_IN_TABLE`).
    """

    source: str
    made: dict[tuple[str, ...], Made]
    reasons: dict[str, str] = field(default_factory=dict)
    folder: str = ""

    def get(self, key: tuple[str, ...]) -> Made | None:
        """The protocol made for a spec key; None where this source has none (e.g. official-only specs)."""
        return self.made.get(key)

    def verification(self, restriction: str) -> Made | None:
        """The verification protocol of a restriction ('random', 'G', ...)."""
        return self.get(("verification",) if restriction == "random" else ("grouped_auc", restriction))

    def coverage(self) -> list[dict]:
        """One record per distinct protocol: label, result keys, rows, scored, missing, missing by reason."""
        records: dict[int, dict] = {}  # made protocols shared by several specs give one record
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
        """Every official list row left out: ``list, row`` (1-based, in file order), ``missing`` files, ``reason``.

        ``missing`` holds the root-relative paths the row references that
        the evaluated table lacks (space separated); ``reason`` why, per
        distinct reason ("; " separated).
        """
        seen: set[str] = set()
        parts = []
        for made in self.made.values():
            for coverage in made.coverage:
                if coverage.source in seen:
                    continue
                seen.add(coverage.source)
                parts.append(pd.DataFrame({
                    "list": coverage.name,
                    "row": coverage.missing_rows + 1,
                    "missing": [" ".join(files) for files in coverage.missing_files],
                    "reason": [self._row_reason(files) for files in coverage.missing_files],
                }))
        columns = ["list", "row", "missing", "reason"]
        return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)

    def write_missing(self, folder: str | os.PathLike, name: str = "missing_rows.csv.gz") -> Path:
        """Write :meth:`missing_rows` to ``folder/name`` (header only when nothing is missing).

        Gzip-compressed by the ``.gz`` suffix: on a partial copy of VoxCeleb1
        the official lists leave out hundreds of thousands of rows (about
        40 MB as plain CSV on a six-identity slice, a few MB compressed).
        """
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.missing_rows().to_csv(path, index=False)
        return path

    def _row_reason(self, files: tuple[str, ...]) -> str:
        """Why a row's files are missing: their distinct reasons, in order."""
        return "; ".join(dict.fromkeys(self.reasons.get(f, NOT_IN_TABLE) for f in files))


# --- generated -----------------------------------------------------------------------------------

def generated_protocols(
    table: pd.DataFrame, seed: int = 0, n_pairs: int = 0, n_trials: int = 2000, split: str = "test",
    kinds: tuple[str, ...] = ("verification", "matching", "retrieval"),
) -> Protocols:
    """The registry's generated protocols of ``kinds``, drawn from the ``split`` rows of ``table``.

    Deterministic from ``seed`` (see :mod:`.protocols`). Verification lists
    hold every pair their restriction allows (``n_pairs`` = 0) or a sample of
    ``n_pairs`` without replacement, which their label then says
    ("generated (seed 0), sampled 200 of 1,440 pairs without replacement"). Matching galleries
    go up to N = 10, or to the number of split identities when fewer. A
    protocol that cannot be drawn on this data (e.g. a restriction nobody
    shares) is kept with the reason in its notes.
    """
    label = f"generated (seed {seed})"
    max_n = min(MAX_N, len(split_identities(table, split)))
    by_source: dict[tuple, Made] = {}
    made: dict[tuple[str, ...], Made] = {}
    for spec in REGISTRY:
        if spec.generated and spec.kind in kinds:
            if spec.source_key not in by_source:
                by_source[spec.source_key] = _draw(spec, table, label, seed, n_pairs, n_trials, max_n, split)
            made[spec.key] = by_source[spec.source_key]
    return Protocols(label, made)


def _draw(spec: Spec, table: pd.DataFrame, label: str, seed: int, n_pairs: int, n_trials: int, max_n: int,
          split: str) -> Made:
    """One generated protocol, or the reason it cannot be drawn."""
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


# --- official ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OfficialLists:
    """The parsed official files of one lists folder (those of :data:`OFFICIAL_FILES` it holds)."""

    folder: Path
    lists: dict[str, VerificationList | MatchingList | RetrievalGallery]
    absent: tuple[str, ...]

    def relpaths(self) -> set[str]:
        """Every root-relative path the lists reference (the files an evaluation needs)."""
        return {p for lst in self.lists.values() for p in np.unique(lst.path_matrix()).tolist()}


def find_meta(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The meta table (``vox1_meta.csv``) for a lists folder: in the folder, else in the dataset ``root``."""
    for place in (folder, root):
        if place is not None and (Path(place) / META_FILE).is_file():
            return Path(place) / META_FILE
    where = f"{folder}" + (f" or {root}" if root is not None else "")
    raise FileNotFoundError(f"no {META_FILE} in {where}: the lists name faces by VGGFace1 name, which it maps to IDs")


def read_official_lists(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> OfficialLists:
    """Parse the official files of ``folder`` (names as in :data:`OFFICIAL_FILES`).

    The names in the files are mapped to VoxCeleb1 IDs through the meta
    table of the folder or of the dataset ``root`` (:func:`find_meta`).
    Files the folder lacks are recorded as absent (their protocols then carry
    a note); FileNotFoundError when it holds none of them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"lists folder not found: {folder}")
    present = [name for name in OFFICIAL_FILES if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(f"{folder} holds none of the official list files (e.g. {OFFICIAL_FILES[0]}, "
                                f"matching_v2f_U.csv, wav_20k.csv)")
    meta = read_meta(find_meta(folder, root))
    lists: dict[str, VerificationList | MatchingList | RetrievalGallery] = {}
    for name in present:
        path = folder / name
        if name.startswith("veriflist"):
            lists[name] = read_verification_list(path, meta)
        elif name.startswith("matching"):
            lists[name] = read_matching_list(path, meta)
        else:
            lists[name] = read_retrieval_gallery(path, "voice" if name.startswith("wav") else "face", meta)
    return OfficialLists(folder, lists, tuple(n for n in OFFICIAL_FILES if n not in lists))


def official_protocols(
    lists: OfficialLists, table: pd.DataFrame, split: str | None = "test", root: str | os.PathLike | None = None,
    skipped: dict[str, str] | None = None,
) -> Protocols:
    """The registry's official protocols from parsed ``lists``, joined to ``table`` by ``relpath``.

    Each list row is scored when all its files are rows of ``table``; the
    others are recorded in the protocol's coverage with the reason each file
    is missing: ``skipped`` (relpath -> why preprocessing left it out) first,
    then :data:`ABSENT` when ``root`` is given and the file is not under it,
    else :data:`NOT_IN_TABLE`. With ``split``, a note says when scored rows
    involve identities outside that split of ``table`` (e.g. training
    identities).
    """
    made: dict[tuple[str, ...], Made] = {}
    by_source: dict[tuple, Made] = {}
    for spec in REGISTRY:
        if not spec.files:
            continue
        if spec.source_key not in by_source:
            by_source[spec.source_key] = _load(spec, lists, table, split)
        made[spec.key] = by_source[spec.source_key]
    protocols = Protocols(f"official lists in {lists.folder.name}", made, folder=str(lists.folder))
    missing = {f for m in by_source.values() for c in m.coverage for files in c.missing_files for f in files}
    protocols.reasons = _missing_reasons(missing, root, skipped or {})
    return protocols


def _load(spec: Spec, lists: OfficialLists, table: pd.DataFrame, split: str | None) -> Made:
    """One official protocol, with a note on identities outside ``split``; or why it cannot be made."""
    label = "official: " + " + ".join(spec.files)  # e.g. official: veriflist_test_G_unseenunheard.txt
    absent = [f for f in spec.files if f not in lists.lists]
    if absent:
        return Made(label, None, (f"{', '.join(absent)} not found in {lists.folder}",))
    if spec.kind == "verification":
        protocol: Protocol = from_verification_list(lists.lists[spec.files[0]], table, name=spec.variant)
    elif spec.kind == "matching":
        protocol = from_matching_list(lists.lists[spec.files[0]], table)
        if protocol.direction != spec.variant:
            raise ValueError(f"{spec.files[0]} holds {protocol.direction} trials, expected {spec.variant}")
    else:
        voices, faces = (lists.lists[f] for f in spec.files)
        protocol = from_galleries(voices, faces, table, spec.variant)
    return Made(label, protocol, _outside_split(protocol, table, split, label))


def _outside_split(protocol: Protocol, table: pd.DataFrame, split: str | None, label: str) -> tuple[str, ...]:
    """A note when the protocol's rows involve identities that ``table`` puts in another split than ``split``."""
    if split is None or "split" not in table or table["split"].isna().all():
        return ()
    rows = np.unique(np.concatenate([np.asarray(a).ravel() for a in protocol_rows(protocol)]))
    splits = table["split"].iloc[rows]
    outside = table["identity"].iloc[rows][splits.ne(split).fillna(True).to_numpy(dtype=bool)].nunique()
    if not outside:
        return ()
    return (f"{label}: {outside} identities of its scored rows are not in split {split!r} of the table",)


def protocol_rows(protocol: Protocol) -> tuple[np.ndarray, ...]:
    """Every table row position a protocol uses."""
    if isinstance(protocol, VerificationPairs):
        return protocol.voice, protocol.face
    if isinstance(protocol, MatchingTrials):
        return protocol.probes, protocol.candidates
    return protocol.queries, protocol.gallery


def _missing_reasons(paths: set[str], root: str | os.PathLike | None, skipped: dict[str, str]) -> dict[str, str]:
    """Why each of ``paths`` is not in the evaluated table."""
    reasons = {}
    root_path = Path(root) if root is not None else None
    for path in paths:
        if path in skipped:
            reasons[path] = f"skipped in preprocessing: {skipped[path]}"
        elif root_path is not None and not (root_path / path).is_file():
            reasons[path] = ABSENT
        else:
            reasons[path] = NOT_IN_TABLE
    return reasons


def protocols_for(
    table: pd.DataFrame, cfg: EvalConfig, root: str | os.PathLike | None = None,
    skipped: dict[str, str] | None = None, lists: OfficialLists | None = None,
) -> Protocols:
    """The protocols ``cfg`` asks for: the official lists of ``cfg.lists`` when set, else generated ones.

    ``root`` (the dataset) is where the meta table may be found and what
    tells a file absent from the dataset; ``skipped`` gives preprocessing's
    reasons; ``lists`` saves parsing the folder again.
    """
    if lists is None and cfg.lists:
        lists = read_official_lists(cfg.lists, root)
    if lists is not None:
        return official_protocols(lists, table, cfg.split, root, skipped)
    return generated_protocols(table, cfg.seed, cfg.n_pairs, cfg.n_trials, cfg.split)
