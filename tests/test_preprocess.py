"""Preprocessing: face alignment, energy VAD, spectrograms, the cache and bad inputs.

Real faces and speech come from ``../shared/data/voxceleb1-mini`` (tests that
need them skip where it is absent); everything else is written into tmp_path.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from vfcross.config import FaceConfig, RunConfig, VoiceConfig, override
from vfcross.preprocess import (
    align_face,
    cache,
    load_face,
    load_spectrogram,
    preprocess,
    run,
    spectrogram,
    vad,
    write_report,
)
from vfcross.preprocess.faces import (
    FALLBACK_REASON,
    MULTI_FACE_REASON,
    FaceDetector,
    crop_faces,
    encode_face,
    open_rgb,
    single_torch_thread,
    similarity_transform,
    template,
)
from vfcross.preprocess.voices import (
    CHANNELS_CANCEL_REASON,
    frame_energies,
    process_voice,
    read_audio,
    truncation_note,
)

SR = 16000
MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "voxceleb1-mini"


def mini() -> Path:
    """The real VoxCeleb1 slice, or skip the calling test where it is absent."""
    if not MINI.is_dir():
        pytest.skip(f"shared real data not found at {MINI}")
    return MINI


def real_faces() -> list[Path]:
    """The 72 face photos of voxceleb1-mini."""
    return sorted(mini().glob("unzippedFaces/*/1.6/*/*.jpg"))


def real_clips() -> list[Path]:
    """The 48 speech clips of voxceleb1-mini (16 kHz mono)."""
    return sorted(mini().glob("wav/*/*/*.wav"))


def manifest_of(rows: list[tuple[str, str, Path]]) -> pd.DataFrame:
    """A manifest of ``(identity, modality, path)`` rows with the other columns filled in."""
    return pd.DataFrame([
        {"identity": ident, "modality": modality, "path": str(path), "relpath": path.name,
         "video": "v", "split": "train", "gender": pd.NA, "nationality": pd.NA, "age": pd.NA}
        for ident, modality, path in rows
    ])


def run_config(tmp_path: Path, **changes) -> RunConfig:
    """A small, single-process configuration caching under ``tmp_path``."""
    base = {"work_dir": str(tmp_path / "work"), "face.size": 96, "preprocess.workers": 1}
    return override(RunConfig(), {**base, **changes})


def write_wav(path: Path, signal: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    """Write ``signal`` (samples x channels, or mono) as a WAV file."""
    sf.write(path, signal, sr, subtype=subtype)
    return path


def tone(seconds: float, sr: int = SR, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    """A sine tone: constant energy, so energy VAD keeps all of it."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Gaussian noise: a clip whose spectrogram differs from seed to seed."""
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * sr)).astype(np.float32)


