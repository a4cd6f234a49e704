"""Voices of the synthetic population: real speech from espeak-ng, driven by the voice attributes.

Nationality sets the accent (the espeak-ng voice the text is read through), gender and the 'length' trait the variant,
build, liveliness and age the pitch, range, rate, pauses and tremor; the seed adds idiosyncrasy. A :class:`VoiceSession`
is one recording's channel, background noise and gain. The model is in docs/data.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft, signal

from vfcross.data.synthetic.espeak import SAMPLE_RATE
from vfcross.data.synthetic.espeak import synthesize as _synthesize  # a module attribute tests can spy on
from vfcross.data.synthetic.population import NATIONALITIES, TRAITS, Identity
from vfcross.data.synthetic.text import LANGUAGES, respell_devanagari

#: Variants per gender, from the highest formants (shortest vocal tract) to the lowest; 'length' walks along.
VARIANTS: dict[str, tuple[str, ...]] = {
    "m": ("m4", "m2", "m6", "m7", "m1", "m8", "michel", "m3", "Denis", "antonio", "m5", "victor"),
    "f": ("Alicia", "linda", "f3", "belinda", "Annie", "f4", "steph", "Andrea", "f1", "f5", "f2", "anika"),
}
#: Base pitch (espeak's 0-100 scale, 50 = the variant's own) per gender.
_BASE_PITCH = {"m": 47.0, "f": 50.0}
#: Per age group: pitch, rate (words/min) and pitch-range offsets, word gap (10 ms units), tremor.
_AGE_EFFECT = {"young": (6.0, 15.0, 5.0, 0, False), "middle": (0.0, 0.0, 0.0, 0, False),
               "old": (-6.0, -30.0, -10.0, 2, True)}
#: Voices of a non-Latin script: espeak-ng reads Latin text in them with English rules, so sentences are respelled.
_RESPELL = {"hi"}


@dataclass(frozen=True)
class VoiceStyle:
    """How one identity speaks in all its clips: espeak-ng accent voice and variant, its 0-100 pitch and range,
    words per minute, word gap (10 ms units), tremor frequency and relative depth (0: none)."""

    language: str
    variant: str
    pitch: float
    pitch_range: float
    rate: float
    word_gap: int
    tremor_hz: float
    tremor_depth: float


@dataclass(frozen=True)
class VoiceSession:
    """One recording ("video"): channel cuts and a peaking band, noise ~ 1/f^beta with a share of mains hum
    (``hum_hz`` 0: none), and the clip's peak amplitude."""

    highpass_hz: float
    lowpass_hz: float
    peak_hz: float
    peak_db: float
    noise_beta: float
    hum_hz: float
    hum_share: float
    gain: float


def voice_style(identity: Identity) -> VoiceStyle:
    """The identity's voice, from its voice attributes and (for idiosyncrasy) its seed."""
    attrs = identity.voice
    traits = dict(zip(TRAITS, attrs.traits, strict=True))
    rng = np.random.default_rng([identity.seed, 0x5E1CE])
    pitch_shift, rate_shift, range_shift, word_gap, trembles = _AGE_EFFECT[attrs.age_group]
    variants = VARIANTS[attrs.gender]
    position = _normal_cdf(traits["length"]) + 0.08 * rng.standard_normal()
    variant = variants[int(np.clip(position, 0.0, 1.0 - 1e-9) * len(variants))]
    pitch = _BASE_PITCH[attrs.gender] + pitch_shift - 5.0 * traits["build"] + 3.0 * rng.standard_normal()
    pitch_range = 50.0 + range_shift + 12.0 * traits["liveliness"] + 5.0 * rng.standard_normal()
    rate = 170.0 + rate_shift + 18.0 * traits["liveliness"] + 8.0 * rng.standard_normal()
    tremor_hz, tremor_depth = float(rng.uniform(4.0, 7.0)), float(rng.uniform(0.012, 0.025))
    return VoiceStyle(
        language=NATIONALITIES[attrs.nationality], variant=variant, pitch=float(np.clip(pitch, 15.0, 85.0)),
        pitch_range=float(np.clip(pitch_range, 15.0, 90.0)), rate=float(np.clip(rate, 110.0, 250.0)), word_gap=word_gap,
        tremor_hz=tremor_hz if trembles else 0.0, tremor_depth=tremor_depth if trembles else 0.0,
    )


def voice_session(rng: np.random.Generator) -> VoiceSession:
    """Draw the recording conditions of one video."""
    return VoiceSession(
        highpass_hz=float(rng.uniform(60.0, 250.0)), lowpass_hz=float(rng.uniform(3800.0, 9500.0)),
        peak_hz=float(np.exp(rng.uniform(np.log(300.0), np.log(3500.0)))), peak_db=float(rng.uniform(-6.0, 6.0)),
        noise_beta=float(rng.uniform(0.0, 2.0)), hum_hz=float(rng.choice([0.0, 0.0, 50.0, 60.0])),
        hum_share=float(rng.uniform(0.2, 0.6)), gain=float(rng.uniform(0.3, 0.9)),
    )


