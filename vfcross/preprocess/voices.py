"""Voice preprocessing: read, 16 kHz mono, short-time-energy VAD, spectrogram (the paper's first step, VGGVox).

The cache keeps the float16 spectrogram or (``VoiceConfig.storage = "audio"``) the speech as 16-bit FLAC, the
spectrogram made when loaded; :func:`load_spectrogram` gives the same float32 array either way."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from vfcross.config import VoiceConfig, from_dict
from vfcross.preprocess.cache import folder_settings, read_entry

#: Added to each bin's standard deviation, so constant bins normalise to zeros instead of NaN.
NORM_EPS = 1e-5
#: What libsndfile logs (its only sign) when a WAV's data chunk is shorter than its header says; sizes that
#: streaming writers put in headers for "unknown length" are no sign.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
#: A mono mix keeping less than this fraction (-30 dB) of the channels' mean energy: channels that cancel.
CANCELLING_CHANNELS = 1e-3
CHANNELS_CANCEL_REASON = "channel problem: channels cancel when mixed to mono (opposite-phase stereo)"


class ChannelError(ValueError):
    """The channels of a clip cannot be mixed to mono (they cancel each other)."""


def truncation_note(max_seconds: float) -> str:
    """The report's note on a clip whose speech was cut to ``max_seconds``."""
    return f"speech cut to voice.max_seconds = {max_seconds:g} s"


