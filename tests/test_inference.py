"""Trained models as one object: export to one file, load back, embed raw files, `vfcross match`.

Smoke-sized runs are trained here on fake preprocessed arrays (always), and
in ``conftest.py`` on the real VoxCeleb1 slice of ``../shared/data`` (skipped
where absent), whose raw files must embed exactly as the preprocessing
stage's cache does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from fakes import fake_preprocessed, train_work_dir
from PIL import Image

import vfcross
from vfcross import config as C
from vfcross.backbone.embedding import extract_embeddings
from vfcross.workflows.cli import main
from vfcross.fusion.task import load_fusion, project
from vfcross.preprocess import load_face
from vfcross.workflows.inference import (
    BACKBONE_RUN,
    FORMAT,
    FUSION_RUN,
    InputError,
    export,
    find_runs,
    match,
    model_config,
)

SR = 16000


@pytest.fixture(scope="module")
def fake_work(tmp_path_factory) -> tuple[C.RunConfig, pd.DataFrame]:
    """A smoke-trained work folder on fake preprocessed data, and its manifest."""
    work = tmp_path_factory.mktemp("work")
    cfg = C.override(C.preset("smoke"), {"work_dir": str(work), "backbone.voice_crop_frames": 50,
                                         "backbone.loop.max_batches_per_epoch": 1})
    manifest = fake_preprocessed(work / "data", {"train": 4, "val": 2}, face_size=cfg.face.size)
    return train_work_dir(cfg, manifest), manifest


@pytest.fixture(scope="module")
def model_file(fake_work, tmp_path_factory) -> Path:
    cfg, _ = fake_work
    return export(cfg.work_dir, tmp_path_factory.mktemp("export") / "model.safetensors")


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with pauses: something energy VAD keeps in part, different for every seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = (np.sin(2 * np.pi * 3 * t) > -0.3).astype(np.float32)
    return (0.3 * envelope * rng.normal(size=t.size)).astype(np.float32)


# --- export and load ---------------------------------------------------------------------------

def test_exported_file_embeds_exactly_as_its_run_folder(fake_work, model_file):
    cfg, manifest = fake_work
    from_runs, from_file = vfcross.load(cfg.work_dir, "cpu"), vfcross.load(model_file, "cpu")
    assert from_file.cfg == from_runs.cfg and from_file.dim == cfg.fusion.dim == 32
    np.testing.assert_array_equal(from_file.embed_preprocessed(manifest), from_runs.embed_preprocessed(manifest))
    waves = [speech_like(2.0, seed) for seed in range(3)] + [(speech_like(2.0, 9)[::2], SR // 2)]
    np.testing.assert_array_equal(from_file.embed_voices(waves), from_runs.embed_voices(waves))
    np.testing.assert_array_equal(from_file.embed_voices(waves, raw=True), from_runs.embed_voices(waves, raw=True))


def test_test_time_embeddings_are_the_pipelines_u_and_v(fake_work, model_file):
    """The model's embeddings of preprocessed rows are what notebooks 03/04 compute from the runs."""
    cfg, manifest = fake_work
    model = vfcross.load(model_file, "cpu")
    emb = extract_embeddings(cfg.run_dir(BACKBONE_RUN), manifest, cfg.backbone, cfg.cache_dir / "embeddings",
                             progress=False)
    expected = project(load_fusion(cfg.run_dir(FUSION_RUN), cfg.fusion), emb.vectors, emb.table)
    got = model.embed_preprocessed(manifest)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(model.embed_preprocessed(manifest, raw=True), emb.vectors, rtol=0, atol=1e-6)


def test_model_file_is_safetensors_with_config_and_version(fake_work, model_file):
    from safetensors import safe_open

    cfg, _ = fake_work
    with safe_open(str(model_file), framework="pt") as stream:
        meta, keys = stream.metadata(), set(stream.keys())
    assert meta["format"] == FORMAT and meta["format_version"] == "1"
    saved = C.from_dict(C.RunConfig, json.loads(meta["config"]))
    assert saved.backbone == cfg.backbone and saved.fusion == cfg.fusion and saved.voice == cfg.voice
    assert saved.face == cfg.face and saved.data_root == "" and saved.work_dir != cfg.work_dir  # no local paths
    assert {"backbone.net.classifier.weight", "fusion.model.face_proj.weight"} <= keys
    assert set(json.loads(meta["sources"])) == {"backbone", "fusion"}


