"""Notebook 06's work: the FAME protocol (:mod:`vfcross.evaluation.fame`) end to end, on a bilingual population
or on MAV-Celeb: find the data, train a model per language, score them, write the challenge's score files.
The steps and their rules: ``docs/workflows.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.backbone.embedding import extract_embeddings
from vfcross.backbone.task import BACKBONE_RUN, train_backbone
from vfcross.config import FULL_MODEL, RunConfig, override, to_dict
from vfcross.data.mavceleb import draw_identity_splits, read_trials, scan_mavceleb, trial_lists
from vfcross.data.splits import check_splits
from vfcross.data.synthetic.writer import write_population
from vfcross.data.voxceleb import LANGUAGES_FILE, scan_dataset
from vfcross.evaluation.evaluate import trained_identities_note
from vfcross.evaluation.fame import (fame_evaluation, heard_only, l2_distances, languages_of, submission_name,
                                     write_submission)
from vfcross.fusion.task import load_fusion, project, train_fusion
from vfcross.training import recorded_identities

#: Table names of the systems scored (:func:`fame_results`).
FUSION_SYSTEM = "ours: single stream + fusion + FOP, each trained on one language"
BACKBONE_SYSTEM = "ours: single-stream backbone alone, trained on one language"
SHARED_FUSION_SYSTEM = "ours: fusion + FOP trained on one language, on notebook 02's backbone"
SHARED_BACKBONE_SYSTEM = "ours: notebook 02's backbone alone (trained on English clips of other identities)"


@dataclass(frozen=True)
class MultilingualData:
    """The data of the FAME protocol, or in ``note`` why there is none: ``cfg`` configures the multilingual runs,
    ``languages`` are the two compared (English first), ``lists`` a MAV-Celeb trial list folder (or None)."""

    cfg: RunConfig
    source: str
    manifest: pd.DataFrame | None = None
    skipped: pd.DataFrame | None = None
    languages: tuple[str, ...] = ()
    lists: Path | None = None
    note: str = ""
    notes: tuple[str, ...] = ()

    @property
    def runs(self) -> bool:
        return not self.note

    def describe(self) -> str:
        """One line: the source, its identities, clips per language and faces; or the note."""
        if not self.runs:
            return f"skipped: {self.note}"
        m = self.manifest
        voices = m[m["modality"] == "voice"].groupby("language").size()
        clips = ", ".join(f"{voices.get(lang, 0)} {lang}" for lang in self.languages)
        splits = ", ".join(f"{n} {split}" for split, n in
                           m.drop_duplicates("identity")["split"].value_counts().items())
        return (f"{self.source}: {m['identity'].nunique()} identities ({splits}), clips {clips}, "
                f"{int((m['modality'] == 'face').sum())} faces; {len(self.skipped)} files left out")


def multilingual_config(cfg: RunConfig) -> RunConfig:
    """The run's configuration with ``cfg.multilingual``'s data, epochs (where non-zero) and work folder
    ``<work_dir>/multilingual/<synthetic | mavceleb-<folder> | dataset-<folder>>``."""
    ml = cfg.multilingual
    if ml.mavceleb_root:
        source, data_root = f"mavceleb-{Path(ml.mavceleb_root).resolve().name}", ml.mavceleb_root
    elif cfg.data_root:
        source, data_root = f"dataset-{Path(cfg.data_root).resolve().name}", cfg.data_root
    else:
        source, data_root = "synthetic", ""
    return override(cfg, {"work_dir": str(Path(cfg.work_dir) / "multilingual" / source), "data_root": data_root,
                          "splits_file": cfg.splits_file if data_root == cfg.data_root and data_root else "",
                          "synth": to_dict(ml.synth), "fusion.loop.epochs": ml.fusion_epochs or cfg.fusion.loop.epochs,
                          "backbone.loop.epochs": ml.backbone_epochs or cfg.backbone.loop.epochs})


def prepare_multilingual(cfg: RunConfig, progress: bool = True) -> MultilingualData:
    """The data of the FAME protocol for ``cfg``: a MAV-Celeb copy, a dataset recording languages, or the bilingual
    population (written if needed); a MAV-Celeb copy without a split file is split at random, said in ``notes``.
    The splits are checked before any work."""
    ml, run = cfg.multilingual, multilingual_config(cfg)
    notes: list[str] = []
    lists = None
    if ml.mavceleb_root:
        manifest, skipped = scan_mavceleb(ml.mavceleb_root, splits_file=ml.mavceleb_splits or None)
        source = f"MAV-Celeb at {Path(ml.mavceleb_root).resolve().name}"
        if manifest["split"].isna().all():
            splits = draw_identity_splits(manifest["identity"].unique(), ml.split_fractions, ml.split_seed)
            manifest["split"] = manifest["identity"].map(splits).astype("string")
            notes.append(f"identities split {ml.split_fractions} (seed {ml.split_seed}): MAV-Celeb's own test "
                         "identities are unlabelled, so some labelled ones are held out")
        root = Path(ml.mavceleb_root).resolve()  # the lists given, else <root>_lists or <root>/lists if present
        given = [Path(ml.mavceleb_lists)] if ml.mavceleb_lists else []
        lists = next((p for p in given or [root.with_name(root.name + "_lists"), root / "lists"] if p.is_dir()), None)
        if given and lists is None:
            raise FileNotFoundError(f"MAV-Celeb list folder not found: {ml.mavceleb_lists}")
        if ml.backbone == "shared":
            notes.append("multilingual.backbone is 'shared': notebook 02's backbone (trained on "
                         f"{cfg.data_root or 'the synthetic population'}) embeds MAV-Celeb; set it to 'per_language' "
                         "for the protocol in full (a backbone trained on each language's clips)")
    elif cfg.data_root:
        root = Path(cfg.data_root)
        if not (root / LANGUAGES_FILE).is_file():
            return MultilingualData(run, f"dataset at {root.name}", note=(
                f"the dataset at {root} records no spoken languages (no {LANGUAGES_FILE}; VoxCeleb1 has none), so "
                "there is no heard and unheard language to compare; give a MAV-Celeb folder "
                "(multilingual.mavceleb_root, or the notebook's mavceleb_root) to run the FAME protocol"))
        manifest, skipped = scan_dataset(root, cfg.splits_file or None, cfg.skip_unlisted_identities)
        source = f"dataset at {root.name}"
    else:
        write_population(run.dataset_root, run.synth, progress=progress)
        manifest, skipped = scan_dataset(run.dataset_root)
        source = f"synthetic bilingual population (n={run.synth.identities}, {' + '.join(run.synth.languages)})"
    notes += check_splits(manifest, cfg.eval.split)
    languages = languages_of(manifest)
    if len(languages) < 2:
        return MultilingualData(run, source, manifest, skipped, languages, lists, note=(
            f"{source} has clips in {list(languages) or 'no recorded language'}; the protocol needs two languages"))
    if len(languages) > 2:
        notes.append(f"clips in {list(languages)}: the protocol compares {languages[0]} and {languages[1]}")
        languages = languages[:2]
    return MultilingualData(run, source, manifest, skipped, languages, lists, notes=tuple(notes))


def shared_backbone(cfg: RunConfig) -> Path | None:
    """Notebook 02's backbone run, when ``multilingual.backbone`` is "shared" and the run exists (else None)."""
    run = cfg.run_dir(BACKBONE_RUN)
    return run if cfg.multilingual.backbone == "shared" and (run / "config.json").is_file() else None