def no_face_image(path: Path) -> Path:
    """A smooth colour gradient: nothing MTCNN could take for a face."""
    x = np.linspace(0, 255, 160)
    rgb = np.stack(np.broadcast_arrays(x[None, :], x[:, None], 128 + 0 * x[None, :]), axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


# --- faces -----------------------------------------------------------------------------------------

def blob_image(points: np.ndarray, shape: tuple[int, int], sigma: float) -> Image.Image:
    """A black image with a bright Gaussian blob centred on each point (x, y)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    canvas = np.zeros(shape)
    for x, y in points:
        canvas += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return Image.fromarray((255 * np.clip(canvas, 0, 1)).astype(np.uint8)).convert("RGB")


def blob_centres(image: np.ndarray, near: np.ndarray, radius: int = 5) -> np.ndarray:
    """Intensity centroid of the blob around each point of ``near``."""
    gray = image.astype(np.float64).mean(axis=2)
    centres = []
    for x, y in np.rint(near).astype(int):
        ys, xs = np.mgrid[y - radius: y + radius + 1, x - radius: x + radius + 1]
        weights = gray[y - radius: y + radius + 1, x - radius: x + radius + 1]
        centres.append([(weights * xs).sum() / weights.sum(), (weights * ys).sum() / weights.sum()])
    return np.array(centres)


@pytest.mark.parametrize("scale", [1.6, 3.0])  # 3.0 also exercises the anti-alias pre-shrink
def test_align_face_maps_rotated_landmarks_onto_template(scale):
    size = 128
    target = template(size)
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (target - size / 2) @ (scale * rotation).T + [230.0, 210.0]
    photo = blob_image(landmarks, (450, 460), sigma=1.5 * scale)

    crop = align_face(photo, landmarks, size)

    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    assert np.abs(blob_centres(crop, target) - target).max() < 1.0
    matrix = similarity_transform(landmarks, target)
    np.testing.assert_allclose(matrix[:, :2], rotation.T / scale, atol=1e-9)


def test_similarity_transform_never_mirrors():
    points = np.array([[0, 0], [1, 0], [0.5, 1], [0.2, 2], [0.8, 2]], dtype=float)
    mirrored = points * [-1, 1]
    assert np.linalg.det(similarity_transform(points, mirrored)[:, :2]) > 0


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """One MTCNN for the face tests of this module (fallback policy, 96 px crops)."""
    return FaceDetector(FaceConfig(size=96))


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_any_image_mode_becomes_an_aligned_rgb_crop(tmp_path, detector, mode):
    photo = Image.open(real_faces()[0]).convert("RGB")
    if mode == "I;16":  # 16-bit greyscale: rescaled to 8 bits, not clipped to white
        converted = Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257)
        assert converted.mode == "I;16"
    else:
        converted = photo.convert(mode)
    path = tmp_path / ("face.jpg" if mode in ("L", "CMYK") else "face.png")
    converted.save(path)

    image = open_rgb(path)
    [(crop, reason)] = crop_faces([image], detector)

    assert image.mode == "RGB"
    assert reason == "" and crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    if mode == "I;16":
        np.testing.assert_array_equal(np.asarray(image), np.asarray(photo.convert("L").convert("RGB")))


def test_unreadable_and_faceless_images(tmp_path):
    good = real_faces()[:2]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:2000])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a JPEG")
    faceless = no_face_image(tmp_path / "gradient.png")
    tiny = tmp_path / "tiny.png"  # smaller than min_face_size: MTCNN itself would crash on it
    Image.new("RGB", (8, 8), "gray").save(tiny)
    manifest = manifest_of([("a", "face", p) for p in [*good, truncated, junk, faceless, tiny]]
                           + [("a", "voice", real_clips()[0])])

    result = preprocess(manifest, run_config(tmp_path), progress=False)
    faces = result.report.set_index("relpath")

    assert list(faces.loc[[p.name for p in good], "outcome"]) == ["processed"] * 2
    for bad in ("truncated.jpg", "junk.jpg"):
        assert faces.loc[bad, "outcome"] == "skipped"
        assert faces.loc[bad, "reason"].startswith("unreadable image: ")
    assert "truncated" in faces.loc["truncated.jpg", "reason"]
    assert faces.loc["junk.jpg", "reason"] == "unreadable image: not a recognised image format"
    # By default an image without a face trains nothing: it is skipped and counted.
    for empty in ("gradient.png", "tiny.png"):
        assert (faces.loc[empty, "outcome"], faces.loc[empty, "reason"]) == ("skipped", "no face detected")
    assert set(result.manifest.relpath) == {*(p.name for p in good), real_clips()[0].name}
    assert not result.manifest.fallback.any()
    counts = result.summary().set_index(["modality", "outcome", "reason"])["count"]
    assert counts[("face", "skipped", "no face detected")] == 2
    assert load_face(result.manifest.cache_path[0]).shape == (96, 96, 3)

    # Opting in keeps their centre crops, flagged; the cache is shared by both policies.
    opted = preprocess(manifest, run_config(tmp_path, **{"face.no_face": "fallback"}), progress=False)
    faces = opted.report.set_index("relpath")
    for empty in ("gradient.png", "tiny.png"):
        assert (faces.loc[empty, "outcome"], faces.loc[empty, "reason"]) == ("cached", FALLBACK_REASON)
    flagged = opted.manifest.set_index("relpath")["fallback"]
    assert flagged["gradient.png"] and flagged["tiny.png"] and not flagged[good[0].name]


def test_the_largest_of_several_faces_is_kept_and_the_frame_flagged(detector):
    big, small = (open_rgb(p) for p in real_faces()[:24:23])
    canvas = Image.new("RGB", (420, 260), (90, 90, 90))
    canvas.paste(big.resize((240, 240)), (5, 10))
    canvas.paste(small.resize((120, 120)), (290, 70))

    [found] = detector.detect([canvas])
    [(crop, reason)] = crop_faces([canvas], detector)

    assert found.faces == 2
    assert (found.landmarks[:, 0] < 245).all() and (found.landmarks[:, 1] > 10).all()  # inside the big face
    assert reason == MULTI_FACE_REASON and crop.shape == (96, 96, 3)


def test_detection_batches_are_bounded_by_pixels_and_large_images_downscaled():
    detector = FaceDetector(FaceConfig(size=96, batch_pixels=100_000))
    seen = []
    real_detect = detector._mtcnn.detect

    def counting_detect(images, landmarks):
        seen.append(sum(i.width * i.height for i in images))
        return real_detect(images, landmarks=landmarks)

    detector._mtcnn.detect = counting_detect
    faces = [open_rgb(p) for p in real_faces()[:12]]
    large = faces[0].resize((faces[0].width * 3, faces[0].height * 3), Image.Resampling.BICUBIC)

    found = detector.detect([*faces, large])

    assert seen and max(seen) <= 100_000 and large.width * large.height > 100_000
    assert all(f is not None for f in found)
    # The landmarks found on the downscaled copy land on the full-size image's face.
    expected = (found[0].landmarks + 0.5) * 3 - 0.5
    assert np.abs(found[-1].landmarks - expected).max() < 6.0


def test_batched_mixed_sizes_find_todays_landmarks_within_mtcnns_own_jitter():
    """The slice's 72 frames come in 24 sizes. Today's reference detects each size apart, at full size; at one
    common size (``detect_size``) a landmark moves about as much as rescaling a frame by 5 % moves it in MTCNN
    itself (median 1.6-1.7, 95th percentile 4.5-5.6 px; see docs/preprocessing.md), and not with its batch."""
    images = [open_rgb(p) for p in real_faces()]
    full_size = FaceDetector(FaceConfig(detect_size=0))
    reference: list = [None] * len(images)
    for size in {image.size for image in images}:
        same = [i for i, image in enumerate(images) if image.size == size]
        for i, found in zip(same, full_size.detect([images[i] for i in same])):
            reference[i] = found.landmarks
    batched = FaceDetector(FaceConfig())
    found = [d for start in range(0, len(images), 32) for d in batched.detect(images[start:start + 32])]

    assert all(d is not None for d in found)
    errors = np.array([np.abs(d.landmarks - r).max() for d, r in zip(found, reference)])  # px, worst of 10 coordinates
    eyes = np.array([np.linalg.norm(r[1] - r[0]) for r in reference])
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 6.0 and (errors / eyes).max() <= 0.35, errors
    alone = [batched.detect([image])[0].landmarks for image in images[::7]]
    np.testing.assert_allclose(alone, [d.landmarks for d in found[::7]], atol=1e-3)


def test_square_frames_of_detect_size_are_detected_as_facenet_does():
    """Frames of ``detect_size`` (the synthetic population's 160 x 160) go to MTCNN unchanged, in their order: its
    landmarks bit for bit (the faster max-pooling returns the same maxima), so their crops are today's."""
    from facenet_pytorch import MTCNN

    images = [open_rgb(p).resize((160, 160)) for p in real_faces()[:20]]
    ours = FaceDetector(FaceConfig(size=96)).detect(images)
    plain = MTCNN(keep_all=True, select_largest=True, min_face_size=20, device="cpu")
    theirs = []
    for start in (0, 16):
        with single_torch_thread():  # as FaceDetector runs it
            boxes, _, points = plain.detect(images[start:start + 16], landmarks=True)
        for box, point in zip(boxes, points):
            largest = np.argmax((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))
            theirs.append((np.asarray(point, dtype=np.float64)[largest] + 0.5) / 1.0 - 0.5)
    for mine, expected in zip(ours, theirs):
        np.testing.assert_array_equal(mine.landmarks, expected)


# --- voices ----------------------------------------------------------------------------------------

def test_vad_threshold_on_hand_computed_frame_energies():
    # 1 kHz, 4 ms windows with 50 % overlap: window 4 samples, hop 2, 4 frames.
    cfg = VoiceConfig(vad_window_ms=4.0, vad_overlap=0.5, vad_threshold_db=9.0)
    signal = np.array([0, 0, 1, 1, 3, 3, 0, 0, 0.1, 0.1])
    # frame energies: [0:4] 0+0+1+1 = 2, [2:6] 1+1+9+9 = 20, [4:8] 9+9 = 18, [6:10] 0.01+0.01 = 0.02
    np.testing.assert_allclose(frame_energies(signal, 4, 2), [2, 20, 18, 0.02])
    # 9 dB below the loudest (20) is 20 / 10**0.9 = 2.52: frames 1 and 2 survive.
    kept, keep = vad(signal, 1000, cfg)
    assert keep.tolist() == [False, True, True, False]
    # Each sample belongs to the frame with the nearest centre; frame k owns [2k+1, 2k+3).
    np.testing.assert_array_equal(kept, [1, 3, 3, 0])


def test_vad_removes_padded_silence():
    cfg = VoiceConfig()
    speech = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)  # 1 s of "speech"
    padded = np.concatenate([np.zeros(SR // 2), speech, np.zeros(SR)])
    kept, keep = vad(padded, SR, cfg)
    window = int(SR * cfg.vad_window_ms / 1000)
    assert abs(len(kept) - len(speech)) <= window  # within a frame
    assert not keep[:5].any() and not keep[-5:].any()


def test_vad_on_real_speech_drops_only_the_padding():
    cfg = VoiceConfig()
    speech = read_audio(real_clips()[0], SR)
    padded = np.concatenate([np.zeros(SR), speech, np.zeros(SR)])
    hop = int(SR * cfg.vad_window_ms / 1000 * (1 - cfg.vad_overlap))
    assert abs(len(vad(padded, SR, cfg)[0]) - len(vad(speech, SR, cfg)[0])) <= 2 * hop


def test_silence_keeps_nothing():
    kept, keep = vad(np.zeros(SR), SR, VoiceConfig())
    assert len(kept) == 0 and not keep.any()


def test_spectrogram_shape_and_per_bin_normalisation():
    cfg = VoiceConfig()
    signal = np.random.default_rng(1).normal(0, 0.1, SR).astype(np.float32)
    spec = spectrogram(signal, cfg)
    assert spec.shape == (cfg.n_fft // 2 + 1, 1 + (SR - cfg.n_fft) // 160)
    np.testing.assert_allclose(spec.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(spec.std(axis=1), 1, atol=1e-3)


def test_stereo_44k_and_8bit_and_float_audio(tmp_path):
    cfg = VoiceConfig()
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([tone(3.0, 44100), tone(3.0, 44100, 330)], 1), 44100)
    audio = read_audio(stereo, SR)
    assert audio.ndim == 1 and abs(len(audio) - 3 * SR) <= 1

    for path in (stereo, write_wav(tmp_path / "u8.wav", tone(3.0), subtype="PCM_U8"),
                 write_wav(tmp_path / "float.wav", tone(3.0), subtype="FLOAT")):
        spec, reason = process_voice(path.read_bytes(), cfg)
        assert reason == "" and spec.dtype == np.float16
        assert spec.shape[0] == 257 and abs(spec.shape[1] - 3.0 * 1000 / cfg.hop_ms) <= 4
        assert np.isfinite(spec).all()


def test_opposite_phase_stereo_is_a_channel_problem_not_silence(tmp_path):
    cancelling = write_wav(tmp_path / "anti.wav", np.stack([tone(2.0), -tone(2.0)], 1))
    spec, reason = process_voice(cancelling.read_bytes(), VoiceConfig())
    assert spec is None and reason == CHANNELS_CANCEL_REASON
    # Channels that differ, even in part opposed, mix to something usable.
    for right in (0.5 * tone(2.0), -0.5 * tone(2.0), tone(2.0, freq=330)):
        path = write_wav(tmp_path / "mixed.wav", np.stack([tone(2.0), right], 1))
        spec, reason = process_voice(path.read_bytes(), VoiceConfig())
        assert reason == "" and spec is not None


def test_max_seconds_cuts_long_speech_and_says_so(tmp_path):
    clip = write_wav(tmp_path / "long.wav", tone(6.0))
    cfg = VoiceConfig(max_seconds=2.0)
    spec, reason = process_voice(clip.read_bytes(), cfg)
    assert reason == truncation_note(2.0) == "speech cut to voice.max_seconds = 2 s"
    assert spec.shape[1] == 1 + (2 * SR - cfg.n_fft) // 160
    result = preprocess(manifest_of([("a", "voice", clip)]), run_config(tmp_path, **{"voice.max_seconds": 2.0}),
                        progress=False)
    assert (result.report.outcome[0], result.report.reason[0]) == ("processed", truncation_note(2.0))
    assert len(result.manifest) == 1
    unlimited = preprocess(manifest_of([("a", "voice", clip)]), run_config(tmp_path), progress=False)
    assert load_spectrogram(unlimited.manifest.cache_path[0]).shape[1] > 500  # another cache entry, whole clip


def bad_clips(folder: Path) -> dict[str, Path]:
    """Audio files that cannot become a spectrogram, by expected reason prefix."""
    whole = write_wav(folder / "whole.wav", tone(2.0))
    truncated = folder / "truncated.wav"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    header_only = folder / "cut_header.wav"
    header_only.write_bytes(whole.read_bytes()[:30])
    return {
        "unreadable audio: truncated": truncated,
        "unreadable audio: Error in WAV file": header_only,
        "empty audio": write_wav(folder / "empty.wav", np.zeros(0, np.float32)),
        "no speech after VAD": write_wav(folder / "silent.wav", np.zeros(2 * SR, np.float32)),
        "too short after VAD": write_wav(folder / "short.wav",
                                         np.concatenate([np.zeros(SR), tone(0.2), np.zeros(SR)])),
    }


def test_bad_audio_files_are_skipped_with_reasons(tmp_path):
    for expected, path in bad_clips(tmp_path).items():
        spec, reason = process_voice(path.read_bytes(), VoiceConfig())
        assert spec is None and reason.startswith(expected), (path.name, reason)


# --- the stage: cache, report, mixed batches --------------------------------------------------------

def mixed_manifest(folder: Path) -> pd.DataFrame:
    """Good and bad files of three identities; identity "c" has no usable voice."""
    faces, clips = real_faces(), real_clips()
    junk = folder / "junk.jpg"
    junk.write_bytes(b"\x00" * 100)
    bad = bad_clips(folder)
    rows = [("a", "face", faces[0]), ("a", "face", junk), ("a", "voice", clips[0]),
            ("a", "voice", bad["empty audio"]), ("b", "face", faces[20]), ("b", "voice", clips[10]),
            ("b", "voice", bad["unreadable audio: truncated"]), ("b", "voice", write_wav(
                folder / "stereo.wav", np.stack([tone(1.5, 44100)] * 2, 1), 44100)),
            ("c", "face", faces[40]), ("c", "voice", bad["no speech after VAD"]),
            ("c", "voice", folder / "missing.wav")]
    return manifest_of(rows)


def test_mixed_batch_processes_every_good_file_and_drops_incomplete_identities(tmp_path):
    manifest = mixed_manifest(tmp_path)
    result = preprocess(manifest, run_config(tmp_path), progress=False)
    report = result.report

    assert len(report) == len(manifest)
    assert set(report.outcome) <= {"processed", "cached", "skipped"}
    good = ["a/face", "a/voice", "b/face", "b/voice", "b/voice"]
    processed = report[report.outcome == "processed"]
    assert sorted(processed.identity + "/" + processed.modality) == sorted(good)
    c_face = report[(report.identity == "c") & (report.modality == "face")].iloc[0]
    assert (c_face.outcome, c_face.reason) == ("skipped", "identity has no usable voice samples")
    assert report.set_index("relpath").loc["missing.wav", "reason"] == "unreadable audio: No such file or directory"
    assert (report.reason == "").sum() == len(good)

    assert list(result.manifest.identity) == ["a", "a", "b", "b", "b"]
    assert {"cache_path", "fallback"} <= set(result.manifest.columns)
    assert not result.manifest.fallback.any()
    for path, modality in zip(result.manifest.cache_path, result.manifest.modality):
        array = load_face(path) if modality == "face" else load_spectrogram(path)
        assert array.dtype == (np.uint8 if modality == "face" else np.float32)

    summary = result.summary()
    assert summary["count"].sum() == len(manifest)
    csv_path, md_path = write_report(result, tmp_path / "report")
    assert len(pd.read_csv(csv_path, keep_default_na=False)) == len(manifest)
    assert "| modality | outcome | reason | count |" in md_path.read_text()


def load(result) -> list[np.ndarray]:
    """The cached arrays of a preprocessing result's manifest, in order."""
    return [load_face(p) if m == "face" else load_spectrogram(p)
            for p, m in zip(result.manifest.cache_path, result.manifest.modality)]


def test_second_run_is_all_cached_and_settings_change_the_folder(tmp_path, monkeypatch):
    manifest = mixed_manifest(tmp_path)
    cfg = run_config(tmp_path)
    first = preprocess(manifest, cfg, progress=False)
    arrays = load(first)
    written = {p: p.stat().st_mtime_ns for p in cfg.cache_dir.rglob("*")}

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached work was redone")

    monkeypatch.setattr(run, "FaceDetector", must_not_run)
    monkeypatch.setattr(run, "speech", must_not_run)
    monkeypatch.setattr(Path, "read_bytes", must_not_run)  # a cache hit reads no source file
    second = preprocess(manifest, cfg, progress=False)

    was = first.report.outcome.replace("processed", "cached")
    pd.testing.assert_series_equal(second.report.outcome, was)
    pd.testing.assert_series_equal(second.report.reason, first.report.reason)
    pd.testing.assert_frame_equal(second.manifest, first.manifest)
    monkeypatch.undo()
    for before, after in zip(arrays, load(second)):
        np.testing.assert_array_equal(after, before)
    assert {p: p.stat().st_mtime_ns for p in cfg.cache_dir.rglob("*")} == written
    assert not list(cfg.cache_dir.rglob("*.tmp"))

    fresh = preprocess(manifest, run_config(tmp_path / "again"), progress=False)
    for before, after in zip(arrays, load(fresh)):  # the pipeline is deterministic
        np.testing.assert_array_equal(after, before)

    other = override(cfg, {"voice.n_fft": 1024})
    assert cache.cache_folder(other.cache_dir, "voice", other.voice) != \
        cache.cache_folder(cfg.cache_dir, "voice", cfg.voice)
    assert cache.cache_folder(cfg.cache_dir, "face", override(cfg, {"face.batch_size": 3}).face) == \
        cache.cache_folder(cfg.cache_dir, "face", cfg.face)
    voices = preprocess(manifest[manifest.modality == "voice"], other, progress=False)
    spectrograms = [load_spectrogram(p) for p in voices.manifest.cache_path]
    assert spectrograms and all(s.shape[0] == 513 for s in spectrograms)


def test_skips_are_remembered(tmp_path):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    cfg = run_config(tmp_path)
    manifest = manifest_of([("a", "voice", silent)])
    preprocess(manifest, cfg, progress=False)
    [pack] = list(cfg.cache_dir.rglob("*.zip"))
    with zipfile.ZipFile(pack) as archive:
        assert archive.namelist() == ["index.json"]
        assert list(json.loads(archive.read("index.json")).values()) == [["", "no speech after VAD"]]
    again = preprocess(manifest, cfg, progress=False).report.iloc[0]
    assert (again.outcome, again.reason) == ("skipped", "no speech after VAD")


def test_interrupted_write_leaves_no_partial_files(tmp_path, monkeypatch):
    def broken_write(self, name, data, *args, **kwargs):
        self.fp.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken_write)
    with pytest.raises(OSError, match="disk full"):
        cache.store(tmp_path, [("key", b"data", ".npy", "")])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.slow
def test_all_of_voxceleb1_mini(tmp_path, monkeypatch):
    """Every real face is detected (no fallback) and every real clip becomes a spectrogram."""
    meta = pd.read_csv(mini() / "vox1_meta.csv", sep="\t")
    vox_id = dict(zip(meta["VGGFace1 ID"], meta["VoxCeleb1 ID"]))
    rows = [(vox_id[p.parts[-4]], "face", p) for p in real_faces()]
    rows += [(p.parts[-3], "voice", p) for p in real_clips()]
    monkeypatch.setattr(run, "_MIN_POOL_SECONDS", 0.0)  # use the spawned pool even for this little work

    result = preprocess(manifest_of(rows), run_config(tmp_path, **{"preprocess.workers": 2}), progress=False)

    counts = result.summary().set_index(["modality", "outcome", "reason"])["count"].to_dict()
    # One frame also holds a small false detection at its edge: flagged, the (right) largest face kept.
    assert counts == {("face", "processed", ""): 71, ("face", "processed", MULTI_FACE_REASON): 1,
                      ("voice", "processed", ""): 48}
    flagged = result.report[result.report.reason == MULTI_FACE_REASON].relpath
    assert list(flagged) == ["0004525.jpg"]
    assert not result.manifest.fallback.any()
    # The worker pool makes exactly what one process makes.
    alone = preprocess(manifest_of(rows), run_config(tmp_path / "alone"), progress=False)
    for pooled, single in zip(load(result), load(alone)):
        np.testing.assert_array_equal(pooled, single)
    for path in result.manifest.cache_path[72:]:
        spec = load_spectrogram(path)
        assert spec.shape[0] == 257 and spec.shape[1] > 200 and np.isfinite(spec).all()  # >= 2 s of speech


def test_open_rgb_of_bytes_matches_path():
    photo = real_faces()[0]
    assert np.array_equal(np.asarray(open_rgb(photo.read_bytes())), np.asarray(open_rgb(photo)))


def test_exif_orientation_is_applied(tmp_path):
    upright = Image.open(real_faces()[0]).convert("RGB").crop((0, 0, 200, 120))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.jpg", exif=exif)
    assert open_rgb(tmp_path / "sideways.jpg").size == upright.size


# --- the cache: exact storage, change keys, packs, interruptions ---------------------------------------

def test_lossless_entries_load_exactly_what_was_made(tmp_path):
    faces, clips = real_faces()[:3], real_clips()[:2]
    manifest = manifest_of([("a", "face", p) for p in faces] + [("a", "voice", p) for p in clips])
    cfg = run_config(tmp_path)
    result = preprocess(manifest, cfg, progress=False)
    made = crop_faces([open_rgb(p) for p in faces], FaceDetector(cfg.face))
    for (crop, _), path in zip(made, result.manifest.cache_path[:3]):
        assert path.endswith(".webp")
        np.testing.assert_array_equal(load_face(path), crop)
    for clip, path in zip(clips, result.manifest.cache_path[3:]):
        spec, _ = process_voice(clip.read_bytes(), cfg.voice)
        loaded = load_spectrogram(path)
        assert loaded.dtype == np.float32 and np.array_equal(loaded, spec.astype(np.float32))
    noise = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)  # no structure to hide loss
    data, suffix = encode_face(noise, cfg.face)
    assert suffix == ".webp" and np.array_equal(load_face(cache.store(tmp_path, [("k", data, suffix, "")])[0]
                                                         .cache_path), noise)


def test_audio_storage_makes_the_same_spectrograms_from_less_than_half_the_bytes(tmp_path):
    """16-bit 16 kHz speech (VoxCeleb1's) is stored exactly, so its spectrograms are today's, bit for bit."""
    manifest = manifest_of([("a", "voice", p) for p in real_clips()[:4]])
    stored = preprocess(manifest, run_config(tmp_path), progress=False).manifest.cache_path
    audio = preprocess(manifest, run_config(tmp_path, **{"voice.storage": "audio"}), progress=False).manifest.cache_path
    for spec_path, audio_path in zip(stored, audio):
        assert audio_path.endswith(".flac")
        np.testing.assert_array_equal(load_spectrogram(audio_path), load_spectrogram(spec_path))
    size = {p: len(cache.read_entry(p)[0]) for p in [*stored, *audio]}
    assert sum(size[p] for p in audio) < 0.45 * sum(size[p] for p in stored)
    # Speech that is not 16-bit (resampled here) is rounded to 16 bits: process_voice gives what loading gives.
    clip = write_wav(tmp_path / "44k.wav", tone(2.0, 44100) + 0.01 * np.random.default_rng(2).normal(size=88200),
                     44100, subtype="FLOAT")
    cfg = run_config(tmp_path, **{"voice.storage": "audio"})
    [path] = preprocess(manifest_of([("a", "voice", clip)]), cfg, progress=False).manifest.cache_path
    np.testing.assert_array_equal(load_spectrogram(path), process_voice(clip, cfg.voice)[0].astype(np.float32))


def test_jpeg_storage_is_close_and_small(tmp_path):
    manifest = manifest_of([("a", "face", p) for p in real_faces()[:6]])
    exact = preprocess(manifest, run_config(tmp_path), progress=False).manifest.cache_path
    lossy = preprocess(manifest, run_config(tmp_path, **{"face.storage": "jpeg"}), progress=False).manifest.cache_path
    for a, b in zip(exact, lossy):
        assert b.endswith(".jpg") and len(cache.read_entry(b)[0]) < 0.5 * len(cache.read_entry(a)[0])
        assert np.abs(load_face(a).astype(float) - load_face(b)).mean() < 3.0  # of 255


def test_a_changed_file_is_made_again_and_the_rest_is_not_read(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    faces = [folder / f"{k}.jpg" for k in range(3)]
    for source, target in zip(real_faces()[:3], faces):
        target.write_bytes(source.read_bytes())
    clips = [write_wav(folder / f"{k}.wav", noise(1.5, seed=k)) for k in range(3)]
    manifest = manifest_of([("a", "face", p) for p in faces] + [("a", "voice", p) for p in clips])
    cfg = run_config(tmp_path)
    first = preprocess(manifest, cfg, progress=False)
    assert set(first.report.outcome) == {"processed"}

    faces[1].write_bytes(real_faces()[10].read_bytes())  # new content (new size and mtime)
    write_wav(clips[2], noise(1.5, seed=9))  # same size, new content: a new mtime
    os.utime(clips[2], ns=(clips[2].stat().st_atime_ns, clips[2].stat().st_mtime_ns + 10**9))
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (reads.append(self.name), read_bytes(self))[1])
    second = preprocess(manifest, cfg, progress=False)

    assert list(second.report.outcome) == ["cached", "processed", "cached", "cached", "cached", "processed"]
    assert sorted(reads) == ["1.jpg", "2.wav"]  # the unchanged sources are not even opened
    assert not np.array_equal(load_face(second.manifest.cache_path[1]), load_face(first.manifest.cache_path[1]))
    assert not np.array_equal(load_spectrogram(second.manifest.cache_path[5]),
                              load_spectrogram(first.manifest.cache_path[5]))


def test_packs_are_sharded_and_index_every_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "_FACES_PER_TASK", 2)
    manifest = mixed_manifest(tmp_path)
    cfg = run_config(tmp_path)
    result = preprocess(pd.concat([manifest, manifest.iloc[:3]], ignore_index=True), cfg, progress=False)
    packs = sorted(cfg.cache_dir.rglob("*.zip"))
    assert len(packs) == 3  # faces in tasks of 2 (3 readable faces: 2 packs), the voices in one
    indexed = {}
    for pack in packs:
        assert pack.parent.name == pack.name[:2] and (pack.parents[1] / "settings.json").is_file()
        with zipfile.ZipFile(pack) as archive:
            index = json.loads(archive.read("index.json"))
            assert sorted(archive.namelist()) == sorted(["index.json", *(m for m, _ in index.values() if m)])
        indexed.update(index)
    readable = manifest[[Path(p).exists() for p in manifest.path]]
    assert len(indexed) == len(readable)  # every readable sample once; the missing file is not remembered
    assert list(result.report.reason[-3:]) == list(result.report.reason[:3])  # repeated rows: made once, reported
    assert list(result.report.outcome[-3:]) == list(result.report.outcome[:3])


def test_an_interrupted_run_keeps_its_finished_packs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "_CLIPS_PER_TASK", 2)
    clips = [write_wav(tmp_path / f"{k}.wav", noise(1.0, seed=k)) for k in range(6)]
    manifest = manifest_of([("a", "voice", p) for p in clips])
    cfg = run_config(tmp_path)
    made = []
    speech = run.speech

    def crash_on_the_fifth(*args):
        if len(made) == 4:
            raise KeyboardInterrupt
        made.append(1)
        return speech(*args)

    monkeypatch.setattr(run, "speech", crash_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        preprocess(manifest, cfg, progress=False)
    assert len(list(cfg.cache_dir.rglob("*.zip"))) == 2 and not list(cfg.cache_dir.rglob("*.tmp"))
    monkeypatch.undo()
    again = preprocess(manifest, cfg, progress=False)
    assert sorted(again.report.outcome) == ["cached"] * 4 + ["processed"] * 2


def test_cache_size_estimate_matches_the_entries(tmp_path):
    clips = real_clips()[:6]
    manifest = manifest_of([("a", "face", p) for p in real_faces()[:12]] + [("a", "voice", p) for p in clips])
    for changes in ({"face.size": 128}, {"face.size": 256, "face.storage": "jpeg", "voice.storage": "audio"}):
        cfg = run_config(tmp_path, **changes)
        result = preprocess(manifest, cfg, progress=False)
        made = result.manifest.groupby("modality").cache_path.apply(
            lambda paths: np.mean([len(cache.read_entry(p)[0]) for p in paths]))
        seconds = np.mean([sf.info(p).duration for p in clips])
        estimate = cache.bytes_per_sample(cfg.face, cfg.voice, seconds)
        assert 0.7 < estimate["face"] / made["face"] < 1.3 and 0.8 < estimate["voice"] / made["voice"] < 1.25
