"""Notebook 06's library: its data (or why none), one model per language, the systems scored, submission files."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fakes import check_submission

from vfcross import config as C
from vfcross.backbone.task import BACKBONE_RUN
from vfcross.data.mavceleb import read_trials
from vfcross.data.synthetic.population import sample_population
from vfcross.evaluation.fame import submission_name
from vfcross.workflows.multilingual import (
    BACKBONE_SYSTEM,
    FUSION_SYSTEM,
    SHARED_BACKBONE_SYSTEM,
    SHARED_FUSION_SYSTEM,
    LanguageModel,
    fame_results,
    multilingual_config,
    prepare_multilingual,
    shared_backbone,
    train_language,
    write_submissions,
)
from vfcross.preprocess.run import preprocess


def _smoke(tmp_path, **changes) -> C.RunConfig:
    return C.override(C.preset("smoke"), {"work_dir": str(tmp_path / "work"), "multilingual.synth.identities": 8,
                                          "multilingual.synth.workers": 1, "preprocess.workers": 1, **changes})


def test_the_multilingual_runs_have_their_own_folder_data_and_lengths(tmp_path):
    cfg = _smoke(tmp_path, **{"multilingual.backbone_epochs": 3})
    run = multilingual_config(cfg)
    assert run.work_dir == str(tmp_path / "work" / "multilingual" / "synthetic") and run.data_root == ""
    assert run.synth == cfg.multilingual.synth and run.synth.languages == ("English", "German")
    assert run.backbone.loop.epochs == 3 and run.fusion.loop.epochs == cfg.fusion.loop.epochs
    assert run.dataset_root.parent == Path(run.work_dir)
    mav = multilingual_config(C.override(cfg, {"multilingual.mavceleb_root": str(tmp_path / "v3")}))
    assert mav.data_root == str(tmp_path / "v3") and mav.work_dir.endswith("multilingual/mavceleb-v3")
    for name in C.PRESETS:  # every preset's population is bilingual
        assert len(C.preset(name).multilingual.synth.languages) == 2


def test_bad_multilingual_settings_are_refused_naming_the_key():
    cfg = C.preset("default")
    for key, value, message in (("multilingual.synth.languages", ["English"],
                                 "multilingual.synth.languages: the FAME protocol compares two"),
                                ("multilingual.n_pairs", 301, "multilingual.n_pairs: must be a positive even"),
                                ("multilingual.backbone", "frozen", "multilingual.backbone: 'frozen' is not allowed"),
                                ("multilingual.backbone_epochs", -1, "multilingual.backbone_epochs: must be at least"),
                                ("multilingual.split_fractions", [0.5, 0.5, 0.5], "multilingual.split_fractions")):
        with pytest.raises(C.ConfigError, match=message):
            C.override(cfg, {key: value})


def test_a_dataset_without_languages_is_skipped_with_the_reason(tmp_path):
    (tmp_path / "vox1" / "wav").mkdir(parents=True)
    data = prepare_multilingual(_smoke(tmp_path, data_root=str(tmp_path / "vox1")))
    assert not data.runs and data.manifest is None
    assert "records no spoken languages" in data.note and "mavceleb_root" in data.note
    assert data.describe().startswith("skipped: ")


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory):
    """The smoke configuration, its bilingual population (8 identities) and the preprocessed manifest."""
    cfg = _smoke(tmp_path_factory.mktemp("ml"))
    data = prepare_multilingual(cfg, progress=False)
    manifest = preprocess(data.manifest, data.cfg, progress=False).manifest
    return cfg, data, manifest


def test_one_model_per_language_from_scratch_then_on_a_shared_backbone(bilingual):
    cfg, data, manifest = bilingual
    assert data.runs and data.languages == ("English", "German") and data.lists is None
    assert shared_backbone(cfg) is None  # no notebook 02 run here
    models = [train_language(data.cfg, manifest, language, progress=False) for language in data.languages]
    for model in models:
        assert model.backbone == model.folder / "runs" / BACKBONE_RUN
        assert len(model.backbone_history) == 1 and model.fusion_history
        assert set(model.table["split"]) == {"test"} and set(model.table["language"]) == {"English", "German"}
        assert model.vectors.shape == (len(model.table), cfg.fusion.dim)
        assert model.backbone_vectors.shape == (len(model.table), 512)
        assert model.train_identities == 4 and model.train_clips == 4 * 2  # its own language's clips only
    assert not np.allclose(models[0].vectors, models[1].vectors)  # each language trained its own model
    results = fame_results(models, data, cfg)
    assert list(results) == [FUSION_SYSTEM, BACKBONE_SYSTEM]
    assert all(r["overall"] is not None and len(r["results"]) == 4 for r in results.values())

    # "shared": one backbone embeds both languages, only the fusion is trained per language
    backbone = models[0].backbone
    shared = [train_language(data.cfg, manifest, language, backbone, progress=False) for language in data.languages]
    np.testing.assert_array_equal(shared[0].backbone_vectors, shared[1].backbone_vectors)
    assert all(m.backbone_history is None and m.backbone == backbone for m in shared)
    results = fame_results(shared, data, cfg, backbone)
    assert list(results) == [SHARED_FUSION_SYSTEM, SHARED_BACKBONE_SYSTEM]
    alone = results[SHARED_BACKBONE_SYSTEM]
    assert [r["train"] for r in alone["results"]] == ["English", "English"] and alone["overall"] is None


def test_a_shared_backbone_never_trained_on_a_fame_test_identity(bilingual, tmp_path):
    """The bilingual identities are named apart from the main population's; a backbone that saw one is refused."""
    cfg, data, manifest = bilingual
    main = {person.vox_id for person in sample_population(cfg.synth)}  # notebook 02's population
    assert main.isdisjoint(data.manifest["identity"])
    test = sorted(manifest.loc[manifest["split"] == "test", "identity"].unique())
    run = tmp_path / BACKBONE_RUN
    run.mkdir()
    (run / "trained_from.json").write_text(json.dumps({"identities": {"train": [test[0]], "val": []}}))
    with pytest.raises(ValueError, match=rf"{BACKBONE_RUN} was trained or validated on 1 of the {len(test)} "
                                         rf"identities to score \({test[0]}\)"):
        train_language(data.cfg, manifest, "English", run, progress=False)


