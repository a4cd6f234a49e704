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

The ctypes binding
------------------
espeak-ng ships as a shared library (with its data) in the ``espeakng-loader``
wheel; there is no command-line program. We call its C API directly:
``espeak_Initialize`` in synchronous mode with the wheel's data path,
``espeak_SetSynthCallback`` to collect the 16-bit samples it produces,
``espeak_SetVoiceByName`` (``"<language>+<variant>"``), ``espeak_SetParameter``
for rate, pitch, range and word gap, and ``espeak_Synth``.

espeak-ng keeps global state between calls that changes its output: a
function-static pitch-flutter phase, a cycle counter for voice roughness and
libc's ``rand()`` for breathiness. The same request therefore gives slightly
different audio depending on what the process synthesized before, which would
make a clip depend on which worker rendered it. To make every clip a pure
function of its inputs, each synthesis loads the library afresh, initialises
it, synthesizes, terminates and unloads it (``dlclose``; this costs about a
millisecond), and seeds both libc's ``rand()`` and espeak-ng's own generator
(``espeak_ng_SetRandSeed``, which must follow ``espeak_Initialize``: at
initialisation espeak-ng seeds it from the clock, so breathy variants such as
``f3`` otherwise sound slightly different in every process) from the clip's
generator. The
library is global to the process, so a lock serialises this; a fork waits for
a synthesis in progress to finish, so a child never inherits a half-used
library. Nothing else in the process may hold libespeak-ng open, or the
unload - and with it the reset - would not happen.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import espeakng_loader
import numpy as np
from scipy import fft, signal

from vfcross.data.synthetic.population import NATIONALITIES, TRAITS, Identity

#: espeak-ng's native output rate, the rate of every rendered clip.
SAMPLE_RATE = 22050

# --- espeak-ng C API constants (speak_lib.h) ---------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAMETERS = {"rate": 1, "pitch": 3, "range": 4, "wordgap": 7}
#: espeak_TextToPhonemes mode: IPA, with "_" between the phonemes of a word.
_IPA_SEPARATED = 0x02 | (ord("_") << 8)

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
    text = _respell_devanagari(sentence, language) if style.language in _RESPELL else sentence
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


# --- sentences -----------------------------------------------------------------
_SUBJECTS = (
    "My neighbour", "The old teacher", "A young doctor", "Our driver", "The farmer",
    "His sister", "The baker", "My best friend", "The little boy", "Her uncle",
    "The new manager", "A tired student", "The quiet girl", "Your cousin", "The local mayor",
    "An elderly woman", "The football coach", "My grandmother", "The bus driver", "A friendly nurse",
)
_ACTIONS = (
    "bought fresh bread", "painted the kitchen wall", "found a lost wallet", "fixed the broken radio",
    "planted tomatoes", "read an old newspaper", "called the bank", "cleaned all the windows",
    "cooked a large dinner", "visited the museum", "wrote a long letter", "sold the blue car",
    "watched the football match", "carried two heavy boxes", "lost the house keys", "fed the hungry dogs",
    "repaired the garden fence", "ordered a cup of coffee", "forgot the umbrella", "met an old classmate",
)
_ENDINGS = (
    "at the market this morning.", "before the rain started.", "in the garden yesterday afternoon.",
    "after work on Friday.", "near the railway station.", "with a little help from a friend.",
    "during the long summer holiday.", "on the way back from school.", "while everybody else was asleep.",
    "for the first time in many years.", "without telling anyone about it.", "just before the shops closed.",
)


