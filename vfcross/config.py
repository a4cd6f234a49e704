"""Typed run configuration: one dataclass per stage inside a :class:`RunConfig`, and three presets.

``paper`` holds the paper's settings (GPU, VoxCeleb1), ``default`` the CPU run of ``make reproduce`` on the
synthetic population, ``smoke`` tiny sizes for tests. Every choice is a ``Literal`` defined here once. Every
field is checked when its dataclass is built, so a bad value (from code, a saved file or ``--set``) fails at
once with a :class:`ConfigError` naming the dotted key. Overrides use dotted keys:
``override(cfg, {"voice.n_fft": 256})``. What each setting means and why the checker is not pydantic:
docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

PresetName = Literal["paper", "default", "smoke"]
#: Identity splits of the Learnable-PINs split file (codes 1, 2, 3, 4).
Split = Literal["train", "val", "seen_heard", "test"]
NoFace = Literal["skip", "fallback"]
FaceStorage = Literal["lossless", "jpeg"]
VoiceStorage = Literal["spectrogram", "audio"]
Architecture = Literal["single", "dual"]
SpectrogramInput = Literal["image"]
SpectrogramNormalisation = Literal["bin", "utterance"]
CenterReduction = Literal["mean", "sum"]
CenterInput = Literal["features", "normalised"]
Optimizer = Literal["adam", "sgd"]
EpochUnit = Literal["identities", "voices"]
LrSchedule = Literal["exponential", "cosine"]
Fusion = Literal["gated", "linear", "none"]
FusionLoss = Literal["ce+opl", "ce", "opl"]
MultilingualBackbone = Literal["shared", "per_language"]
MavcelebVersion = Literal["v1", "v2", "v3"]
#: Languages the synthetic voices speak, named as MAV-Celeb names its language folders.
SpokenLanguage = Literal["English", "German"]

#: Smallest square input InceptionResNet-V1 takes: smaller inputs vanish inside its reductions.
MIN_INPUT_SIZE = 75


def choices(kind: Any) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` choice type, e.g. ``choices(Fusion)``."""
    return typing.get_args(kind)