def test_submission_files_score_every_trial_in_order(slice_work, tmp_path):
    """A smoke model of the VoxCeleb1 slice scores a MAV-Celeb-like test folder made of the slice's files."""
    cfg, manifest = slice_work
    root, lists = tmp_path / "v1", tmp_path / "v1_lists"
    voices = manifest[manifest.modality == "voice"].path.tolist()[:2]
    faces = manifest[(manifest.modality == "face") & ~manifest.fallback].path.tolist()[:2]
    for i, (voice, face) in enumerate(zip(voices, faces)):
        for language in ("English", "German"):
            (root / "voices" / language).mkdir(parents=True, exist_ok=True)
            (root / "faces" / language).mkdir(parents=True, exist_ok=True)
            shutil.copy(voice, root / "voices" / language / f"{i:05d}.wav")
            shutil.copy(face, root / "faces" / language / f"{i:05d}.jpg")
    sf.write(root / "voices" / "German" / "00009.wav", np.zeros(16000, np.float32), 16000)  # no speech at all
    lists.mkdir()
    (lists / "English_test.txt").write_text("k2 voices/English/00001.wav faces/English/00000.jpg\n"
                                            "k1 voices/English/00000.wav faces/English/00000.jpg\n"
                                            "k3 voices/English/00001.wav faces/English/00001.jpg\n")
    (lists / "German_test.txt").write_text("g1 voices/German/00000.wav faces/German/00001.jpg\n"
                                           "g2 voices/German/00009.wav faces/German/00000.jpg\n")
    work = Path(cfg.work_dir)
    models = [LanguageModel(language, work, work / "runs" / BACKBONE_RUN, None, None, None, None, None, 0, 0)
              for language in ("English", "German")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written, notes = write_submissions(models, root, lists, tmp_path / "submission", "v3")
    assert sorted(p.name for p in written) == sorted({submission_name(t, s, "v3") for t in ("English", "German")
                                                      for s in ("English", "German")})
    for path in written:
        test_language = path.name.split("_")[3]
        trials = read_trials(lists / f"{test_language}_test.txt")
        check_submission(path, trials)
        scores = np.array([float(line.split()[1]) for line in path.read_text().splitlines()])
        assert ((scores >= 0) & (scores <= 2)).all()
    german = (tmp_path / "submission" / "sub_score_v3_German_heard.txt").read_text().splitlines()
    assert german[1] == f"g2 {np.sqrt(2):f}" and any("00009.wav" in note for note in notes)
    english = (tmp_path / "submission" / "sub_score_v3_English_heard.txt").read_text().splitlines()
    assert [line.split()[0] for line in english] == ["k2", "k1", "k3"]