_GERMAN_SUBJECTS = (
    "Mein Nachbar", "Der alte Lehrer", "Eine junge Ärztin", "Unser Fahrer", "Der Bauer",
    "Seine Schwester", "Der Bäcker", "Mein bester Freund", "Der kleine Junge", "Ihr Onkel",
    "Der neue Manager", "Ein müder Student", "Das stille Mädchen", "Dein Cousin", "Der Bürgermeister",
    "Eine ältere Frau", "Der Fußballtrainer", "Meine Großmutter", "Der Busfahrer", "Eine freundliche Krankenschwester",
)
_GERMAN_ACTIONS = (
    "kaufte frisches Brot", "strich die Küchenwand", "fand eine verlorene Geldbörse", "reparierte das kaputte Radio",
    "pflanzte Tomaten", "las eine alte Zeitung", "telefonierte mit der Bank", "putzte alle Fenster",
    "kochte ein großes Abendessen", "besuchte das Museum", "schrieb einen langen Brief", "verkaufte das blaue Auto",
    "sah das Fußballspiel", "trug zwei schwere Kisten", "verlor die Hausschlüssel", "fütterte die hungrigen Hunde",
    "reparierte den Gartenzaun", "bestellte eine Tasse Kaffee", "vergaß den Regenschirm", "traf einen alten Schulfreund",
)
_GERMAN_ENDINGS = (
    "heute Morgen auf dem Markt.", "bevor der Regen anfing.", "gestern Nachmittag im Garten.",
    "am Freitag nach der Arbeit.", "in der Nähe des Bahnhofs.", "mit etwas Hilfe von einem Freund.",
    "während der langen Sommerferien.", "auf dem Heimweg von der Schule.", "während alle anderen schliefen.",
    "zum ersten Mal seit vielen Jahren.", "ohne jemandem davon zu erzählen.", "kurz bevor die Läden schlossen.",
)


def _sentences(count: int = 400, parts: tuple[tuple[str, ...], ...] = (_SUBJECTS, _ACTIONS, _ENDINGS)
               ) -> tuple[str, ...]:
    """``count`` different sentences: subject x action pairs (all distinct), each with an ending.

    Built arithmetically rather than drawn at random, so the list cannot
    change with a library's random-number stream. ``parts`` are the
    subjects, actions and endings of one language; the banks of all
    languages are parallel (sentence i says the same in each).
    """
    subjects, actions, endings = parts
    pairs = list(itertools.product(range(len(subjects)), range(len(actions))))
    if count > len(pairs):
        raise ValueError(f"at most {len(pairs)} sentences can be built")
    return tuple(
        f"{subjects[s]} {actions[a]} {endings[(7 * s + 5 * a) % len(endings)]}"
        for s, a in pairs[:count]
    )


#: The sentences clips are drawn from (deterministic; 8-15 words, ~2-5 s of speech).
SENTENCES: tuple[str, ...] = _sentences()


@dataclass(frozen=True)
class Language:
    """A language the synthetic identities can speak.

    ``sentences`` is its bank (parallel to :data:`SENTENCES`); ``voice`` the
    espeak-ng voice that pronounces it natively, whose phonemes are respelled
    for accent voices written in another script; ``phonemes`` the entries of
    the IPA -> Devanagari map that differ from the English ones for this
    language's phonemes (German r is a tap or trill, not an English flap; its
    short a is Hindi अ; ü, ö and ch have no English counterpart).
    """

    sentences: tuple[str, ...]
    voice: str
    phonemes: dict[str, tuple[str, ...]]


#: Languages the synthetic voices speak, under the names a manifest's ``language`` column uses (MAV-Celeb's
#: folder names); the same names as :data:`vfcross.config.SpokenLanguage`.
LANGUAGES: dict[str, Language] = {
    "English": Language(SENTENCES, "en-us", {}),
    "German": Language(
        _sentences(parts=(_GERMAN_SUBJECTS, _GERMAN_ACTIONS, _GERMAN_ENDINGS)), "de",
        {ipa: tuple(units.split()) for ipa, units in {
            "ɾ": "र", "r": "र", "a": "अ", "ɜ": "अ", "ʔ": "", "ts": "ट स", "pf": "प फ़", "ç": "श", "x": "ख़",
            "eː": "ए", "ɛː": "ए", "ɔø": "ऑ इ", "ʏ": "उ", "yː": "ऊ", "y": "ऊ", "œ": "ओ", "øː": "ओ", "ø": "ओ",
        }.items()}),
}


