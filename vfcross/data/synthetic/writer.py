"""Write the embedded synthetic population in the official VoxCeleb1 layout.

:func:`write_population` renders every identity's sessions (clips and frames of one video share its recording
conditions) into ``wav/``, ``unzippedFaces/``, ``vox1_meta.csv`` and ``identity_splits.txt``, plus ``population.json``
(the config and every identity's true attributes) and, when bilingual, ``languages.csv``. The result depends only on the
configuration, and the folder appears atomically (docs/data.md)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from vfcross.config import SynthConfig, from_dict, to_dict
from vfcross.data.synthetic.population import TRAIN_CODE, Attributes, Identity, sample_population
from vfcross.data.synthetic.render_face import face_session, face_style, render_face
from vfcross.data.synthetic.render_voice import render_clip, voice_session, voice_style
from vfcross.data.synthetic.text import pick_sentences
from vfcross.data.voxceleb import LANGUAGES_FILE, face_relpath, voice_relpath
from vfcross.processes import worker_pool

_VIDEO_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))


def write_population(out: str | Path, cfg: SynthConfig, progress: bool = True) -> Path:
    """Generate the population of ``cfg`` into folder ``out``. An existing ``out`` from the same settings is kept (it
    would be rewritten identically); one from other settings is an error, never mixed or replaced."""
    out = Path(out)
    if out.exists():
        if _generation_settings(read_population_config(out)) != _generation_settings(cfg):
            raise FileExistsError(f"{out} holds a population generated with different settings; "
                                  "choose another folder or delete it")
        return out
    people = sample_population(cfg)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    jobs = [(tmp, cfg, person) for person in people]
    with worker_pool(max(1, cfg.workers)) as pool:  # workers ignore Ctrl-C and die with this process
        samples = [record for records in tqdm(pool.imap_unordered(_write_identity, jobs, chunksize=4),
                                              total=len(jobs), desc="synthesising identities", disable=not progress)
                   for record in records]
    _write_tables(tmp, people)
    record = {"config": _generation_settings(cfg), "identities": [dataclasses.asdict(p) for p in people]}
    if cfg.languages:
        samples.sort(key=lambda sample: sample["relpath"])
        record["clips"] = [sample for sample in samples if "sentence" in sample]
        pd.DataFrame(samples, columns=["relpath", "language"]).to_csv(tmp / LANGUAGES_FILE, index=False)
    (tmp / "population.json").write_text(json.dumps(record, indent=1))
    tmp.rename(out)
    return out


def _generation_settings(cfg: SynthConfig) -> dict:
    """The settings that determine a population's content (all but the worker count). Settings that change nothing (no
    languages; an ``eval_*`` count that is 0 or the training identities' own) are left out, so a population's record is
    the one it had before they existed."""
    settings = to_dict(cfg)
    del settings["workers"]
    if not settings["languages"]:
        del settings["languages"]
    for name in ("videos_per_identity", "faces_per_video", "clips_per_video"):
        if settings[f"eval_{name}"] in (0, settings[name]):
            del settings[f"eval_{name}"]
    return settings


def _write_identity(job: tuple[Path, SynthConfig, Identity]) -> list[dict[str, str]]:
    """Render and write all sessions of one identity (in a worker process); its files depend on its seed only. Returns,
    when bilingual, a ``relpath``, ``language`` (and a clip's ``sentence``) record per sample."""
    root, cfg, person = job
    n_videos, n_faces, n_clips = cfg.samples(evaluation=person.split != TRAIN_CODE)
    rng = np.random.default_rng(person.seed)
    fstyle, vstyle = face_style(person), voice_style(person)
    records: list[dict[str, str]] = []
    videos: list[str] = []
    for language in cfg.languages or ("English",):
        sentences = iter(pick_sentences(rng, n_videos * n_clips, language))
        for video in _video_ids(rng, n_videos, taken=videos):
            videos.append(video)
            fsession, vsession = face_session(rng), voice_session(rng)
            face_dir = root / "unzippedFaces" / person.name / "1.6" / video
            face_dir.mkdir(parents=True)
            for frame in np.sort(rng.choice(np.arange(25, 30000, 25), n_faces, replace=False)):
                image = render_face(fstyle, fsession, rng, cfg.image_size)
                image.save(face_dir / f"{frame:07d}.jpg", quality=92)
                records.append({"relpath": face_relpath(person.name, video, f"{frame:07d}.jpg"), "language": language})
            wav_dir = root / "wav" / person.vox_id / video
            wav_dir.mkdir(parents=True)
            for clip in range(1, n_clips + 1):
                sentence = next(sentences)
                audio, rate = render_clip(vstyle, vsession, sentence, rng, cfg.snr_db, language)
                sf.write(wav_dir / f"{clip:05d}.wav", audio, rate, subtype="PCM_16")
                records.append({"relpath": voice_relpath(person.vox_id, video, f"{clip:05d}.wav"),
                                "language": language, "sentence": sentence})
    return records if cfg.languages else []


def _video_ids(rng: np.random.Generator, n: int, taken: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``n`` distinct YouTube-like 11-character video ids, none of them in ``taken``."""
    ids: list[str] = []
    while len(ids) < n:
        vid = "".join(rng.choice(_VIDEO_ALPHABET, 11))
        if vid not in ids and vid not in taken:
            ids.append(vid)
    return ids


def _write_tables(root: Path, people: list[Identity]) -> None:
    """Write ``vox1_meta.csv`` (tab separated, with Age) and ``identity_splits.txt``."""
    meta = pd.DataFrame({  # VoxCeleb1's Set column is its speaker-verification split
        "VoxCeleb1 ID": [p.vox_id for p in people], "VGGFace1 ID": [p.name for p in people],
        "Gender": [p.face.gender for p in people], "Nationality": [p.face.nationality for p in people],
        "Set": ["test" if p.split == 4 else "dev" for p in people], "Age": [p.age for p in people]})
    meta.to_csv(root / "vox1_meta.csv", sep="\t", index=False)
    (root / "identity_splits.txt").write_text("".join(f"{p.name} {p.split}\n" for p in people))


def read_population_config(root: str | Path) -> SynthConfig:
    """The configuration a population folder was generated with (``workers`` at its default)."""
    path = Path(root) / "population.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {root} is not a vfcross synthetic population")
    return from_dict(SynthConfig, json.loads(path.read_text())["config"])


def read_population(root: str | Path) -> list[Identity]:
    """The identities, with their true face and voice attributes, of a population folder."""
    data = json.loads((Path(root) / "population.json").read_text())
    people = []
    for p in data["identities"]:
        face, voice = (Attributes(**{**p[k], "traits": tuple(p[k]["traits"])}) for k in ("face", "voice"))
        people.append(Identity(**{**p, "face": face, "voice": voice}))
    return people
