"""Preprocessing: face alignment, energy VAD, spectrograms, the cache and bad inputs.

Real faces and speech come from ``../shared/data/voxceleb1-mini`` (tests that
need them skip where it is absent); everything else is written into tmp_path.
"""

from __future__ import annotations

import json
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
    open_rgb,
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


def test_second_run_is_all_cached_and_settings_change_the_folder(tmp_path, monkeypatch):
    manifest = mixed_manifest(tmp_path)
    cfg = run_config(tmp_path)
    first = preprocess(manifest, cfg, progress=False)
    arrays = [np.load(p) for p in first.manifest.cache_path]
    written = {p: p.stat().st_mtime_ns for p in cfg.cache_dir.rglob("*")}

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached work was redone")

    monkeypatch.setattr(run, "FaceDetector", must_not_run)
    monkeypatch.setattr(run, "process_voice", must_not_run)
    second = preprocess(manifest, cfg, progress=False)

    was = first.report.outcome.replace("processed", "cached")
    pd.testing.assert_series_equal(second.report.outcome, was)
    pd.testing.assert_series_equal(second.report.reason, first.report.reason)
    pd.testing.assert_frame_equal(second.manifest, first.manifest)
    for before, path in zip(arrays, second.manifest.cache_path):
        np.testing.assert_array_equal(np.load(path), before)
    assert {p: p.stat().st_mtime_ns for p in cfg.cache_dir.rglob("*")} == written
    assert not list(cfg.cache_dir.rglob("*.tmp"))

    monkeypatch.undo()
    fresh = preprocess(manifest, run_config(tmp_path / "again"), progress=False)
    for before, path in zip(arrays, fresh.manifest.cache_path):  # the pipeline is deterministic
        np.testing.assert_array_equal(np.load(path), before)

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
    [sidecar] = list(cfg.cache_dir.rglob("*.skip.json"))
    assert json.loads(sidecar.read_text()) == {"reason": "no speech after VAD"}
    again = preprocess(manifest, cfg, progress=False).report.iloc[0]
    assert (again.outcome, again.reason) == ("skipped", "no speech after VAD")


def test_interrupted_write_leaves_no_partial_files(tmp_path, monkeypatch):
    def broken_save(stream, *args, **kwargs):
        stream.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.store(tmp_path, "key", np.zeros(3), "")
    assert list(tmp_path.iterdir()) == []


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
    # Two frames also hold a small false detection at their edge: flagged, the (right) largest face kept.
    assert counts == {("face", "processed", ""): 70, ("face", "processed", MULTI_FACE_REASON): 2,
                      ("voice", "processed", ""): 48}
    flagged = result.report[result.report.reason == MULTI_FACE_REASON].relpath
    assert sorted(flagged) == ["0001725.jpg", "0004525.jpg"]
    assert not result.manifest.fallback.any()
    # The worker pool makes exactly what one process makes.
    alone = preprocess(manifest_of(rows), run_config(tmp_path / "alone"), progress=False)
    for pooled, single in zip(result.manifest.cache_path, alone.manifest.cache_path):
        np.testing.assert_array_equal(np.load(pooled), np.load(single))
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
