"""Identities of the synthetic population and what their voice and face share.

Each identity has a gender, a nationality, an age group and three traits. Its face shows them exactly; its voice shows a
noisy copy (gender always; nationality and age with the ``coupling_*`` probabilities of
:class:`~vfcross.config.SynthConfig`; each trait correlated by ``coupling_traits``). Since this model is known,
:func:`oracle_score` gives the Bayes score of a voice-face pair, the ceiling a learned model is read against
(docs/data.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vfcross.config import SynthConfig
from vfcross.data.voxceleb import SPLIT_CODES

GENDERS = ("m", "f")
#: Nationality -> espeak-ng voice giving its accent (the accent, not the language, carries nationality).
NATIONALITIES: dict[str, str] = {"USA": "en-us", "UK": "en-gb-x-rp", "India": "hi", "Germany": "de",
                                 "Mexico": "es-419", "Italy": "it"}
AGE_GROUPS = ("young", "middle", "old")
#: Continuous traits, each seen and heard: build (face width, jaw <-> pitch), length (face, nose <-> formants),
#: liveliness (eyebrows, eyes <-> rate, pitch range).
TRAITS = ("build", "length", "liveliness")


@dataclass(frozen=True)
class Attributes:
    """Attributes as rendered into one modality."""

    gender: str
    nationality: str
    age_group: str
    traits: tuple[float, ...]


@dataclass(frozen=True)
class Identity:
    """One synthetic person: VoxCeleb1-style id and VGGFace1-style name, split code, attributes, seed."""

    vox_id: str
    name: str
    split: int
    face: Attributes
    voice: Attributes
    seed: int

    @property
    def age(self) -> str:
        """The identity's age group (its face's)."""
        return self.face.age_group


_CODE_OF = {name: int(code) for code, name in SPLIT_CODES.items()}
TRAIN_CODE, VAL_CODE, TEST_CODE = _CODE_OF["train"], _CODE_OF["val"], _CODE_OF["test"]


def sample_population(cfg: SynthConfig) -> list[Identity]:
    """Draw ``cfg.identities`` identities deterministically from ``cfg.seed``."""
    if cfg.identities < 3:
        raise ValueError("a population needs at least 3 identities (one per split)")
    rng = np.random.default_rng(cfg.seed)
    splits = _split_codes(cfg.identities, cfg.split_fractions, rng)
    nats = list(NATIONALITIES)
    people = []
    for i in range(cfg.identities):
        gender = GENDERS[int(rng.integers(2))]
        nationality = nats[int(rng.integers(len(nats)))]
        age = AGE_GROUPS[int(rng.integers(len(AGE_GROUPS)))]
        traits = rng.standard_normal(len(TRAITS))
        face = Attributes(gender, nationality, age, tuple(float(t) for t in traits))
        voice = _voice_attributes(face, cfg, rng)
        vox_id, name = identity_names(i + 1, cfg)
        people.append(Identity(vox_id=vox_id, name=name, split=splits[i], face=face, voice=voice,
                               seed=int(rng.integers(2**31))))
    return people


def identity_names(number: int, cfg: SynthConfig) -> tuple[str, str]:
    """The id and name of identity ``number`` (from 1): ``id00001``/``Synth_00001``, or when bilingual
    ``ml00001``/``Synth_ml00001`` (never a name of the main population, whose backbone may embed them)."""
    tag = "ml" if cfg.languages else ""
    return f"{tag or 'id'}{number:05d}", f"Synth_{tag}{number:05d}"


def _split_codes(n: int, fractions: tuple[float, float, float], rng: np.random.Generator) -> list[int]:
    """Split codes with the given fractions, shuffled; a positive fraction gets at least one identity."""
    n_val, n_test = (max(1, round(f * n)) if f > 0 else 0 for f in fractions[1:])
    if n - n_val - n_test < 0 or (fractions[0] > 0 and n - n_val - n_test < 1):
        raise ValueError(f"split_fractions {fractions} of {n} identities leave no training identity")
    codes = [TRAIN_CODE] * (n - n_val - n_test) + [VAL_CODE] * n_val + [TEST_CODE] * n_test
    rng.shuffle(codes)
    return codes


def _voice_attributes(face: Attributes, cfg: SynthConfig, rng: np.random.Generator) -> Attributes:
    """The face attributes as the voice expresses them (the noisy copy)."""
    nats = list(NATIONALITIES)
    nationality = face.nationality
    if rng.random() >= cfg.coupling_nationality:
        others = [n for n in nats if n != face.nationality]
        nationality = others[int(rng.integers(len(others)))]
    age_index = AGE_GROUPS.index(face.age_group)
    if rng.random() >= cfg.coupling_age:
        neighbours = [a for a in (age_index - 1, age_index + 1) if 0 <= a < len(AGE_GROUPS)]
        age_index = neighbours[int(rng.integers(len(neighbours)))]
    rho = cfg.coupling_traits
    noise = rng.standard_normal(len(face.traits))
    traits = tuple(float(rho * t + math.sqrt(1 - rho**2) * e) for t, e in zip(face.traits, noise))
    return Attributes(face.gender, nationality, AGE_GROUPS[age_index], traits)


def _age_prob_given(voice_age: str, face_age: str, coupling: float) -> float:
    """P(voice age group | face age group) under the same-identity model."""
    v, f = AGE_GROUPS.index(voice_age), AGE_GROUPS.index(face_age)
    if v == f:
        return coupling
    neighbours = [a for a in (f - 1, f + 1) if 0 <= a < len(AGE_GROUPS)]
    return (1 - coupling) / len(neighbours) if v in neighbours else 0.0


#: Categorical attributes by manifest column: (values, P(voice value | face value, same identity)).
_CATEGORICAL = {
    "gender": (GENDERS, lambda v, f, cfg: float(v == f)),
    "nationality": (tuple(NATIONALITIES), lambda v, f, cfg: cfg.coupling_nationality if v == f
                    else (1 - cfg.coupling_nationality) / (len(NATIONALITIES) - 1)),
    "age": (AGE_GROUPS, lambda v, f, cfg: _age_prob_given(v, f, cfg.coupling_age)),
}
#: Attributes that a verification list can force a negative pair to share.
SHAREABLE = tuple(_CATEGORICAL)


def voice_marginal(name: str, cfg: SynthConfig) -> dict[str, float]:
    """P(voice value) of a categorical attribute for a random identity (the "different identity" model):
    the mean over the uniformly drawn face values of P(voice value | face value)."""
    if name not in _CATEGORICAL:
        raise ValueError(f"attribute must be one of {SHAREABLE}, got {name!r}")
    values, given = _CATEGORICAL[name]
    return {v: sum(given(v, f, cfg) for f in values) / len(values) for v in values}


def oracle_score(voice: Attributes, face: Attributes, cfg: SynthConfig, shared: tuple[str, ...] = ()) -> float:
    """Log-likelihood ratio that ``voice`` and ``face`` belong to one identity (the Bayes score). ``shared`` names the
    attributes of :data:`SHAREABLE` that a list forces negative pairs to share (G, N, A): their terms drop out. ``-inf``
    where the same-identity model gives probability 0."""
    unknown = set(shared) - set(SHAREABLE)
    if unknown:
        raise ValueError(f"shared attributes must be among {SHAREABLE}, got {sorted(unknown)}")
    log_lr = 0.0
    for name, (_, given) in _CATEGORICAL.items():
        if name in shared:
            continue
        v, f = (attrs.age_group if name == "age" else getattr(attrs, name) for attrs in (voice, face))
        p_same = given(v, f, cfg)
        if p_same == 0.0:
            return -math.inf
        log_lr += math.log(p_same / voice_marginal(name, cfg)[v])
    rho = cfg.coupling_traits
    var = 1 - rho**2
    for tv, tf in zip(voice.traits, face.traits):
        if var == 0.0:
            return math.inf if tv == rho * tf else -math.inf
        log_lr += -0.5 * math.log(var) - (tv - rho * tf) ** 2 / (2 * var) + tv**2 / 2
    return log_lr