class ConfigError(ValueError):
    """A configuration value that is not allowed; ``key`` is its dotted name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem

    def within(self, prefix: str) -> ConfigError:
        """The same error with ``key`` seen from the enclosing section ``prefix``."""
        return ConfigError(_join(prefix, self.key), self.problem)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_SIMPLE = {float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
           int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
           str: ("str", lambda v: isinstance(v, str)), bool: ("bool", lambda v: isinstance(v, bool))}


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not have type ``hint`` (None when it does); an unknown annotation is refused."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return None if value in args else f"{value!r} is not allowed; choose one of {', '.join(map(repr, args))}"
    if origin is tuple:
        if args[-1] is Ellipsis:  # tuple[int, ...]: any length
            if not isinstance(value, tuple):
                return f"expected a list of values, got {value!r}"
            args = (args[0],) * len(value)
        if not isinstance(value, tuple) or len(value) != len(args):
            return f"expected {len(args)} values, got {value!r}"
        return next((p for p in map(_type_problem, args, value) if p), None)
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, hint) else f"expected a {hint.__name__} section, got {value!r}"
    if hint in _SIMPLE:
        name, ok = _SIMPLE[hint]
        return None if ok(value) else f"expected {name}, got {value!r}"
    return f"its annotation {hint!r} is not one the configuration checks (a Literal, tuple, section, " \
           "float, int, str or bool): give it one, or teach vfcross.config._type_problem to check it"


def _check_types(obj: Any) -> None:
    """Raise :class:`ConfigError` for the first field of ``obj`` whose value has the wrong type."""
    for f in dataclasses.fields(obj):
        problem = _type_problem(_hints(type(obj))[f.name], getattr(obj, f.name))
        if problem:
            raise ConfigError(f.name, problem)


def _at_least(obj: Any, low: float, *names: str, why: str = "") -> None:
    for name in names:
        if getattr(obj, name) < low:
            raise ConfigError(name, f"must be at least {low}{why}, got {getattr(obj, name)!r}")


def _between(obj: Any, low: float, high: float, *names: str, high_open: bool = False, low_open: bool = False) -> None:
    """Require ``low <= obj.name <= high`` for each of ``names`` (either end open on request)."""
    for name in names:
        value = getattr(obj, name)
        if value < low or value > high or (high_open and value == high) or (low_open and value == low):
            span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise ConfigError(name, f"must lie in {span}, got {value!r}")


def _check_fractions(obj: Any) -> None:
    if min(obj.split_fractions) < 0 or not math.isclose(sum(obj.split_fractions), 1.0, abs_tol=1e-6):
        raise ConfigError("split_fractions", f"must be three non-negative fractions summing to 1, "
                                             f"got {obj.split_fractions!r}")


def _check_seeds(obj: Any) -> None:
    seeds = obj.seeds
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"must be one or more distinct non-negative seeds, got {seeds!r}")


@dataclass
class SynthConfig:
    """The embedded synthetic population (see :mod:`vfcross.data.synthetic.writer`)."""
    identities: int = 300
    seed: int = 0
    videos_per_identity: int = 3
    clips_per_video: int = 2
    faces_per_video: int = 3
    eval_videos_per_identity: int = 0
    eval_faces_per_video: int = 0
    eval_clips_per_video: int = 0
    image_size: int = 160
    coupling_nationality: float = 0.5
    coupling_age: float = 0.6
    coupling_traits: float = 0.4
    split_fractions: tuple[float, float, float] = (0.72, 0.08, 0.20)
    snr_db: tuple[float, float] = (10.0, 30.0)
    workers: int = 2
    languages: tuple[SpokenLanguage, ...] = ()

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "identities", "videos_per_identity", "clips_per_video", "faces_per_video", "workers")
        _at_least(self, 0, "eval_videos_per_identity", "eval_faces_per_video", "eval_clips_per_video",
                  why=" (0 = as the training identities)")
        _at_least(self, 32, "image_size")
        _between(self, 0.0, 1.0, "coupling_nationality", "coupling_age", "coupling_traits")
        _check_fractions(self)
        if self.snr_db[0] > self.snr_db[1]:
            raise ConfigError("snr_db", f"must be (low, high) with low <= high, got {self.snr_db!r}")
        if len(set(self.languages)) != len(self.languages):
            raise ConfigError("languages", f"a language is listed twice in {list(self.languages)}")

    def samples(self, evaluation: bool) -> tuple[int, int, int]:
        """Videos, faces per video and clips per video of a training (False) or a val/test identity (True)."""
        train = (self.videos_per_identity, self.faces_per_video, self.clips_per_video)
        if not evaluation:
            return train
        return (self.eval_videos_per_identity or train[0], self.eval_faces_per_video or train[1],
                self.eval_clips_per_video or train[2])


@dataclass
class FaceConfig:
    """Face preprocessing: MTCNN detection and 5-landmark alignment."""
    size: int = 256
    no_face: NoFace = "skip"
    min_face_size: int = 20
    batch_size: int = 16
    batch_pixels: int = 4_000_000
    detect_size: int = 160
    storage: FaceStorage = "lossless"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "size", "min_face_size", "batch_size")
        _at_least(self, 10_000, "batch_pixels")
        if self.detect_size and self.detect_size < self.min_face_size:
            raise ConfigError("detect_size", f"must be 0 or at least min_face_size = {self.min_face_size}, "
                                             f"got {self.detect_size!r}")
        _between(self, 1, 100, "jpeg_quality")


@dataclass
class VoiceConfig:
    """Voice preprocessing: resampling, energy VAD and spectrogram."""
    sample_rate: int = 16000
    vad_window_ms: float = 25.0
    vad_overlap: float = 0.5
    vad_threshold_db: float = 35.0
    min_seconds: float = 0.5
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    max_hz: float = 0.0
    n_mels: int = 0
    log_compress: bool = True
    normalise: SpectrogramNormalisation = "bin"
    max_seconds: float = 0.0
    storage: VoiceStorage = "spectrogram"

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "sample_rate", "n_fft")
        _between(self, 0.0, math.inf, "vad_window_ms", "vad_threshold_db", "win_ms", "hop_ms", low_open=True)
        _between(self, 0.0, 1.0, "vad_overlap", high_open=True)
        _at_least(self, 0, "min_seconds", "max_seconds", "n_mels")
        _between(self, 0.0, self.sample_rate / 2, "max_hz")
        window = round(self.sample_rate * self.win_ms / 1000.0)
        if window > self.n_fft:
            raise ConfigError("n_fft", f"{self.n_fft} is shorter than the {window}-sample window "
                                       f"(win_ms = {self.win_ms} at {self.sample_rate} Hz)")
        if self.max_seconds and self.max_seconds < self.min_seconds:
            raise ConfigError("max_seconds", f"must be 0 (no limit) or at least min_seconds = "
                                             f"{self.min_seconds}, got {self.max_seconds!r}")

    @property
    def frequency_rows(self) -> int:
        """Rows of the spectrograms this configuration makes."""
        if self.n_mels:
            return self.n_mels
        bins = self.n_fft // 2 + 1
        return min(bins, int(self.max_hz * self.n_fft / self.sample_rate) + 1) if self.max_hz else bins


@dataclass
class PreprocessConfig:
    """Shared settings of the preprocessing stage."""
    workers: int = 2

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "workers")


@dataclass
class LoopConfig:
    """Settings of the one training loop (:func:`vfcross.training.train`)."""
    epochs: int = 10
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    lr_decay: float = 0.95
    lr_schedule: LrSchedule = "exponential"
    lr_min: float = 0.0
    average_epochs: int = 0
    average_decay: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    amp: bool = True
    max_batches_per_epoch: int = 0
    validate_every: int = 1
    select_best: str = ""
    val_voices: int = 0
    val_faces: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "epochs", "validate_every")
        _at_least(self, 0, "seed", "weight_decay", "max_batches_per_epoch", "val_voices", "val_faces", "workers")
        _between(self, 0.0, math.inf, "lr", low_open=True)
        _between(self, 0.0, 1.0, "lr_decay", low_open=True)
        _between(self, 0.0, self.lr, "lr_min")
        _between(self, 0, self.epochs, "average_epochs")
        _between(self, 0.0, 1.0, "average_decay", high_open=True)


@dataclass
class BackboneConfig:
    """The single-stream network (or its dual-stream baseline) and its training."""
    architecture: Architecture = "single"
    input_size: int = 96
    spectrogram_input: SpectrogramInput = "image"
    voice_crop_frames: int = 200
    dropout: float = 0.2
    identities_per_batch: int = 24
    samples_per_identity: int = 1
    center_weight: float = 1.0
    center_lr: float = 0.5
    center_reduction: CenterReduction = "mean"
    center_input: CenterInput = "normalised"
    holdout_fraction: float = 0.15
    epoch: EpochUnit = "identities"
    epoch_repeats: int = 1
    embed_chunk_crops: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, MIN_INPUT_SIZE, "input_size", why=" (InceptionResNet-V1's smallest input)")
        _at_least(self, 2, "voice_crop_frames")
        _at_least(self, 2, "identities_per_batch", why=" (a batch must contrast identities)")
        _at_least(self, 1, "samples_per_identity", "epoch_repeats", "embed_chunk_crops")
        _between(self, 0.0, 1.0, "dropout", high_open=True)
        _at_least(self, 0.0, "center_weight")
        _between(self, 0.0, 1.0, "center_lr")
        _between(self, 0.0, 1.0, "holdout_fraction", high_open=True)
        _check_seeds(self)


@dataclass
class FusionConfig:
    """Fusion + orthogonal projection loss on the backbone's embeddings."""
    dim: int = 128
    fusion: Fusion = "gated"
    loss: FusionLoss = "ce+opl"
    alpha: float = 1.0
    batch_size: int = 128
    seeds: tuple[int, ...] = (0, 1, 2)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=100, lr=1e-5, lr_decay=0.98))

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 1, "dim")
        _at_least(self, 2, "batch_size", why=" (the orthogonal projection loss compares pairs)")
        _at_least(self, 0.0, "alpha")
        _check_seeds(self)


