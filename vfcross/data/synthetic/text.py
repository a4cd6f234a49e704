"""What the synthetic voices say: parallel sentence banks per language, and the respelling for the Hindi voice.

espeak-ng reads Latin script in the Hindi voice with English rules, erasing the accent, so for that voice a sentence is
respelled in Devanagari from its pronunciation by its own language's voice (docs/data.md)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from vfcross.data.synthetic.espeak import phonemes


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
    """``count`` different sentences of one language's subjects, actions and endings (subject x action pairs). Built
    arithmetically, not drawn, so the bank cannot change with a random stream; banks are parallel."""
    subjects, actions, endings = parts
    pairs = list(itertools.product(range(len(subjects)), range(len(actions))))
    if count > len(pairs):
        raise ValueError(f"at most {len(pairs)} sentences can be built")
    return tuple(f"{subjects[s]} {actions[a]} {endings[(7 * s + 5 * a) % len(endings)]}" for s, a in pairs[:count])


#: The sentences clips are drawn from (deterministic; 8-15 words, ~2-5 s of speech).
SENTENCES: tuple[str, ...] = _sentences()


@dataclass(frozen=True)
class Language:
    """A language the synthetic identities speak: its sentence bank (parallel to :data:`SENTENCES`), the
    espeak-ng voice that pronounces it natively, and its entries of the IPA -> Devanagari map."""

    sentences: tuple[str, ...]
    voice: str
    phonemes: dict[str, tuple[str, ...]]


#: Languages the synthetic voices speak, named as a manifest's ``language`` column (MAV-Celeb's folder names).
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


#: Devanagari vowel letters -> their dependent signs (after a consonant).
_VOWEL_SIGNS = {"अ": "", "आ": "ा", "इ": "ि", "ई": "ी", "उ": "ु", "ऊ": "ू",
                "ए": "े", "ऐ": "ै", "ओ": "ो", "ऑ": "ॉ"}
_ANUSVARA, _VIRAMA, _NG = "ं", "्", "ग"
#: English IPA (espeak-ng en-us) -> Devanagari units, as Hindi speakers spell English words.
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
def respell_devanagari(sentence: str, language: str = "English") -> str:
    """``sentence`` (in ``language``) respelled in Devanagari from its pronunciation by that language's voice."""
    voice = LANGUAGES[language].voice
    table = _ipa_table(language)
    return ", ".join(" ".join(_devanagari_word(word, table) for word in clause.split())
                     for clause in phonemes(sentence, voice)) + "."


def _devanagari_word(word: str, table: dict[str, tuple[str, ...]] = _IPA_TO_DEVANAGARI) -> str:
    """One word's "_"-separated IPA as Devanagari: a virama between consonants, a vowel after a consonant as its
    sign, ŋ after a vowel an anusvara (plus ग unless a consonant follows, as in "रिंग")."""
    units = [unit for phoneme in _wordphonemes(word) for unit in _ipa_units(phoneme, table)[0]]
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


def _wordphonemes(word: str) -> list[str]:
    """The phonemes of one word of espeak-ng's "_"-separated IPA, stress marks removed."""
    return word.replace("ˈ", "").replace("ˌ", "").split("_")


def _ipa_units(phoneme: str, table: dict[str, tuple[str, ...]] = _IPA_TO_DEVANAGARI) -> tuple[list[str], str]:
    """One IPA phoneme string as Devanagari units by longest match in ``table``, and the characters left out."""
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