def pick_sentences(rng: np.random.Generator, n: int, language: str = "English") -> list[str]:
    """``n`` sentences of ``language`` for one identity's clips, all different while ``n`` allows."""
    bank = LANGUAGES[language].sentences
    index = rng.choice(len(bank), size=n, replace=n > len(bank))
    return [bank[i] for i in index]


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


# --- respelling for the Hindi voice -----------------------------------------------------
#: Devanagari vowel letters -> their dependent signs (after a consonant).
_VOWEL_SIGNS = {"अ": "", "आ": "ा", "इ": "ि", "ई": "ी", "उ": "ु", "ऊ": "ू",
                "ए": "े", "ऐ": "ै", "ओ": "ो", "ऑ": "ॉ"}
_ANUSVARA, _VIRAMA, _NG = "ं", "्", "ग"
#: English IPA (espeak-ng en-us) -> Devanagari units, the way Hindi speakers
#: spell English words: t/d become retroflex, w and v both व, æ ऐ, ŋ "ंग".
_IPA_TO_DEVANAGARI: dict[str, tuple[str, ...]] = {ipa: tuple(units.split()) for ipa, units in {
    "ə": "अ", "ʌ": "अ", "ɐ": "अ", "ɚ": "अ र", "ɜː": "अ र", "ɝ": "अ र",
    "æ": "ऐ", "a": "ऐ", "ɑː": "आ", "ɑ": "आ", "ɔː": "ऑ", "ɔ": "ऑ", "ɒ": "ऑ",
    "ɛ": "ए", "e": "ए", "eɪ": "ए", "ɪ": "इ", "ᵻ": "इ", "iː": "ई", "i": "ई",
    "ʊ": "उ", "uː": "ऊ", "u": "ऊ", "oʊ": "ओ", "əʊ": "ओ", "o": "ओ", "oː": "ओ",
    "aɪ": "आ इ", "aʊ": "आ उ", "ɔɪ": "ऑ इ", "ɪə": "इ अ", "ɛə": "ए अ", "ʊə": "उ अ",
    "p": "प", "b": "ब", "t": "ट", "d": "ड", "k": "क", "ɡ": "ग", "g": "ग",
    "f": "फ़", "v": "व", "θ": "थ", "ð": "द", "s": "स", "z": "ज़", "ʃ": "श", "ʒ": "ज़",
    "h": "ह", "tʃ": "च", "dʒ": "ज", "m": "म", "n": "न", "ŋ": _ANUSVARA, "l": "ल",
    "ɹ": "र", "r": "र", "w": "व", "j": "य", "ɾ": "ट", "ʔ": "ट", "x": "ख़",
}.items()}


def _ipa_table(language: str) -> dict[str, tuple[str, ...]]:
    """The IPA -> Devanagari map for the pronunciation of ``language``: the English one with its entries."""
    return {**_IPA_TO_DEVANAGARI, **LANGUAGES[language].phonemes}


@functools.lru_cache(maxsize=4096)
def _respell_devanagari(sentence: str, language: str = "English") -> str:
    """``sentence`` (in ``language``) respelled in Devanagari from its pronunciation by that language's voice.

    English is pronounced by en-us, German by de (:data:`LANGUAGES`).
    """
    voice = LANGUAGES[language].voice
    table = _ipa_table(language)
    return ", ".join(" ".join(_devanagari_word(word, table) for word in clause.split())
                     for clause in _phonemes(sentence, voice)) + "."


def _phonemes(sentence: str, voice: str) -> list[str]:
    """espeak-ng's IPA for ``sentence`` read by ``voice``: one string per clause, words separated by blanks."""
    with _LOCK, _espeak() as lib:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no {voice} voice")
        buffer = ctypes.create_string_buffer(sentence.encode())
        pointer = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        while pointer.value:
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _IPA_SEPARATED).decode())
    return clauses


