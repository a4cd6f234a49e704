"""The synthetic population: layout, determinism, the reader round trip, and the oracle."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from vfcross.config import ConfigError, SynthConfig
from vfcross.data import read_dataset
from vfcross.data.synthetic.population import (
    AGE_GROUPS,
    NATIONALITIES,
    oracle_score,
    sample_population,
)
from vfcross.data.synthetic.writer import (
    read_population,
    read_population_config,
    write_population,
)
from vfcross.metrics import roc_auc
from vfcross.evaluation.oracle import oracle_pair_scores

SMALL = SynthConfig(identities=6, videos_per_identity=2, clips_per_video=1, faces_per_video=2, image_size=96,
                    split_fractions=(0.5, 0.25, 0.25), workers=1)


def _digest(root):
    """One hash over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    return write_population(tmp_path_factory.mktemp("pop") / "synth", SMALL, progress=False)


def test_population_is_read_like_voxceleb1(population):
    manifest = read_dataset(population)
    assert manifest.identity.nunique() == 6
    counts = manifest.groupby("modality").size().to_dict()
    assert counts == {"face": 6 * 2 * 2, "voice": 6 * 2 * 1}
    assert set(manifest.split.dropna()) <= {"train", "val", "test"} and manifest.split.notna().all()
    assert set(manifest.age) <= set(AGE_GROUPS) and set(manifest.nationality) <= set(NATIONALITIES)
    # each video of an identity holds its faces and its clips, as a VoxCeleb1 session does
    per_video = manifest.groupby(["identity", "video", "modality"]).size().unstack()
    assert (per_video["face"] == 2).all() and (per_video["voice"] == 1).all()
    import soundfile as sf
    assert sf.info(manifest[manifest.modality == "voice"].path.iloc[0]).samplerate == 22050  # not yet 16 kHz


def test_generation_is_deterministic_and_independent_of_workers(population, tmp_path):
    again = write_population(tmp_path / "again", SynthConfig(**{**SMALL.__dict__, "workers": 2}), progress=False)
    assert _digest(again) == _digest(population)


def test_existing_folder_is_reused_or_refused(population):
    assert write_population(population, SMALL, progress=False) == population
    other_workers = SynthConfig(**{**SMALL.__dict__, "workers": 3})  # same content, so reused
    assert write_population(population, other_workers, progress=False) == population
    with pytest.raises(FileExistsError, match="different settings"):
        write_population(population, SynthConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)


def test_population_json_round_trips(population):
    assert read_population_config(population) == SynthConfig(**{**SMALL.__dict__, "workers": SynthConfig.workers})
    assert read_population(population) == sample_population(SMALL)


def test_cli_synth_writes_a_population(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "vfcross.workflows.cli", "synth", "--out", str(out), "--identities", "4",
                           "--seed", "3", "--preset", "smoke", "--workers", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_dataset(out).identity.nunique() == 4
    bad = subprocess.run([sys.executable, "-m", "vfcross.workflows.cli", "synth", "--out", str(out), "--identities", "5"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "different settings" in bad.stderr


def test_eval_identities_get_their_own_sample_counts_and_train_files_stay(population, tmp_path):
    cfg = SynthConfig(**{**SMALL.__dict__, "eval_videos_per_identity": 1, "eval_faces_per_video": 3,
                         "eval_clips_per_video": 2})  # SMALL's training identities: 2 videos x (2 faces + 1 clip)
    root = write_population(tmp_path / "eval", cfg, progress=False)
    manifest = read_dataset(root)
    shapes = {(split, videos.video.nunique(), (videos.modality == "face").sum(), (videos.modality == "voice").sum())
              for (split, _), videos in manifest.groupby(["split", "identity"])}  # (split, videos, faces, voices)
    assert shapes == {("train", 2, 4, 2), ("val", 1, 3, 2), ("test", 1, 3, 2)}
    # a training identity's files are those of the population without eval counts, byte for byte
    train = manifest[manifest.split == "train"].relpath
    assert all((root / r).read_bytes() == (population / r).read_bytes() for r in train)
    assert read_population_config(root) == SynthConfig(**{**cfg.__dict__, "workers": SynthConfig.workers})


def test_eval_counts_are_validated_and_default_to_the_training_counts(population):
    assert SMALL.samples(evaluation=True) == SMALL.samples(evaluation=False) == (2, 2, 1)
    assert SynthConfig(**{**SMALL.__dict__, "eval_faces_per_video": 5}).samples(evaluation=True) == (2, 5, 1)
    with pytest.raises(ConfigError, match="^eval_clips_per_video: must be at least 0"):
        SynthConfig(eval_clips_per_video=-1)
    # counts equal to the training ones change no file, so the population is reused, not refused
    same = SynthConfig(**{**SMALL.__dict__, "eval_videos_per_identity": 2, "eval_clips_per_video": 1})
    assert write_population(population, same, progress=False) == population
    with pytest.raises(FileExistsError, match="different settings"):
        write_population(population, SynthConfig(**{**SMALL.__dict__, "eval_clips_per_video": 2}), progress=False)


def test_oracle_separates_same_from_different_identities():
    cfg = SynthConfig(identities=400, seed=5)
    people = sample_population(cfg)
    rng = np.random.default_rng(0)
    same = [oracle_score(p.voice, p.face, cfg) for p in people]
    other = [oracle_score(p.voice, people[(i + 1 + rng.integers(len(people) - 1)) % len(people)].face, cfg)
             for i, p in enumerate(people)]
    scores = np.nan_to_num(np.array(same + other), neginf=-1e9)
    auc = roc_auc(scores, np.r_[np.ones(len(same)), np.zeros(len(other))])
    assert 0.85 < auc < 0.97  # calibrated ceiling ~0.91 (config docstring), far from both chance and 1
    assert all(np.isfinite(same))  # a person's own voice is never impossible for their face


def test_oracle_scores_from_a_population_folder(population):
    people, cfg = read_population(population), read_population_config(population)
    ids = np.array([p.vox_id for p in people])
    scores = oracle_pair_scores(people, cfg, ids, ids)
    assert scores.shape == (6,) and np.isfinite(scores).all()
    np.testing.assert_allclose(oracle_pair_scores(people, cfg, ids, ids[::-1], restriction="GNA"),
                               np.nan_to_num([oracle_score(p.voice, q.face, cfg, ("gender", "nationality", "age"))
                                              for p, q in zip(people, people[::-1])], neginf=-1e9))
    with pytest.raises(ValueError, match="restriction"):
        oracle_pair_scores(people, cfg, ids, ids, restriction="gender")
    with pytest.raises(KeyError, match="not in the population"):
        oracle_pair_scores(people, cfg, np.array(["id99999"]), ids[:1])


def test_too_small_or_badly_split_population_is_rejected():
    with pytest.raises(ValueError, match="at least 3"):
        sample_population(SynthConfig(identities=2))
    with pytest.raises(ValueError, match="split_fractions"):
        sample_population(SynthConfig(identities=10, split_fractions=(0.5, 0.5, 0.5)))
    with pytest.raises(ValueError, match="no training identity"):  # 1 val + 3 test of 3 would leave -1
        sample_population(SynthConfig(identities=3, split_fractions=(0.0, 0.1, 0.9)))