def read_audio(source: bytes | str | Path, sample_rate: int) -> np.ndarray:
    """Samples of an audio file (bytes or path) as mono float32 at ``sample_rate``. Raises ``sf.LibsndfileError`` if
    unreadable, :class:`ChannelError` if the channels cancel in the mono mix, ``ValueError`` if truncated or holding
    non-finite samples."""
    match = _SHORT_DATA.search(sf.info(io.BytesIO(source) if isinstance(source, bytes) else source).extra_info)
    if match and int(match.group(1)) not in _UNKNOWN_SIZES and int(match.group(1)) > int(match.group(2)):
        raise ValueError("truncated file (data chunk shorter than its header says)")
    data, rate = sf.read(io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        raise ValueError("non-finite samples")
    mono = data.mean(axis=1)
    if data.shape[1] > 1:
        channel_energy = sum(float(np.dot(channel, channel)) for channel in data.T) / data.shape[1]
        if channel_energy > 0 and float(np.dot(mono, mono)) < CANCELLING_CHANNELS * channel_energy:
            raise ChannelError(CHANNELS_CANCEL_REASON)
    if rate == sample_rate or len(mono) == 0:
        return mono
    resampled = torchaudio.functional.resample(torch.from_numpy(mono), rate, sample_rate)
    return resampled.numpy()


def frame_energies(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Sum of squared samples of each frame ``[k*hop, k*hop + window)`` (a short signal is one frame)."""
    count = max(1, 1 + (len(signal) - window) // hop)
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(signal, dtype=np.float64))])
    starts = np.arange(count) * hop
    return cumulative[np.minimum(starts + window, len(signal))] - cumulative[starts]


def vad_mask(signal: np.ndarray, sr: int, cfg: VoiceConfig) -> tuple[np.ndarray, np.ndarray]:
    """Short-time-energy VAD: per-sample and per-frame keep masks (frame ``k`` starts at sample ``k * hop``). A frame is
    kept when its energy is at most ``vad_threshold_db`` below the loudest; each sample belongs to the frame whose
    centre is nearest (so overlapping frames repeat no audio) and is kept with it."""
    window = max(1, round(sr * cfg.vad_window_ms / 1000.0))
    hop = max(1, round(window * (1.0 - cfg.vad_overlap)))
    energies = frame_energies(signal, window, hop)
    loudest = energies.max(initial=0.0)
    if loudest <= 0.0:
        return np.zeros(len(signal), dtype=bool), np.zeros(len(energies), dtype=bool)
    keep = energies >= loudest * 10.0 ** (-cfg.vad_threshold_db / 10.0)
    owner = np.clip((np.arange(len(signal)) - (window - hop) // 2) // hop, 0, len(energies) - 1)
    return keep[owner], keep


def vad(signal: np.ndarray, sr: int, cfg: VoiceConfig) -> tuple[np.ndarray, np.ndarray]:
    """The samples :func:`vad_mask` keeps, in order, and its per-frame keep mask."""
    samples, keep = vad_mask(signal, sr, cfg)
    return signal[samples], keep


def spectrogram(signal: np.ndarray, cfg: VoiceConfig) -> np.ndarray:
    """Normalised magnitude spectrogram, float32 ``(cfg.frequency_rows, 1 + (samples - n_fft) // hop)``. Hamming
    windows, bins up to ``max_hz`` (or ``n_mels`` mel bands), optional ``log1p``, each row standardised over time as in
    VGGVox (or the whole, ``normalise="utterance"``). ``signal``: ``n_fft`` samples or more."""
    win = round(cfg.sample_rate * cfg.win_ms / 1000.0)
    hop = round(cfg.sample_rate * cfg.hop_ms / 1000.0)
    transform = torchaudio.transforms.Spectrogram(n_fft=cfg.n_fft, win_length=win, hop_length=hop,
                                                  window_fn=torch.hamming_window, power=1.0, center=False)
    magnitude = transform(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))).double()
    top_hz = cfg.max_hz or cfg.sample_rate / 2
    if cfg.n_mels:
        bank = torchaudio.functional.melscale_fbanks(cfg.n_fft // 2 + 1, 0.0, top_hz, cfg.n_mels, cfg.sample_rate,
                                                     norm="slaney", mel_scale="slaney").double()
        magnitude = bank.T @ magnitude
    else:
        magnitude = magnitude[: cfg.frequency_rows]
    if cfg.log_compress:
        magnitude = torch.log1p(magnitude)
    dims = (0, 1) if cfg.normalise == "utterance" else 1
    mean = magnitude.mean(dim=dims, keepdim=True)
    std = magnitude.std(dim=dims, keepdim=True, unbiased=False)
    return ((magnitude - mean) / (std + NORM_EPS)).float().numpy()


def speech(source: bytes | str | Path, cfg: VoiceConfig) -> tuple[np.ndarray | None, str]:
    """The speech of one audio file after VAD (float32) and a note, or ``(None, reason)`` if unusable. With
    ``cfg.storage = "audio"`` the samples are rounded to 16 bits, as the cache stores them."""
    try:
        audio = read_audio(source, cfg.sample_rate)
    except sf.LibsndfileError as err:  # its str() names the stream object; keep reasons stable
        return None, f"unreadable audio: {err.error_string.rstrip('.')}"
    except ChannelError as err:
        return None, str(err)
    except (RuntimeError, ValueError) as err:
        return None, f"unreadable audio: {err}"
    if len(audio) == 0:
        return None, "empty audio"
    kept, keep = vad(audio, cfg.sample_rate, cfg)
    if not keep.any():
        return None, "no speech after VAD"
    if len(kept) < max(cfg.min_seconds * cfg.sample_rate, cfg.n_fft):
        return None, "too short after VAD"
    note = ""
    if cfg.max_seconds and len(kept) > cfg.max_seconds * cfg.sample_rate:
        kept, note = kept[: int(cfg.max_seconds * cfg.sample_rate)], truncation_note(cfg.max_seconds)
    if cfg.storage == "audio":
        kept = _pcm16(kept).astype(np.float32) / 32768.0
    return kept, note


def process_voice(source: bytes | str | Path, cfg: VoiceConfig) -> tuple[np.ndarray | None, str]:
    """The float16 spectrogram of one audio file, as the cache gives it, or ``(None, reason)`` (see :func:`speech`)."""
    kept, reason = speech(source, cfg)
    return (None, reason) if kept is None else (spectrogram(kept, cfg).astype(np.float16), reason)


def encode_voice(kept: np.ndarray, cfg: VoiceConfig) -> tuple[bytes, str]:
    """The speech of :func:`speech` as the bytes and suffix of its cache entry (see ``cfg.storage``)."""
    buffer = io.BytesIO()
    if cfg.storage == "spectrogram":
        np.save(buffer, spectrogram(kept, cfg).astype(np.float16), allow_pickle=False)
        return buffer.getvalue(), ".npy"
    sf.write(buffer, _pcm16(kept), cfg.sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue(), ".flac"


def _pcm16(signal: np.ndarray) -> np.ndarray:
    """``signal`` (floats in [-1, 1]) rounded to 16-bit integers."""
    return np.clip(np.rint(signal * 32768.0), -32768, 32767).astype(np.int16)


def load_spectrogram(path: str | Path) -> np.ndarray:
    """A cached spectrogram (an entry of :mod:`vfcross.preprocess.cache`, or an ``.npy`` file) as float32 (F, T)."""
    data, suffix = read_entry(path)
    if suffix == ".npy":
        return np.load(io.BytesIO(data)).astype(np.float32)
    cfg = from_dict(VoiceConfig, folder_settings(path))
    samples, _ = sf.read(io.BytesIO(data), dtype="float32")
    return spectrogram(samples, cfg).astype(np.float16).astype(np.float32)