def check_unseen(backbone: Path, manifest: pd.DataFrame, split: str) -> None:
    """ValueError when the ``backbone`` run's record lists an identity of ``manifest``'s ``split`` (or none): the
    FAME numbers are those of unseen identities only if the shared backbone trained on none of them."""
    test = manifest.loc[manifest["split"].eq(split).fillna(False).to_numpy(dtype=bool), "identity"].unique()
    note = trained_identities_note({"backbone": recorded_identities(backbone)}, test, f"the shared backbone {backbone}")
    if note:
        raise ValueError(note)


@dataclass(frozen=True)
class LanguageModel:
    """A model trained on one language's clips (``folder``: what :func:`vfcross.load` reads) and the embeddings of
    ``table``'s rows (the evaluation split, every language): ``vectors`` the fusion's u/v (without fusion, the
    backbone's), ``backbone_vectors`` always the backbone's."""

    language: str
    folder: Path
    backbone: Path
    backbone_history: list[dict] | None
    fusion_history: list[dict] | None
    table: pd.DataFrame
    vectors: np.ndarray
    backbone_vectors: np.ndarray
    train_clips: int
    train_identities: int


def train_language(cfg: RunConfig, manifest: pd.DataFrame, language: str, backbone: Path | None = None,
                   progress: bool = True) -> LanguageModel:
    """The model of ``language``: a backbone trained on its clips only (or the shared ``backbone``, checked by
    :func:`check_unseen`), the fusion trained on its clips (if ``multilingual.fusion``), the test embeddings.
    ``cfg`` is :func:`multilingual_config`'s, ``manifest`` the preprocessed one; finished runs are reused."""
    heard = heard_only(manifest, language, cfg.eval.split)
    # runs in <work_dir>/train-<language>, or fusion-<language> over a shared backbone (never meeting the other's)
    run = dataclasses.replace(cfg, work_dir=str(Path(cfg.work_dir) / f"{'fusion' if backbone else 'train'}-{language}"))
    history = None
    if backbone is None:
        backbone, history = train_backbone(run, heard, "single", progress=progress)
        emb = extract_embeddings(backbone, heard, None, cfg.cache_dir / "embeddings", progress=progress)
    else:
        check_unseen(Path(backbone), manifest, cfg.eval.split)
        emb = extract_embeddings(backbone, manifest, None, cfg.cache_dir / "embeddings", progress=progress)
        take = pd.Index(emb.table["relpath"]).get_indexer(heard["relpath"])  # the heard rows of the whole manifest
        emb = dataclasses.replace(emb, table=emb.table.iloc[take].reset_index(drop=True), vectors=emb.vectors[take])
    test = emb.table["split"].eq(cfg.eval.split).fillna(False).to_numpy(dtype=bool)
    table = emb.table[test].reset_index(drop=True)
    fusion_history, vectors = None, emb.vectors[test]
    if cfg.multilingual.fusion:
        fusion_dir, fusion_history = train_fusion(run, emb, FULL_MODEL)
        vectors = project(load_fusion(fusion_dir), vectors, table)
    train = heard[heard["split"].eq("train").fillna(False)]
    return LanguageModel(language, Path(run.work_dir), Path(backbone), history, fusion_history, table, vectors,
                         emb.vectors[test], int((train["modality"] == "voice").sum()), int(train["identity"].nunique()))