def test_runs_are_found_from_work_folder_runs_folder_or_fusion_run(fake_work):
    cfg, _ = fake_work
    runs = Path(cfg.work_dir) / "runs"
    expected = (runs / BACKBONE_RUN, runs / FUSION_RUN)
    assert find_runs(cfg.work_dir) == find_runs(runs) == find_runs(runs / FUSION_RUN) == expected
    with pytest.raises(ValueError, match="is a backbone run"):
        find_runs(runs / BACKBONE_RUN)


def test_bad_model_sources_fail_with_clear_errors(fake_work, model_file, tmp_path):
    from safetensors.torch import save_file

    cfg, _ = fake_work
    with pytest.raises(FileNotFoundError, match="no trained model in"):
        vfcross.load(tmp_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a vfcross model file"):
        vfcross.load(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a vfcross model file"):
        vfcross.load(foreign)
    newer = tmp_path / "newer.safetensors"
    from safetensors.torch import load_file
    meta = {"format": FORMAT, "format_version": "99", "config": "{}"}
    save_file(load_file(str(model_file)), str(newer), metadata=meta)
    with pytest.raises(ValueError, match="format version 99.*upgrade vfcross"):
        vfcross.load(newer)
    other = C.override(cfg, {"voice.n_fft": 1024})
    with pytest.raises(ValueError, match="different voice settings"):
        model_config(cfg, other)
    with pytest.raises(ValueError, match="backbone.input_size"):
        model_config(cfg, C.override(cfg, {"backbone.input_size": cfg.backbone.input_size + 16}))
    assert model_config(cfg, C.override(cfg, {"face.batch_size": 3, "fusion.dim": 8})).fusion.dim == 8


# --- raw inputs: errors ------------------------------------------------------------------------

def test_unusable_inputs_raise_one_line_errors_naming_the_file(model_file, tmp_path):
    model = vfcross.load(model_file, "cpu")
    gradient = tmp_path / "gradient.png"
    x = np.linspace(0, 255, 160)
    Image.fromarray(np.stack(np.broadcast_arrays(x[None, :], x[:, None], 128 + 0 * x[None, :]), -1)
                    .astype(np.uint8)).save(gradient)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a JPEG")
    short, silent, noise_wav = tmp_path / "short.wav", tmp_path / "silent.wav", tmp_path / "bad.wav"
    sf.write(short, speech_like(0.3), SR)
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    noise_wav.write_bytes(b"RIFF....WAVEjunk")
    cases = [
        (model.embed_faces, gradient, f"no face found in {gradient}"),
        (model.embed_faces, junk, f"unreadable {junk} (not a recognised image format)"),
        (model.embed_faces, tmp_path / "absent.jpg", f"unreadable {tmp_path / 'absent.jpg'} (No such file or directory)"),
        (model.embed_voices, short, f"audio too short after VAD in {short}"),
        (model.embed_voices, silent, f"audio too short after VAD in {silent} (no speech after VAD)"),
        (model.embed_voices, tmp_path / "absent.wav", f"unreadable {tmp_path / 'absent.wav'} (No such file or directory)"),
    ]
    for embed, path, message in cases:
        with pytest.raises(InputError) as err:
            embed([path])
        assert str(err.value) == message
    with pytest.raises(InputError, match=rf"^unreadable {noise_wav} \(.+\)$"):
        model.embed_voices([noise_wav])


def test_match_cli_errors_exit_2_with_one_line(model_file, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, speech_like(0.3), SR)
    ok = tmp_path / "ok.wav"
    sf.write(ok, speech_like(2.0), SR)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    for argv, message in [
        (["--voice", str(short), "--faces", str(junk)], f"audio too short after VAD in {short}"),
        (["--voice", str(ok), "--faces", str(junk)], f"unreadable {junk} (not a recognised image format)"),
        (["--voice", str(ok), "--voices", str(ok)], "--voice needs --faces (and no --voices)"),
    ]:
        assert main(["match", str(model_file), *argv]) == 2
        err = capsys.readouterr().err
        assert err == f"vfcross match: error: {message}\n"
    assert main(["match", str(tmp_path / "nowhere"), "--voice", str(ok), "--faces", str(junk)]) == 2
    assert "no trained model in" in capsys.readouterr().err


def test_export_cli_writes_the_same_file_from_any_form_of_the_run(fake_work, model_file, tmp_path, capsys):
    cfg, _ = fake_work
    out = tmp_path / "m.safetensors"
    assert main(["export", "--run", str(Path(cfg.work_dir) / "runs" / FUSION_RUN), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    from safetensors import safe_open

    contents = []
    for path in (out, model_file):
        with safe_open(str(path), framework="pt") as stream:
            contents.append((stream.metadata(), {k: stream.get_tensor(k) for k in stream.keys()}))
    (meta, tensors), (expected_meta, expected) = contents
    assert meta == expected_meta and tensors.keys() == expected.keys()
    assert all(torch.equal(tensors[k], expected[k]) for k in expected)


class _FixedModel:
    """Stands in for a model: fixed unit vectors for named inputs."""

    vectors = {"v": [1.0, 0.0], "f1": [0.6, 0.8], "f2": [1.0, 0.0], "f3": [0.6, -0.8], "f4": [-1.0, 0.0]}

    def embed_faces(self, items):
        return np.array([self.vectors[i] for i in items])

    embed_voices = embed_faces


def test_match_ranks_by_cosine_best_first_and_keeps_input_order_in_ties():
    table = match(_FixedModel(), "v", ["f1", "f2", "f3", "f4"], "voice")
    assert list(table.candidate) == ["f2", "f1", "f3", "f4"]  # 1.0, 0.6, 0.6 (tie: input order), -1.0
    np.testing.assert_allclose(table.similarity, [1.0, 0.6, 0.6, -1.0])
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert list(match(_FixedModel(), "f1", ["v", "f4"], "face").candidate) == ["v", "f4"]
    with pytest.raises(ValueError, match="no candidates"):
        match(_FixedModel(), "v", [], "voice")
    with pytest.raises(ValueError, match="query_modality"):
        match(_FixedModel(), "v", ["f1"], "text")


# --- the real slice ----------------------------------------------------------------------------

def test_raw_files_embed_as_the_preprocessing_cache_does(slice_work, tmp_path):
    """Faces through MTCNN + alignment and voices through VAD + spectrogram, as the training inputs were."""
    cfg, manifest = slice_work
    model = vfcross.load(cfg.work_dir, "cpu")
    faces = manifest[manifest.modality == "face"].groupby("identity").head(2)
    voices = manifest[manifest.modality == "voice"].groupby("identity").head(1)
    crops = model.face_crops(list(faces.path))
    cached = [load_face(p) for p in faces.cache_path]
    # MTCNN batches images of equal size together, so a different set of images can move a landmark by
    # float rounding and a pixel by one level; the embeddings then agree closely, not bit for bit.
    assert max(np.abs(c.astype(int) - k.astype(int)).max() for c, k in zip(crops, cached)) <= 1
    np.testing.assert_allclose(model.embed_faces(list(faces.path)), model.embed_preprocessed(faces), atol=2e-3)
    np.testing.assert_allclose(model.embed_voices(list(voices.path)), model.embed_preprocessed(voices), atol=1e-5)
    from_file = vfcross.load(export(cfg.work_dir, tmp_path / "m.safetensors"), "cpu")
    np.testing.assert_array_equal(from_file.embed_faces(list(faces.path)), model.embed_faces(list(faces.path)))


def test_match_ranks_the_slice_faces_for_one_of_its_voices(slice_work, capsys):
    cfg, manifest = slice_work
    test = manifest[manifest.split == "test"]
    voice = test[test.modality == "voice"].path.iloc[0]
    faces = list(manifest[manifest.modality == "face"].groupby("identity").path.first())
    assert main(["match", cfg.work_dir, "--voice", voice, "--faces", *faces, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["query"] == {"modality": "voice", "path": voice}
    ranking = result["ranking"]
    assert [r["rank"] for r in ranking] == list(range(1, 7)) and sorted(r["face"] for r in ranking) == sorted(faces)
    model = vfcross.load(cfg.work_dir, "cpu")
    expected = dict(zip(faces, model.embed_faces(faces) @ model.embed_voices([voice])[0]))
    for r in ranking:
        assert r["similarity"] == pytest.approx(float(expected[r["face"]]), abs=1e-6)
    assert [r["similarity"] for r in ranking] == sorted(expected.values(), reverse=True)

    voices = list(test[test.modality == "voice"].path[:3])
    assert main(["match", cfg.work_dir, "--face", faces[0], "--voices", *voices]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == 4 and all(v in out for v in voices)  # header + one row per voice


def test_importing_vfcross_stays_light():
    """`import vfcross` must not pull in torch: vfcross.load imports the model code when called."""
    import subprocess
    import sys

    code = "import sys, vfcross; print('torch' in sys.modules, callable(vfcross.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "True"]