#: Table 6 of the paper: each ablation is a change of the fusion configuration. Code names a variant by its
#: key, never by its position; FULL_MODEL is the full model (notebook 03 trains it).
NO_FUSION, CE_ONLY, OPL_ONLY = ("single stream + FOP loss, no fusion", "+ fusion, CE only",
                                "+ fusion, OPL (cosine) only")
FULL_MODEL = "full model (fusion + CE + OPL)"
TABLE6_VARIANTS: dict[str, dict[str, str]] = {
    NO_FUSION: {"fusion": "none", "loss": "ce+opl"},
    CE_ONLY: {"fusion": "gated", "loss": "ce"},
    OPL_ONLY: {"fusion": "gated", "loss": "opl"},
    FULL_MODEL: {"fusion": "gated", "loss": "ce+opl"},
}


@dataclass
class EvalConfig:
    """Test-time protocols generated from the manifest (see vfcross.evaluation.protocols)."""
    seed: int = 0
    lists: str = ""
    n_pairs: int = 0
    n_trials: int = 2000
    n_boot: int = 1000
    split: Split = "test"
    memory_gb: float = 2.0

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, 0, "seed", "n_pairs")
        _at_least(self, 1, "n_trials", "n_boot")
        _between(self, 0.0, math.inf, "memory_gb", low_open=True)