def fame_results(models: list[LanguageModel], data: MultilingualData, cfg: RunConfig,
                 shared: Path | None = None) -> dict[str, dict]:
    """Every system of notebook 06 scored by :func:`~vfcross.evaluation.fame.fame_evaluation`, by table name: the
    models, and the backbone alone (the ``shared`` one only where it heard only English: the synthetic main run)."""
    ml, e = cfg.multilingual, cfg.eval

    def score(systems: dict) -> dict:
        return fame_evaluation(systems, data.languages, ml.n_pairs, e.seed, e.n_boot, e.split)

    own = {m.language: (m.vectors, m.table) for m in models}  # language -> (vectors, table)
    if shared is None:
        results = {FUSION_SYSTEM if ml.fusion else BACKBONE_SYSTEM: score(own)}
        if ml.fusion:
            results[BACKBONE_SYSTEM] = score({m.language: (m.backbone_vectors, m.table) for m in models})
        return results
    results = {SHARED_FUSION_SYSTEM: score(own)} if ml.fusion else {}
    if not cfg.data_root and "English" in data.languages:
        english = next(m for m in models if m.language == "English")
        results[SHARED_BACKBONE_SYSTEM] = score({"English": (english.backbone_vectors, english.table)})
    if not results:
        raise ValueError("nothing to score: with a shared backbone, only the fusion stage is trained per language "
                         "(multilingual.fusion is off) and the shared backbone's own language is unknown")
    return results


def _embed_files(model, paths: list[str], modality: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Test-time embeddings of files by path, and the reason for each file the model cannot use."""
    from vfcross.workflows.inference import InputError

    embed = model.embed_voices if modality == "voice" else model.embed_faces
    vectors, failed = {}, {}
    for start in range(0, len(paths), 64):
        chunk = paths[start:start + 64]
        try:
            vectors.update(zip(chunk, embed(chunk)))
        except InputError:
            for path in chunk:
                try:
                    vectors[path] = embed([path])[0]
                except InputError as error:
                    failed[path] = str(error)
    return vectors, failed


def write_submissions(models: list[LanguageModel], root: str | Path, lists: str | Path, out: str | Path,
                      version: str) -> tuple[list[Path], list[str]]:
    """(files, notes): every model scores every ``<Language>_test.txt`` of ``lists`` into the challenge's files,
    the L2 distance of each trial's u and v; a trial it cannot embed scores sqrt(2) (no evidence), said in the notes."""
    from vfcross.workflows.inference import load

    root, out = Path(root), Path(out)
    trained = {m.language for m in models}
    tests = {lang: read_trials(path) for lang, path in trial_lists(lists).items() if lang in trained}
    names = {(m.language, test): submission_name(m.language, test, version) for m in models for test in tests}
    written, notes = [], []
    for model_entry in models:
        model = load(model_entry.folder, backbone=model_entry.backbone)
        for test_language, trials in tests.items():
            got = {m: _embed_files(model, sorted({str(root / p) for p in trials[m]}), m) for m in ("voice", "face")}
            neutral = np.full(model.dim, np.nan)
            v, f = (np.stack([got[m][0].get(str(root / p), neutral) for p in trials[m]]) for m in ("voice", "face"))
            distances = l2_distances(np.nan_to_num(v), np.nan_to_num(f))
            distances[np.isnan(v).any(axis=1) | np.isnan(f).any(axis=1)] = np.sqrt(2.0)  # unusable: no evidence
            name = names[model_entry.language, test_language]
            written.append(write_submission(out / name, trials["key"], distances))
            notes += [f"{name}: {why} (its trials scored sqrt(2), no evidence)"
                      for why in {**got["voice"][1], **got["face"][1]}.values()]
    return written, notes