def render_clip(style: VoiceStyle, session: VoiceSession, sentence: str, rng: np.random.Generator,
                snr_db: tuple[float, float], language: str = "English") -> tuple[np.ndarray, int]:
    """Speak ``sentence`` (in ``language``) in ``style`` under ``session``: (float32 waveform in [-1, 1], rate).
    Per-clip jitter, the channel, 0.3-1.0 s pauses at both ends and noise at an SNR drawn from ``snr_db``; deterministic
    given the arguments and ``rng``'s state."""
    params = {
        "pitch": round(float(np.clip(style.pitch + 2.0 * rng.standard_normal(), 0, 100))),
        "range": round(float(np.clip(style.pitch_range + 4.0 * rng.standard_normal(), 0, 100))),
        "rate": round(float(np.clip(style.rate * (1.0 + 0.04 * rng.standard_normal()), 80, 450))),
        "wordgap": style.word_gap,
    }
    if language not in LANGUAGES:
        raise ValueError(f"no sentences in {language!r}; the synthetic voices speak {', '.join(LANGUAGES)}")
    text = respell_devanagari(sentence, language) if style.language in _RESPELL else sentence
    speech = _trim(_synthesize(text, f"{style.language}+{style.variant}", params, int(rng.integers(2**31))))
    if speech.size == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {sentence!r} with {style}")
    if style.tremor_depth > 0:
        speech = _tremor(speech, style.tremor_hz, style.tremor_depth, float(rng.uniform(0, 2 * math.pi)))
    speech = signal.sosfilt(_channel(session), speech)
    lead, trail = (int(rng.uniform(0.3, 1.0) * SAMPLE_RATE) for _ in range(2))
    clip = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    noise = _background(clip.size, session, rng)
    snr = rng.uniform(*snr_db)
    clip += noise * math.sqrt(np.mean(speech**2) / 10 ** (snr / 10))
    return (clip * (session.gain / np.max(np.abs(clip)))).astype(np.float32), SAMPLE_RATE


def _normal_cdf(z: float) -> float:
    """Standard normal CDF: maps a N(0, 1) trait to a position in [0, 1]."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _trim(samples: np.ndarray) -> np.ndarray:
    """Cut espeak's own silence at both ends, so the clip's pauses are ours alone."""
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.max(np.abs(samples), initial=0.0))
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples[:0]


def _tremor(speech: np.ndarray, hz: float, depth: float, phase: float) -> np.ndarray:
    """Frequency-modulate the waveform at ``hz`` by +-``depth`` (an old voice): read it at warped times."""
    omega = 2 * math.pi * hz / SAMPLE_RATE
    n = np.arange(int(speech.size * (1 + depth)) + 1)
    warped = n + depth / omega * (np.cos(phase) - np.cos(omega * n + phase))
    warped = warped[warped <= speech.size - 1]
    return np.interp(warped, np.arange(speech.size), speech)


def _channel(session: VoiceSession) -> np.ndarray:
    """Second-order sections of the session's channel: high-pass, low-pass and a peaking band."""
    highpass = signal.butter(2, session.highpass_hz, "highpass", fs=SAMPLE_RATE, output="sos")
    lowpass = signal.butter(4, session.lowpass_hz, "lowpass", fs=SAMPLE_RATE, output="sos")
    return np.vstack([highpass, lowpass, _peaking(session.peak_hz, session.peak_db, q=1.0)])


def _peaking(hz: float, gain_db: float, q: float) -> np.ndarray:
    """One peaking-EQ biquad (RBJ audio-EQ cookbook) as a second-order section."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * hz / SAMPLE_RATE
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def _background(length: int, session: VoiceSession, rng: np.random.Generator) -> np.ndarray:
    """Unit-power background noise: 1/f^beta noise, plus mains hum if the session has it."""
    size = fft.next_fast_len(length, real=True)  # an FFT of a prime length is slow
    spectrum = fft.rfft(rng.standard_normal(size))
    freqs = np.maximum(fft.rfftfreq(size, 1 / SAMPLE_RATE), 20.0)
    noise = fft.irfft(spectrum * freqs ** (-session.noise_beta / 2), n=size)[:length]
    noise /= np.sqrt(np.mean(noise**2))
    if session.hum_hz:
        t = np.arange(length) / SAMPLE_RATE
        hum = sum(np.sin(2 * math.pi * k * session.hum_hz * t + rng.uniform(0, 2 * math.pi)) / k for k in range(1, 6))
        hum /= np.sqrt(np.mean(hum**2))
        noise = math.sqrt(1 - session.hum_share) * noise + math.sqrt(session.hum_share) * hum
    return noise / np.sqrt(np.mean(noise**2))


