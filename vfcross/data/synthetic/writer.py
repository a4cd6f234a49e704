"""Write the embedded synthetic population in the official VoxCeleb1 layout.

``write_population(out, cfg)`` produces::

    out/wav/<id>/<video>/<nnnnn>.wav                 speech at espeak's native rate
    out/unzippedFaces/<name>/1.6/<video>/<frame>.jpg rendered face photographs
    out/vox1_meta.csv                                VoxCeleb1 meta table + Age column
    out/identity_splits.txt                          `name code` (1 train, 2 val, 4 test)
    out/population.json                              the generating config and every
                                                     identity's true face/voice attributes
    out/languages.csv                                bilingual populations only: the
                                                     language of every clip and face frame

so that :func:`vfcross.data.read_dataset` reads it like VoxCeleb1, and the
oracle of :mod:`vfcross.data.synthetic.population` can be scored from
``population.json``. Every training identity has ``videos_per_identity`` sessions
of ``faces_per_video`` frames and ``clips_per_video`` clips; a validation or test
identity has the ``eval_*`` counts where they are set (``SynthConfig.samples``).
The clips and frames of one session share its recording conditions. The result
depends only on the configuration (not on the number of workers), and the
folder appears atomically: it is built beside ``out`` and renamed at the end.

With ``SynthConfig.languages`` set, every identity speaks each listed language:
each language has ``videos_per_identity`` videos of its own (faces and clips,
the clips spoken in that language with the identity's one voice), and every
sample's language is recorded twice: in ``languages.csv`` (``relpath,
language``, read by :func:`vfcross.data.read_dataset` into the manifest's
``language`` column) and, for the clips with the sentence spoken, in
``population.json`` (``"clips"``). Without languages nothing of this is
written, and the files are exactly those of an English-only population.
"""

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
from vfcross.data.voxceleb import (
    LANGUAGES_FILE,
    SPLIT_CODES,
    face_relpath,
    voice_relpath,
)
from vfcross.processes import worker_pool

#: Split names by the integer codes a population stores (``identity_splits.txt`` codes).
SPLIT_NAMES = {int(code): name for code, name in SPLIT_CODES.items()}
_VIDEO_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))


def write_population(out: str | Path, cfg: SynthConfig, progress: bool = True) -> Path:
    """Generate the population described by ``cfg`` into folder ``out``.

    An existing ``out`` written from the same configuration is kept as it is
    (generation is deterministic, so it would be rewritten identically); one
    written from a different configuration is an error rather than silently
    mixed or replaced.
    """
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
    """The settings that determine a population's content (all but the worker count).

    Settings that change nothing are left out, so that a population's record
    is the one it had before they existed: no languages (English only), and
    an ``eval_*`` count that is 0 or the training identities' own.
    """
    settings = to_dict(cfg)
    del settings["workers"]
    if not settings["languages"]:
        del settings["languages"]
    for name in ("videos_per_identity", "faces_per_video", "clips_per_video"):
        if settings[f"eval_{name}"] in (0, settings[name]):
            del settings[f"eval_{name}"]
    return settings


def _write_identity(job: tuple[Path, SynthConfig, Identity]) -> list[dict[str, str]]:
    """Render and write all sessions of one identity (runs in a worker process).

    Returns, in a bilingual population, one record per written sample:
    ``relpath`` and ``language`` (and the ``sentence`` of a clip); nothing
    for an English-only one. The random draws of an English-only population
    are those it always had, so its files do not change. The identity's own
    stream (its seed) and its split's sample counts are all its files depend
    on, so a training identity's files do not change with the ``eval_*`` counts.
    """
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
    meta = pd.DataFrame({
        "VoxCeleb1 ID": [p.vox_id for p in people],
        "VGGFace1 ID": [p.name for p in people],
        "Gender": [p.face.gender for p in people],
        "Nationality": [p.face.nationality for p in people],
        # VoxCeleb1's own Set column is its speaker-verification split.
        "Set": ["test" if p.split == 4 else "dev" for p in people],
        "Age": [p.age for p in people],
    })
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
