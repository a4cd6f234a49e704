"""Input-level features: what the raw audio and the aligned face crop offer a linear reader.

The attribute probes (:mod:`.probes`) read them beside the learned embeddings, to tell a limit of the data from a
limit of the learning; :func:`pitch_track` is also the tests' measure of a rendered voice's pitch.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio
from PIL import Image

from vfcross.config import VoiceConfig
from vfcross.preprocess.faces import load_face
from vfcross.preprocess.voices import read_audio, vad


def pitch_track(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fundamental frequency (Hz) of the voiced frames by autocorrelation (60-400 Hz): a 40 ms frame every 10 ms is
    voiced when its autocorrelation peak in the pitch range exceeds 0.5 of its energy."""
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    if len(audio) < frame:
        return np.empty(0)
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    lo, hi = int(sample_rate / 400), int(sample_rate / 60)
    lag = lo + np.argmax(acf[:, lo:hi], axis=1)
    strength = acf[np.arange(len(acf)), lag] / (acf[:, 0] + 1e-12)
    return sample_rate / lag[strength > 0.5]


def voice_input_features(paths: list[str] | np.ndarray, cfg: VoiceConfig) -> np.ndarray:
    """(n, 48) acoustic statistics of audio files after the training VAD: median, quartiles and spread of log F0,
    voiced fraction, durations kept and in all, energy peaks per second, mean and SD of 20 MFCCs."""
    mfcc = torchaudio.transforms.MFCC(sample_rate=cfg.sample_rate, n_mfcc=20,
                                      melkwargs={"n_fft": 512, "hop_length": 160, "n_mels": 40})
    rows = []
    for path in paths:
        audio = read_audio(path, cfg.sample_rate)
        kept, _ = vad(audio, cfg.sample_rate, cfg)
        f0 = pitch_track(kept, cfg.sample_rate)
        log_f0 = np.log(f0) if len(f0) else np.full(1, np.log(150.0))
        q1, med, q3 = np.percentile(log_f0, [25, 50, 75])
        coeffs = mfcc(torch.from_numpy(np.ascontiguousarray(kept, dtype=np.float32))).numpy()
        envelope = np.convolve(np.abs(kept), np.ones(400) / 400, mode="same")[::160]
        peaks = np.sum((envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] > envelope[2:])
                       & (envelope[1:-1] > envelope.mean()))
        seconds = len(kept) / cfg.sample_rate
        rows.append(np.r_[med, q1, q3, log_f0.std(), len(f0) / max(1, len(kept) // 160), seconds,
                          peaks / max(seconds, 1e-3), len(audio) / cfg.sample_rate,
                          coeffs.mean(axis=1), coeffs.std(axis=1)])
    return np.asarray(rows, dtype=np.float64)


def face_input_features(cache_paths: list[str] | np.ndarray, side: int = 16) -> np.ndarray:
    """Downsampled aligned face crops (``side`` x ``side`` RGB, flattened): the pixels a linear reader sees."""
    return np.asarray([np.asarray(Image.fromarray(load_face(path)).resize((side, side), Image.Resampling.BOX),
                                  dtype=np.float64).ravel() / 255.0 for path in cache_paths])
