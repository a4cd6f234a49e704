"""Bilingual synthetic identities: each speaks every language with one voice; every clip records its language."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from fakes import median_f0

from vfcross.config import ConfigError, SpokenLanguage, SynthConfig, choices
from vfcross.data import read_dataset
from vfcross.data.synthetic import render_voice
from vfcross.data.synthetic.espeak import phonemes
from vfcross.data.synthetic.population import Attributes, Identity, sample_population
from vfcross.data.synthetic.render_voice import render_clip, voice_session, voice_style
from vfcross.data.synthetic.text import LANGUAGES, SENTENCES, _ipa_table, _ipa_units, _wordphonemes, pick_sentences
from vfcross.data.synthetic.writer import read_population_config, write_population
from vfcross.data.voxceleb import LANGUAGES_FILE, read_languages

BILINGUAL = SynthConfig(identities=4, videos_per_identity=1, clips_per_video=2, faces_per_video=1, image_size=96,
                        split_fractions=(0.5, 0.25, 0.25), workers=1, languages=("English", "German"))
ENGLISH_ONLY = SynthConfig(**{**BILINGUAL.__dict__, "languages": ()})


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory):
    return write_population(tmp_path_factory.mktemp("bilingual") / "synth", BILINGUAL, progress=False)


def test_every_identity_speaks_every_language_in_videos_of_its_own(bilingual):
    manifest = read_dataset(bilingual)
    assert manifest["language"].notna().all()
    counts = manifest.groupby(["identity", "modality", "language"]).size().unstack(["modality", "language"])
    assert len(counts) == 4
    # per identity and language: one video of 1 face and 2 clips
    assert (counts[("voice", "English")] == 2).all() and (counts[("voice", "German")] == 2).all()
    assert (counts[("face", "English")] == 1).all() and (counts[("face", "German")] == 1).all()
    # a video holds one language, its faces and its clips alike; no video is shared by two languages
    per_video = manifest.groupby(["identity", "video"])["language"].nunique()
    assert (per_video == 1).all() and len(per_video) == 4 * 2


def test_each_clip_records_its_language_and_sentence(bilingual):
    record = json.loads((bilingual / "population.json").read_text())
    assert record["config"]["languages"] == ["English", "German"]
    clips = pd.DataFrame(record["clips"])
    assert len(clips) == 4 * 2 * 2 and clips["relpath"].is_unique
    for language, sentences in clips.groupby("language")["sentence"]:
        assert set(sentences) <= set(LANGUAGES[language].sentences)
    table = read_languages(bilingual / LANGUAGES_FILE)
    assert {path: table[path] for path in clips["relpath"]} == dict(zip(clips["relpath"], clips["language"]))
    manifest = read_dataset(bilingual)
    assert set(table) == set(manifest["relpath"])  # faces too: the language of their video
    assert read_population_config(bilingual) == SynthConfig(**{**BILINGUAL.__dict__, "workers": 2})


def test_an_english_only_population_writes_what_it_always_wrote(tmp_path):
    root = write_population(tmp_path / "english", ENGLISH_ONLY, progress=False)
    assert not (root / LANGUAGES_FILE).exists()
    record = json.loads((root / "population.json").read_text())
    assert set(record) == {"config", "identities"} and "languages" not in record["config"]
    manifest = read_dataset(root)
    assert manifest["language"].isna().all() and len(manifest) == 4 * (1 + 2)


def _identity(gender: str, nationality: str, seed: int = 7) -> Identity:
    attrs = Attributes(gender, nationality, "middle", (0.0, 0.0, 0.0))
    return Identity(vox_id="id00001", name="Synth_00001", split=1, face=attrs, voice=attrs, seed=seed)


@pytest.mark.parametrize("nationality", ["USA", "Germany", "India"])
def test_one_voice_in_both_languages_with_the_nationality_accent(monkeypatch, nationality):
    """The same espeak-ng voice and parameters speak both languages; only the text differs."""
    calls = []
    real = render_voice._synthesize

    def spy(text, voice, params, seed):
        calls.append((text, voice, dict(params)))
        return real(text, voice, params, seed)

    monkeypatch.setattr(render_voice, "_synthesize", spy)
    person = _identity("m", nationality)
    style = voice_style(person)
    for language in ("English", "German"):
        rng = np.random.default_rng(3)
        render_clip(style, voice_session(rng), LANGUAGES[language].sentences[17], rng, (20.0, 20.0), language)
    (english, voice_en, params_en), (german, voice_de, params_de) = calls
    assert voice_en == voice_de == f"{style.language}+{style.variant}"
    assert params_en == params_de
    if nationality == "India":  # a Devanagari voice reads a respelling of each language's own pronunciation
        assert all("\u0900" <= ch <= "\u097f" for ch in german if ch.isalpha())
        assert german != english
    else:
        assert (english, german) == (SENTENCES[17], LANGUAGES["German"].sentences[17])


def test_pitch_follows_the_voice_not_the_language():
    f0 = {}
    for gender in ("m", "f"):
        style = voice_style(_identity(gender, "Italy"))
        for language in ("English", "German"):
            rng = np.random.default_rng(1)
            audio, _ = render_clip(style, voice_session(rng), LANGUAGES[language].sentences[40], rng, (40.0, 40.0),
                                   language)
            f0[gender, language] = median_f0(audio)
    for gender in ("m", "f"):
        assert abs(np.log(f0[gender, "German"] / f0[gender, "English"])) < np.log(1.15)
    assert min(f0["f", lang] for lang in ("English", "German")) > 1.3 * max(f0["m", lang] for lang in
                                                                            ("English", "German"))


def unmapped(sentences, language):
    """Characters of the pronunciation of ``sentences`` (in ``language``) that the Devanagari respelling leaves out."""
    table = _ipa_table(language)
    return {char for sentence in sentences for clause in phonemes(sentence, LANGUAGES[language].voice)
            for word in clause.split() for phoneme in _wordphonemes(word) for char in _ipa_units(phoneme, table)[1]}


def test_sentence_banks_are_parallel_and_fully_respelled():
    german = LANGUAGES["German"].sentences
    assert len(german) == len(SENTENCES) and len(set(german)) == len(german)
    assert pick_sentences(np.random.default_rng(4), 5, "German") == \
        [german[SENTENCES.index(s)] for s in pick_sentences(np.random.default_rng(4), 5)]
    # every phoneme of every sentence has a Devanagari spelling for the Hindi-accented voice
    assert unmapped(german, "German") == set()
    assert unmapped(SENTENCES, "English") == set()


def test_unknown_or_repeated_languages_are_refused():
    for languages, message in ((("English", "Klingon"), "languages: 'Klingon' is not allowed"),
                               (("German", "German"), "languages: a language is listed twice")):
        with pytest.raises(ConfigError, match=message):
            SynthConfig(**{**BILINGUAL.__dict__, "languages": languages})
    assert set(choices(SpokenLanguage)) == set(LANGUAGES)  # the configuration offers what the voices speak
    with pytest.raises(ValueError, match="no sentences in"):
        rng = np.random.default_rng(0)
        render_clip(voice_style(sample_population(BILINGUAL)[0]), voice_session(rng), "Hola.", rng, (20.0, 20.0),
                    "Spanish")


def test_language_tables_are_checked(tmp_path):
    path = tmp_path / LANGUAGES_FILE
    path.write_text("relpath,lang\nwav/a/b/1.wav,English\n")
    with pytest.raises(ValueError, match="header"):
        read_languages(path)
    path.write_text("relpath,language\nwav/a/b/1.wav,English\nwav/a/b/1.wav,German\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_languages(path)
    path.write_text("relpath,language\nwav/a/b/1.wav,\n")
    with pytest.raises(ValueError, match="line 2"):
        read_languages(path)


def test_voxceleb1_has_no_language(shared_data):
    root = shared_data / "voxceleb1-mini"
    if not root.is_dir():
        pytest.skip("voxceleb1-mini is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the slice may leave files out; that is tested elsewhere
        manifest = read_dataset(root)
    assert "language" in manifest and manifest["language"].isna().all()


def test_cli_synth_writes_a_bilingual_population(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "vfcross.workflows.cli", "synth", "--out", str(out), "--identities", "3",
                           "--preset", "smoke", "--workers", "1", "--languages", "English", "German"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "speaking English and German" in done.stdout
    voices = read_dataset(out).query("modality == 'voice'")
    assert voices.groupby("identity")["language"].nunique().eq(2).all()
    bad = subprocess.run([sys.executable, "-m", "vfcross.workflows.cli", "synth", "--out", str(tmp_path / "x"),
                          "--languages", "Urdu"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "invalid choice: 'Urdu'" in bad.stderr