def _devanagari_word(word: str, table: dict[str, tuple[str, ...]] = _IPA_TO_DEVANAGARI) -> str:
    """One word's IPA phonemes ("_"-separated) as a Devanagari word, with the IPA map ``table``.

    A consonant followed by a consonant takes a virama, a vowel after a
    consonant becomes its dependent sign, and ŋ after a vowel an anusvara
    (plus ग unless a consonant follows, as in "रिंग").
    """
    units = [unit for phoneme in _word_phonemes(word) for unit in _ipa_units(phoneme, table)[0]]
    out, previous = [], None  # previous: "C" consonant, "V" vowel, "N" anusvara
    for i, unit in enumerate(units):
        if unit in _VOWEL_SIGNS:
            out.append(_VOWEL_SIGNS[unit] if previous == "C" else unit)
            previous = "V"
        elif unit == _ANUSVARA and previous == "V":
            out.append(_ANUSVARA)
            previous = "N"
            if i + 1 == len(units) or units[i + 1] in _VOWEL_SIGNS:
                out.append(_NG)
                previous = "C"
        else:
            letter = "ङ" if unit == _ANUSVARA else unit
            out.append(_VIRAMA + letter if previous == "C" else letter)
            previous = "C"
    return "".join(out)


def _word_phonemes(word: str) -> list[str]:
    """The phonemes of one word of espeak-ng's "_"-separated IPA, stress marks removed."""
    return word.replace("ˈ", "").replace("ˌ", "").split("_")


def _ipa_units(phoneme: str, table: dict[str, tuple[str, ...]] = _IPA_TO_DEVANAGARI) -> tuple[list[str], str]:
    """Split one IPA phoneme string into Devanagari units by longest match in ``table``.

    Returns the units and the characters no entry matched (left out of the
    spelling; :func:`_unmapped` lists them, and a test keeps them to marks
    such as the length sign after a matched vowel).
    """
    longest = max(map(len, table))
    units, dropped, i = [], "", 0
    while i < len(phoneme):
        for size in range(min(longest, len(phoneme) - i), 0, -1):
            if phoneme[i:i + size] in table:
                units.extend(table[phoneme[i:i + size]])
                i += size
                break
        else:
            dropped += phoneme[i]
            i += 1
    return units, dropped


def _unmapped(sentences: list[str] | tuple[str, ...], language: str) -> set[str]:
    """Characters of the pronunciation of ``sentences`` (in ``language``) that the respelling leaves out."""
    table = _ipa_table(language)
    return {char for sentence in sentences for clause in _phonemes(sentence, LANGUAGES[language].voice)
            for word in clause.split() for phoneme in _word_phonemes(word) for char in _ipa_units(phoneme, table)[1]}


# --- the espeak-ng binding --------------------------------------------------------
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_chunks: list[np.ndarray] = []


@_SynthCallback
def _collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None) -> int:
    """espeak-ng's synthesis callback: keep a copy of each chunk of samples; 0 = go on."""
    if count > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    return 0


_LOCK = threading.Lock()
os.register_at_fork(before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_LOCK.release)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, whose ``srand`` seeds espeak-ng's breath noise."""
    return ctypes.CDLL(ctypes.util.find_library("c"))


@contextlib.contextmanager
def _espeak() -> Iterator[ctypes.CDLL]:
    """A freshly loaded and initialised libespeak-ng, unloaded on exit. Hold ``_LOCK``."""
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                     _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected the sample rate {SAMPLE_RATE}")
        lib.espeak_SetSynthCallback(_collect)
        yield lib
    finally:
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)


def _synthesize(text: str, voice: str, params: dict[str, int], seed: int) -> np.ndarray:
    """Raw espeak-ng speech for ``text`` in ``voice`` with ``params``, as floats in [-1, 1]."""
    with _LOCK, _espeak() as lib:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for name, value in params.items():
            lib.espeak_SetParameter(_PARAMETERS[name], value, 0)
        _libc().srand(seed)
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        _chunks.clear()
        data = text.encode() + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        samples = np.concatenate([np.zeros(0, np.int16), *_chunks])
        _chunks.clear()
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return samples.astype(np.float64) / 32768.0
