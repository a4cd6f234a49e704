"""``vfcross plan``: counts equal to the dataset's, the arithmetic of the projection, the JSON's keys, the refusal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vfcross import config as C
from vfcross.backbone.sampler import pk_batches
from vfcross.data.synthetic.writer import write_population
from vfcross.data.voxceleb import read_dataset
from vfcross.preprocess.cache import bytes_per_sample
from vfcross.training import planned_schedules
from vfcross.workflows import plan as P
from vfcross.workflows.cli import main

RATES = {"device": "cpu", "train_step_s": 0.5, "train_image_s": 0.3, "forward_image_s": 0.1, "params": 1_000_000, "forward_gflops": 1.0, "face_s": 0.05,
         "voice_s_per_s": 0.01, "preprocess_source": "fixed", "fusion_step_s": 0.002, "auc_pair_s": 1e-7}


def manifest_counts(manifest: pd.DataFrame) -> dict:
    """Identities, voices and faces of each split, counted from a manifest the plain way."""
    out = {}
    for split in ("train", "val", "test"):
        part = manifest[manifest["split"] == split]
        out[split] = {"identities": part["identity"].nunique(), "voices": int((part["modality"] == "voice").sum()),
                      "faces": int((part["modality"] == "face").sum())}
    return out


def test_a_synthetic_population_is_counted_alike_before_and_after_it_is_written(tmp_path):
    synth = C.SynthConfig(identities=8, videos_per_identity=2, clips_per_video=2, faces_per_video=3,
                          eval_videos_per_identity=1, eval_faces_per_video=2, eval_clips_per_video=1,
                          image_size=96, split_fractions=(0.5, 0.25, 0.25), workers=1)
    cfg = C.override(C.preset("smoke"), {"work_dir": str(tmp_path)})
    cfg.synth = synth
    before, data, manifest = P.count_dataset(cfg)
    assert manifest is None and data["source_gb"] is None
    write_population(cfg.dataset_root, synth, progress=False)
    after, data, manifest = P.count_dataset(cfg)
    assert before == after == manifest_counts(read_dataset(cfg.dataset_root))
    seconds = np.mean([sf.info(p).duration for p in manifest.path[manifest.modality == "voice"]])
    assert data["mean_voice_s"] == pytest.approx(seconds, rel=0.02)


def test_the_real_slice_is_counted_as_it_is(shared_data):
    root, splits = shared_data / "voxceleb1-mini", shared_data / "voxceleb1-lists" / "identity_splits.txt"
    cfg = C.override(C.preset("paper"), {"data_root": str(root), "splits_file": str(splits)})
    counts, data, manifest = P.count_dataset(cfg)
    assert counts == manifest_counts(read_dataset(root, splits))
    assert counts["train"] == {"identities": 4, "voices": 32, "faces": 48}
    paths = list(root.rglob("*.wav")) + list(root.rglob("*.jpg"))
    assert data["source_gb"] * 2**30 == sum(p.stat().st_size for p in paths)
    assert data["mean_voice_s"] == pytest.approx(np.mean([sf.info(p).duration for p in root.rglob("*.wav")]), rel=0.02)


@pytest.mark.parametrize("identities, per_batch", [(901, 45), (46, 45), (10, 3), (9, 3), (7, 24)])
def test_steps_per_epoch_are_the_batches_the_sampler_draws(identities, per_batch):
    table = pd.DataFrame({"label": np.repeat(np.arange(identities), 2), "modality": ["face", "voice"] * identities})
    cfg = C.override(C.preset("default"), {"backbone.identities_per_batch": per_batch})
    batches = pk_batches(table, per_batch, 1, np.random.default_rng(0))
    counts = {"train": {"identities": identities, "voices": identities, "faces": identities}}
    assert planned_schedules(cfg, counts)["backbone"]["steps_per_epoch"] == len(batches)


def small_counts(train=(10, 40, 60), val=(4, 8, 12), test=(6, 12, 24)) -> dict:
    return {split: dict(zip(("identities", "voices", "faces"), values))
            for split, values in zip(("train", "val", "test"), (train, val, test))}


def test_the_projection_is_the_arithmetic_of_the_run_reproduce_makes():
    cfg = C.override(C.preset("default"), {"backbone.identities_per_batch": 4, "backbone.loop.epochs": 5,
                                           "preprocess.workers": 1,
                                           "backbone.loop.validate_every": 2, "fusion.loop.epochs": 7})
    counts, ref = small_counts(), P.reference_rates(RATES)
    plan = P.project(cfg, counts, {"mean_voice_s": 2.0, "source_gb": 1.0}, RATES, ref)
    json.dumps(plan)  # JSON as it is
    assert set(plan) >= {"counts", "stages", "total"} and plan["counts"] == counts
    for split in ("train", "val", "test"):
        assert set(plan["counts"][split]) == {"identities", "voices", "faces"}
    stages = {s["name"].split(" x ")[0]: s for s in plan["stages"]}
    assert list(stages) == ["preprocess", "backbone training", "embedding", "fusion training", "evaluation"]
    for s in plan["stages"]:
        assert {"name", "hours_here", "hours_reference_gpu", "disk_gb", "peak_ram_gb"} <= set(s)
    back, fusion = stages["backbone training"], stages["fusion training"]
    assert back["runs"] == 2 * len(cfg.backbone.seeds) and fusion["runs"] == 4 * len(cfg.fusion.seeds)
    # 10 identities, 4 a batch: 3 batches of 4 + 4 + 2 identities, each a face and a voice: 20 images an epoch
    assert (back["steps_per_epoch"], back["images_per_step"], back["images_trained_on"]) == (3, 6.67, 5 * 20)
    train_samples = (1 - cfg.backbone.holdout_fraction) * 100
    assert back["passes_over_training_set"] == pytest.approx(100 / train_samples)
    crops = 1  # 2 s = 200 frames: one test-time crop of 200
    held = cfg.backbone.holdout_fraction
    validation = (held * 60 + 12 + (held * 40 + 8) * crops) * 0.1 + 8 * 12 * 1e-7
    expected = back["runs"] * (5 * 3 * 0.5 + 100 * 0.3 + 3 * validation)  # epochs 2, 4 and 5 are validated
    assert back["hours_here"] == pytest.approx(expected / 3600)
    assert fusion["images_trained_on"] == 7 * math.ceil(100 / 128) * 128 and fusion["passes_over_training_set"] == 7 * 128 / 100
    assert stages["preprocess"]["samples"] == 156  # 96 faces, 60 voices
    entry = bytes_per_sample(cfg.face, cfg.voice, 2.0)  # the cache in 4 KiB blocks
    blocks = 96 * math.ceil(entry["face"] / 4096) + 60 * math.ceil(entry["voice"] / 4096)
    assert stages["preprocess"]["disk_gb"] == pytest.approx(blocks * 4096 / 2**30)
    assert stages["preprocess"]["hours_here"] == pytest.approx((96 * 0.05 + 60 * 2.0 * 0.01) / 3600)
    assert plan["total"]["hours_here"] == pytest.approx(sum(s["hours_here"] for s in plan["stages"]))
    assert plan["total"]["peak_ram_gb"] == max(s["peak_ram_gb"] for s in plan["stages"])
    assert plan["reference_gpu"]["source"] == "estimate"


def test_a_gpu_check_file_replaces_the_estimate(tmp_path):
    cfg = C.preset("paper")
    check = tmp_path / "gpu_check.json"
    check.write_text(json.dumps({"step_time_s": {"float32": 0.9}}))
    ref = P.reference_rates(RATES, check, cfg)
    assert ref["source"].startswith("measured") and ref["train_image_s"] == pytest.approx(0.9 / 90)
    check.write_text(json.dumps({"step_time_s": {"bfloat16": 0.5}, "batch": 10}))
    with pytest.raises(ValueError, match="float32"):
        P.reference_rates(RATES, check, cfg)


@pytest.fixture
def fixed_rates(monkeypatch):
    monkeypatch.setattr(P, "measure_here", lambda cfg, manifest, samples=6: dict(RATES))


def test_plan_prints_writes_json_and_refuses_what_does_not_fit(fixed_rates, monkeypatch, tmp_path, capsys):
    out = tmp_path / "plan.json"
    argv = ["plan", "--preset", "smoke", "--set", f"work_dir={tmp_path}", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "backbone training x 4" in printed and "reference GPU: estimate" in printed
    plan = json.loads(out.read_text())
    assert plan["counts"]["train"]["identities"] == 6
    monkeypatch.setattr(P.psutil, "virtual_memory", lambda: SimpleNamespace(total=2**20))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GB of memory" in err[0] and "--force" in err[0]
    assert main(argv + ["--force"]) == 0
    assert "going on (--force)" in capsys.readouterr().out


def test_reproduce_prints_the_plan_and_stops_before_any_notebook(fixed_rates, monkeypatch, tmp_path, capsys):
    from vfcross.workflows import pipeline

    ran = []
    monkeypatch.setattr(pipeline, "reproduce", lambda *args, **kwargs: ran.append(args) or {"total": 0.0})
    monkeypatch.setattr(P.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 2**20})())
    argv = ["reproduce", "--preset", "smoke", "--work-dir", str(tmp_path / "work"), "--reports", str(tmp_path / "r")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "plan of `reproduce --preset smoke`" in out and not ran
    assert len(err.strip().splitlines()) == 1 and "GB of disk" in err and "does not fit" in err
    assert main(argv + ["--force"]) == 0 and len(ran) == 1


def test_the_rates_are_measured_here_on_the_dataset_s_own_files(shared_data):
    cfg = C.preset("smoke")
    manifest = read_dataset(shared_data / "voxceleb1-mini")
    rates = P.measure_here(cfg, manifest, samples=2)
    assert set(RATES) <= set(rates) and rates["preprocess_source"] == "2 of its faces and clips"
    assert all(rates[k] > 0 for k in ("train_image_s", "forward_image_s", "face_s", "voice_s_per_s", "fusion_step_s",
                                      "auc_pair_s")) and rates["train_step_s"] >= 0
    assert rates["params"] > 20e6 and 0.3 < rates["forward_gflops"] < 0.6  # InceptionResNet-V1 at 75 px
