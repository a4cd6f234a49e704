"""The Bayes oracle of the synthetic data: its terms by hand, and that no simpler rule beats it on any list."""

import math

import numpy as np
import pytest
from fakes import population_table

from vfcross.config import SynthConfig
from vfcross.data.synthetic.population import (
    AGE_GROUPS,
    Attributes,
    oracle_score,
    sample_population,
    voice_marginal,
)
from vfcross.metrics import roc_auc
from vfcross.evaluation.oracle import IMPOSSIBLE, oracle_pair_scores
from vfcross.evaluation.protocols import RESTRICTIONS, verification_pairs

CFG = SynthConfig(identities=3000, seed=11, split_fractions=(0.0, 0.0, 1.0))


@pytest.fixture(scope="module")
def population():
    """A large simulated population (attributes only, nothing rendered), all of it test identities."""
    people = sample_population(CFG)
    return people, population_table(people)


@pytest.fixture(scope="module")
def lists(population):
    """Every verification list drawn from the population: name -> (pairs, voice attributes, face attributes)."""
    people, table = population
    by_id = {p.vox_id: p for p in people}
    ids = table["identity"].to_numpy()
    result = {}
    for restriction in RESTRICTIONS:
        pairs = verification_pairs(table, restriction, 20_000, seed=1)
        result[restriction] = (pairs, ids[pairs.voice], ids[pairs.face],
                               [by_id[v].voice for v in ids[pairs.voice]], [by_id[f].face for f in ids[pairs.face]])
    return result


def test_voice_age_marginal_is_not_uniform():
    marginal = voice_marginal("age", SynthConfig(coupling_age=0.6))
    # young and old faces keep 0.6 and give 0.4 to middle; middle gives 0.2 to each side
    assert [marginal[a] for a in AGE_GROUPS] == pytest.approx([(0.6 + 0.2) / 3, (0.4 + 0.6 + 0.4) / 3, 0.8 / 3])
    for coupling in (0.0, 0.3, 1.0):
        for name in ("gender", "nationality", "age"):
            assert sum(voice_marginal(name, SynthConfig(coupling_age=coupling,
                                                        coupling_nationality=coupling)).values()) == pytest.approx(1)
    assert voice_marginal("nationality", SynthConfig())["UK"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="attribute"):
        voice_marginal("height", CFG)


def test_terms_by_hand():
    cfg = SynthConfig(coupling_nationality=0.5, coupling_age=0.6, coupling_traits=0.4)
    face = Attributes("f", "UK", "old", (0.5, -1.0, 0.2))
    voice = Attributes("f", "India", "middle", (0.1, -0.3, 1.1))
    var = 1 - 0.4**2
    traits = sum(-0.5 * math.log(var) - (v - 0.4 * f) ** 2 / (2 * var) + v**2 / 2
                 for v, f in zip(voice.traits, face.traits))
    gender = math.log(1 / 0.5)
    nationality = math.log((0.5 / 5) / (1 / 6))
    age = math.log(0.4 / (1.4 / 3))  # an old face sounds middle-aged with 1 - 0.6; marginal of "middle"
    assert oracle_score(voice, face, cfg) == pytest.approx(gender + nationality + age + traits)
    assert oracle_score(voice, face, cfg, ("nationality",)) == pytest.approx(gender + age + traits)
    assert oracle_score(voice, face, cfg, ("age",)) == pytest.approx(gender + nationality + traits)
    assert oracle_score(voice, face, cfg, ("gender", "nationality", "age")) == pytest.approx(traits)
    assert oracle_score(Attributes("m", "UK", "old", voice.traits), face, cfg) == -math.inf
    assert oracle_score(Attributes("f", "UK", "young", voice.traits), face, cfg) == -math.inf  # two groups away
    with pytest.raises(ValueError, match="shared"):
        oracle_score(voice, face, cfg, ("height",))


def single_attribute_rules(voices, faces, cfg):
    """Scores of the simpler rules: each categorical attribute's match, each trait's likelihood term alone."""
    rules = {name: np.array([float(getattr(v, name) == getattr(f, name)) for v, f in zip(voices, faces)])
             for name in ("gender", "nationality", "age_group")}
    rho, var = cfg.coupling_traits, 1 - cfg.coupling_traits**2
    for k in range(3):
        rules[f"trait {k}"] = np.array([-(v.traits[k] - rho * f.traits[k]) ** 2 / (2 * var) + v.traits[k] ** 2 / 2
                                        for v, f in zip(voices, faces)])
    return rules


@pytest.mark.parametrize("restriction", list(RESTRICTIONS))
def test_oracle_beats_every_single_attribute_rule_on_its_list(population, lists, restriction):
    people, _ = population
    pairs, voice_ids, face_ids, voices, faces = lists[restriction]
    oracle = roc_auc(oracle_pair_scores(people, CFG, voice_ids, face_ids, restriction), pairs.labels)
    rules = {name: roc_auc(scores, pairs.labels) for name, scores in single_attribute_rules(voices, faces, CFG).items()}
    assert all(oracle > auc for auc in rules.values()), (oracle, rules)


@pytest.mark.parametrize("restriction", ["N", "A", "GNA"])
def test_restricted_oracle_beats_the_unrestricted_one_on_its_list(population, lists, restriction):
    people, _ = population
    pairs, voice_ids, face_ids, _, _ = lists[restriction]
    restricted = roc_auc(oracle_pair_scores(people, CFG, voice_ids, face_ids, restriction), pairs.labels)
    unrestricted = roc_auc(oracle_pair_scores(people, CFG, voice_ids, face_ids, "random"), pairs.labels)
    assert restricted > unrestricted + 0.005, (restricted, unrestricted)


def test_pair_scores_equal_the_per_pair_score(population, lists):
    people, _ = population
    by_id = {p.vox_id: p for p in people}
    _, voice_ids, face_ids, _, _ = lists["G"]
    scores = oracle_pair_scores(people, CFG, voice_ids[:50], face_ids[:50], "G")
    expected = [oracle_score(by_id[v].voice, by_id[f].face, CFG, ("gender",))
                for v, f in zip(voice_ids[:50], face_ids[:50])]
    np.testing.assert_allclose(scores, np.nan_to_num(expected, neginf=IMPOSSIBLE))


def test_bad_oracle_inputs_are_rejected(population):
    people, _ = population
    ids = np.array([people[0].vox_id])
    with pytest.raises(ValueError, match="restriction"):
        oracle_pair_scores(people, CFG, ids, ids, "X")
    with pytest.raises(ValueError, match="equally long"):
        oracle_pair_scores(people, CFG, ids, np.r_[ids, ids])
    with pytest.raises(KeyError, match="not in the population"):
        oracle_pair_scores(people, CFG, np.array(["id99999"]), ids)


def test_population_table_has_one_voice_and_one_face_per_identity(population):
    people, table = population
    assert len(table) == 2 * len(people)
    assert table.groupby("identity")["modality"].apply(lambda m: sorted(m) == ["face", "voice"]).all()
    first = people[0]
    row = table[table.identity == first.vox_id].iloc[0]
    assert (row.gender, row.nationality, row.age, row.split) == (first.face.gender, first.face.nationality,
                                                                  first.age, "test")