@dataclass
class MultilingualConfig:
    """Notebook 06: the FAME protocol (train on one language, verify on the heard and the unheard one). It runs on its
    own data in ``<work_dir>/multilingual``: the bilingual population ``synth`` or a MAV-Celeb version folder
    (``mavceleb_root``); everything else is the run's own configuration."""
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(
        identities=96, videos_per_identity=1, clips_per_video=2, faces_per_video=1, image_size=128,
        split_fractions=(0.6, 0.1, 0.3), languages=("English", "German")))
    backbone: MultilingualBackbone = "shared"
    backbone_epochs: int = 0
    fusion: bool = True
    fusion_epochs: int = 0
    n_pairs: int = 2000
    mavceleb_root: str = ""
    mavceleb_lists: str = ""
    mavceleb_splits: str = ""
    mavceleb_version: MavcelebVersion = "v3"
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        if len(self.synth.languages) != 2:
            raise ConfigError("synth.languages", f"the FAME protocol compares two languages, got "
                                                 f"{list(self.synth.languages)}")
        _at_least(self, 0, "backbone_epochs", "fusion_epochs", "split_seed")
        if self.n_pairs < 2 or self.n_pairs % 2:
            raise ConfigError("n_pairs", f"must be a positive even number (half positive pairs), got {self.n_pairs!r}")
        _check_fractions(self)


