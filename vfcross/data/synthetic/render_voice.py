"""Voices of the synthetic population: real speech from espeak-ng, driven by attributes.

The voice model
---------------
Every identity speaks ENGLISH sentences (or, in a bilingual population, the
sentences of each language of :data:`LANGUAGES`, see "Languages" below); what
it sounds like comes from its voice attributes
(:attr:`~vfcross.data.synthetic.population.Identity.voice`):

* **nationality -> accent.** The text goes through the espeak-ng voice of the
  nationality (``NATIONALITIES``), so German, Italian or Latin-American Spanish
  letter-to-sound rules and phonemes turn English words into accented speech.
  espeak-ng reads Latin-script words in a language written in another script
  (Hindi) with its *English* rules and voice, which would erase the accent;
  for such voices the sentence is first respelled in that script (English
  phonemes -> Devanagari letters, as Hindi speakers write English words), so
  that the Hindi rules and phonemes speak it.
* **gender -> variant and pitch.** Men use male espeak variants (m1..m8 and a
  few named male ones), women female ones; the base pitch differs by gender.
* **'length' trait -> variant.** Each gender's variants are ordered by their
  formant scaling (mean F1-F3 factor in ``espeak-ng-data/voices/!v``); a longer
  face picks a variant with lower formants, i.e. a longer vocal tract.
* **'build' trait -> pitch.** A heavier build lowers the base pitch.
* **'liveliness' trait -> pitch range and rate.** Livelier speakers vary their
  pitch more and speak faster.
* **age group -> pitch, rate, pauses and tremor.** Young voices are higher and
  faster; old ones lower, slower, with longer gaps between words and a slow
  pitch tremor (a 4-7 Hz frequency modulation applied to the waveform).
* **idiosyncrasy.** ``identity.seed`` perturbs the exact pitch, range, rate
  and variant choice, so identities with identical attributes still differ.

Languages
---------
A bilingual population (``SynthConfig.languages``) has every identity speak
each listed language with ONE voice: variant, pitch, rate, pitch range, word
gap and tremor come from :func:`voice_style` alone and do not depend on the
language. The accent follows the nationality in every language, by the same
rule as for English: the sentence, written in its language (:data:`LANGUAGES`
holds a bank of parallel sentences per language), is read through the
nationality's espeak-ng voice, so that voice's letter-to-sound rules and
phonemes shape it (a German identity reads German natively and English with
German rules; an American reads German with English rules; an Italian both
with Italian ones). For a voice written in another script (Hindi) the
sentence is respelled in that script from its pronunciation in its own
language (:data:`LANGUAGES` names the espeak-ng voice that pronounces it; the
phoneme map has per-language entries, e.g. German r, ü, ö, ch), just as
English is respelled from its en-us pronunciation.

A :class:`VoiceSession` stands for one recording ("video"): a channel
colouring (high-pass, low-pass and one peaking band), a background-noise
colour (1/f^beta spectrum, optionally mains hum) and an output gain. Each clip
then adds its own nuisance: a slightly jittered pitch, range and rate, leading
and trailing pauses holding only noise (so that an energy VAD has work to do),
and background noise at an SNR drawn from a range, measured against the speech
part of the clip.

"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft, signal

from vfcross.data.synthetic.espeak import SAMPLE_RATE
from vfcross.data.synthetic.espeak import synthesize as _synthesize  # a module name, so tests can spy on it
from vfcross.data.synthetic.population import NATIONALITIES, TRAITS, Identity
from vfcross.data.synthetic.text import LANGUAGES, respell_devanagari

# --- the voice model ------------------------------------------------------------
#: Variants per gender, ordered from the highest formants (shortest vocal
#: tract) to the lowest; the 'length' trait walks along this order.
VARIANTS: dict[str, tuple[str, ...]] = {
    "m": ("m4", "m2", "m6", "m7", "m1", "m8", "michel", "m3", "Denis", "antonio", "m5", "victor"),
    "f": ("Alicia", "linda", "f3", "belinda", "Annie", "f4", "steph", "Andrea", "f1", "f5", "f2", "anika"),
}
#: Base pitch (espeak's 0-100 scale, 50 = the variant's own) per gender.
_BASE_PITCH = {"m": 47.0, "f": 50.0}
#: Per age group: pitch offset, rate offset (words/min), pitch-range offset,
#: word gap (10 ms units) and whether the voice trembles.
_AGE_EFFECT = {
    "young": (6.0, 15.0, 5.0, 0, False),
    "middle": (0.0, 0.0, 0.0, 0, False),
    "old": (-6.0, -30.0, -10.0, 2, True),
}
#: Languages written in a script other than Latin: espeak-ng would read Latin
#: text with its English voice, so sentences are respelled in the native script.
_RESPELL = {"hi"}


@dataclass(frozen=True)
class VoiceStyle:
    """How one identity speaks, fixed across all its clips."""

    language: str  # espeak-ng voice giving the accent, e.g. "de"
    variant: str  # espeak-ng variant giving gender and timbre, e.g. "m3"
    pitch: float  # espeak pitch, 0-100 (50 = the variant's own base pitch)
    pitch_range: float  # espeak pitch range, 0-100 (50 = normal intonation)
    rate: float  # words per minute
    word_gap: int  # extra pause between words, in 10 ms units
    tremor_hz: float  # frequency of the pitch tremor (old voices)
    tremor_depth: float  # relative frequency deviation of the tremor; 0 = none


@dataclass(frozen=True)
class VoiceSession:
    """One recording ("video"): channel, background-noise character and gain."""

    highpass_hz: float  # microphone / channel low cut
    lowpass_hz: float  # channel bandwidth
    peak_hz: float  # centre of a resonance or dip of the channel
    peak_db: float  # its gain
    noise_beta: float  # background noise spectrum ~ 1/f^beta (0 white, 1 pink, 2 brown)
    hum_hz: float  # mains hum frequency, 0 = no hum
    hum_share: float  # fraction of the noise power that is hum
    gain: float  # peak amplitude of the finished clip


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
        language=NATIONALITIES[attrs.nationality],
        variant=variant,
        pitch=float(np.clip(pitch, 15.0, 85.0)),
        pitch_range=float(np.clip(pitch_range, 15.0, 90.0)),
        rate=float(np.clip(rate, 110.0, 250.0)),
        word_gap=word_gap,
        tremor_hz=tremor_hz if trembles else 0.0,
        tremor_depth=tremor_depth if trembles else 0.0,
    )


def voice_session(rng: np.random.Generator) -> VoiceSession:
    """Draw the recording conditions of one video."""
    return VoiceSession(
        highpass_hz=float(rng.uniform(60.0, 250.0)),
        lowpass_hz=float(rng.uniform(3800.0, 9500.0)),
        peak_hz=float(np.exp(rng.uniform(np.log(300.0), np.log(3500.0)))),
        peak_db=float(rng.uniform(-6.0, 6.0)),
        noise_beta=float(rng.uniform(0.0, 2.0)),
        hum_hz=float(rng.choice([0.0, 0.0, 50.0, 60.0])),
        hum_share=float(rng.uniform(0.2, 0.6)),
        gain=float(rng.uniform(0.3, 0.9)),
    )


def render_clip(style: VoiceStyle, session: VoiceSession, sentence: str, rng: np.random.Generator,
                snr_db: tuple[float, float], language: str = "English") -> tuple[np.ndarray, int]:
    """Speak ``sentence`` in ``style`` under ``session``; returns (float32 waveform in [-1, 1], rate).

    ``sentence`` is written in ``language`` (a key of :data:`LANGUAGES`); it
    is read through the style's accent voice (see "Languages" above).

    The clip is the speech (with per-clip pitch, range and rate jitter, the
    style's tremor and the session's channel), padded with 0.3-1.0 s of
    pause on each side, plus background noise over the whole clip at an SNR
    drawn uniformly from ``snr_db`` relative to the speech part, scaled to the
    session's peak gain. Deterministic given the arguments and ``rng``'s state.
    """
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


# --- signal processing ---------------------------------------------------------------
def _normal_cdf(z: float) -> float:
    """Standard normal CDF: maps a N(0, 1) trait to a position in [0, 1]."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _trim(samples: np.ndarray) -> np.ndarray:
    """Cut espeak's own silence at both ends, so the clip's pauses are ours alone."""
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.max(np.abs(samples), initial=0.0))
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples[:0]


def _tremor(speech: np.ndarray, hz: float, depth: float, phase: float) -> np.ndarray:
    """Frequency-modulate the whole waveform at ``hz`` by +-``depth`` (an aged, tremulous voice).

    Reads the signal at warped times t(n) whose rate 1 + depth*sin(...) swings
    around 1, which raises and lowers every frequency (pitch included) together.
    """
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
        hum = sum(np.sin(2 * math.pi * k * session.hum_hz * t + rng.uniform(0, 2 * math.pi)) / k
                  for k in range(1, 6))
        hum /= np.sqrt(np.mean(hum**2))
        noise = math.sqrt(1 - session.hum_share) * noise + math.sqrt(session.hum_share) * hum
    return noise / np.sqrt(np.mean(noise**2))