@dataclass
class RunConfig:
    """Everything one run needs; presets fill it in, overrides adjust it."""
    preset: PresetName = "default"
    work_dir: str = "work"
    data_root: str = ""
    splits_file: str = ""
    skip_unlisted_identities: bool = False
    synth: SynthConfig = field(default_factory=SynthConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    multilingual: MultilingualConfig = field(default_factory=MultilingualConfig)

    def __post_init__(self) -> None:
        _check_types(self)
        orphans = sorted(set(self.fusion.seeds) - set(self.backbone.seeds))
        if orphans:
            raise ConfigError("fusion.seeds", f"fusion seed s is trained on backbone seed s, but {orphans} "
                                              f"is not in backbone.seeds {list(self.backbone.seeds)}")

    @property
    def dataset_root(self) -> Path:
        """The dataset to read: ``data_root`` or the generated population."""
        if self.data_root:
            return Path(self.data_root)
        return Path(self.work_dir) / f"synth-n{self.synth.identities}-s{self.synth.seed}"

    @property
    def manifest_path(self) -> Path:
        """The preprocessed manifest that the training stages read."""
        return Path(self.work_dir) / "preprocess" / "manifest.csv"

    def run_dir(self, name: str) -> Path:
        """Folder of a trained run (checkpoint, metrics log, config)."""
        return Path(self.work_dir) / "runs" / name

    @property
    def cache_dir(self) -> Path:
        """Root of the preprocessing cache (entries are keyed by settings)."""
        return Path(self.work_dir) / "cache"


PRESETS: tuple[str, ...] = choices(PresetName)


def preset(name: str) -> RunConfig:
    """A fresh configuration for one of :data:`PRESETS` (departures from the paper: the README's table)."""
    if name == "paper":
        return RunConfig(preset="paper", face=FaceConfig(storage="jpeg"),
                         voice=VoiceConfig(log_compress=False, storage="audio"),
                         backbone=BackboneConfig(input_size=256, identities_per_batch=45, samples_per_identity=1,
                                                 dropout=0.6, center_reduction="sum", center_input="features",
                                                 epoch="voices",
                                                 loop=LoopConfig(epochs=50, lr=1e-3, lr_decay=0.95, amp=False,
                                                                 validate_every=5, val_voices=4, val_faces=8,
                                                                 workers=8)),
                         fusion=FusionConfig(loop=dataclasses.replace(FusionConfig().loop, amp=False, validate_every=10,
                                                                      val_voices=10, val_faces=10)),
                         multilingual=MultilingualConfig(
                             synth=SynthConfig(languages=("English", "German")), backbone="per_language",
                             n_pairs=10000))
    if name == "default":
        # seed 1: a population no tuning run used (the experiments ran on seed 0, docs/experiments.md)
        return RunConfig(preset="default",
                         synth=SynthConfig(identities=600, seed=1, split_fractions=(0.36, 0.14, 0.50),
                                           eval_videos_per_identity=1, eval_faces_per_video=2, eval_clips_per_video=2),
                         face=FaceConfig(size=128), voice=VoiceConfig(max_hz=4000.0),
                         backbone=BackboneConfig(input_size=80, loop=LoopConfig(epochs=25, validate_every=10)),
                         fusion=FusionConfig(loop=LoopConfig(epochs=30, lr=3e-4, lr_decay=0.98,
                                                             select_best="val_auc")))
    if name == "smoke":
        return RunConfig(
            preset="smoke",
            synth=SynthConfig(identities=12, videos_per_identity=2, clips_per_video=2, faces_per_video=2,
                              image_size=128, split_fractions=(0.5, 0.25, 0.25)),
            face=FaceConfig(size=96),
            backbone=BackboneConfig(input_size=75, voice_crop_frames=100, identities_per_batch=3,
                                    samples_per_identity=2, seeds=(0, 1),
                                    loop=LoopConfig(epochs=1, max_batches_per_epoch=2)),
            fusion=FusionConfig(dim=32, batch_size=16, seeds=(0, 1),
                                loop=LoopConfig(epochs=3, lr=1e-3, select_best="val_auc")),
            eval=EvalConfig(n_trials=40, n_boot=50),
            multilingual=MultilingualConfig(
                synth=SynthConfig(identities=12, videos_per_identity=1, clips_per_video=2, faces_per_video=1,
                                  image_size=128, split_fractions=(0.5, 0.25, 0.25), languages=("English", "German")),
                n_pairs=200),
        )
    raise ConfigError("preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def to_dict(cfg: Any) -> dict:
    """The configuration as plain JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from JSON ``data`` (nested sections too); ConfigError names a bad or unknown key."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(_join(where, unknown[0]), f"no such setting; {cls.__name__} has {', '.join(names)}")
    kwargs = {key: _coerce(_hints(cls)[key], value, _join(where, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within(where) from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """JSON data ``value`` as the annotated type ``hint`` (sections, tuples, floats); the dataclass checks the rest."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"expected a section (mapping), got {value!r}")
        return from_dict(hint, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        kinds = typing.get_args(hint)
        kinds = kinds[:1] * len(value) if kinds[-1] is Ellipsis else kinds
        # a tuple of the wrong length is left for the dataclass's type check to refuse
        return tuple(_coerce(t, v, where) for t, v in zip(kinds, value)) if len(kinds) == len(value) else tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def override(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with dotted-key ``changes`` applied and validated (ConfigError naming a bad key)."""
    data = to_dict(cfg)
    for dotted, value in changes.items():
        _setting_hint(dotted)  # an unknown key is an error naming it
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return from_dict(RunConfig, data)


def _setting_hint(dotted: str) -> Any:
    """The annotation of the :class:`RunConfig` setting ``dotted`` (ConfigError naming it when there is none)."""
    cls = RunConfig
    *parents, leaf = dotted.split(".")
    for depth, part in enumerate(parents):
        cls = _hints(cls).get(part)
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(dotted, f"no configuration section {'.'.join(parents[:depth + 1])!r}")
    if leaf not in _hints(cls):
        raise ConfigError(dotted, "no configuration field of that name")
    return _hints(cls)[leaf]


def parse_setting(dotted: str, text: str) -> Any:
    """The value of ``--set dotted=text``: kept as text for a str or choice setting, else read as JSON. Text that is
    not JSON is passed on for the configuration's check to refuse, naming the key."""
    hint = _setting_hint(dotted)
    if hint is str or (typing.get_origin(hint) is Literal and all(isinstance(a, str) for a in typing.get_args(hint))):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write ``cfg`` as JSON to ``path`` (a file, or a folder to hold config.json)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    return path


def run_config(run_dir: str | Path) -> RunConfig:
    """The configuration a trained run folder was made with (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {run_dir}: its configuration is needed to rebuild its model")
    return load_config(path)


def load_config(path: str | Path) -> RunConfig:
    """Read (and validate) a configuration written by :func:`save_config`."""
    try:
        return from_dict(RunConfig, json.loads(Path(path).read_text()))
    except ConfigError as err:
        raise ConfigError(err.key, f"{err.problem} (in {path})") from None
