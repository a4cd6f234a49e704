"""Typed run configuration.

Every stage reads one dataclass from a :class:`RunConfig`; a run saves its
configuration as JSON beside its outputs (:func:`save_config`) so that every
result says how it was made. Three presets exist:

* ``paper``   – the paper's settings (256x256 input, batch 45, lambda = 1, ...),
  meant for a GPU and VoxCeleb1;
* ``default`` – the CPU run on the embedded synthetic population that
  ``make reproduce`` performs;
* ``smoke``   – tiny sizes so that tests and notebook smoke runs take seconds.

Overrides use dotted keys, e.g. ``override(cfg, {"voice.n_fft": 256})``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

#: Where notebook 06's models get their backbone: notebook 02's (one for both languages; only the fusion
#: stage is trained per language) or one trained from scratch per language.
MultilingualBackbone = Literal["shared", "per_language"]
#: Languages the synthetic voices speak (vfcross.data.synthetic.render_voice.LANGUAGES), named as
#: MAV-Celeb names its language folders.
SpokenLanguage = Literal["English", "German"]


@dataclass
class SynthConfig:
    """The embedded synthetic population (see :mod:`vfcross.data.synthetic.writer`)."""

    identities: int = 300
    seed: int = 0
    videos_per_identity: int = 3
    clips_per_video: int = 2
    faces_per_video: int = 3
    image_size: int = 160
    #: Defaults are calibrated so that the oracle of
    #: :func:`vfcross.data.synthetic.population.oracle_score` reaches AUC ~0.91 on random
    #: verification pairs (~0.81 with same-gender negatives).
    #: Probability that a voice's accent shows the identity's own nationality
    #: (otherwise a uniformly drawn other one). 1 = always, 0 = never.
    coupling_nationality: float = 0.5
    #: Probability that a voice sounds the identity's own age group.
    coupling_age: float = 0.6
    #: Correlation between a continuous trait as seen in the face and as heard
    #: in the voice.
    coupling_traits: float = 0.4
    #: Fractions of identities in train / val / test (VoxCeleb1: 901/100/250).
    split_fractions: tuple[float, float, float] = (0.72, 0.08, 0.20)
    #: Per-clip background-noise SNR range in dB.
    snr_db: tuple[float, float] = (10.0, 30.0)
    #: Parallel worker processes for generation.
    workers: int = 2
    #: Languages every identity speaks (a bilingual population, as in MAV-Celeb): each gets
    #: ``videos_per_identity`` videos of its own, with the same voice and an accent from the
    #: nationality in each, and every clip records its language. Empty: the English-only
    #: population (its files unchanged by this setting's existence).
    languages: tuple[SpokenLanguage, ...] = ()


@dataclass
class FaceConfig:
    """Face preprocessing: MTCNN detection and 5-landmark alignment."""

    #: Side of the aligned square crop (the paper uses 256).
    size: int = 256
    #: What to do when MTCNN finds no face: "fallback" takes a centre crop and
    #: flags it in the report; "skip" drops the image with a recorded reason.
    no_face: str = "fallback"
    #: Smallest face MTCNN looks for, in pixels.
    min_face_size: int = 20
    #: Images per MTCNN call.
    batch_size: int = 16


@dataclass
class VoiceConfig:
    """Voice preprocessing: resampling, energy VAD and spectrogram."""

    sample_rate: int = 16000
    #: Short-time-energy VAD: frame length and overlap between frames.
    vad_window_ms: float = 25.0
    vad_overlap: float = 0.5
    #: Frames whose energy lies more than this many dB below the utterance's
    #: loudest frame are dropped before the spectrogram is taken.
    vad_threshold_db: float = 35.0
    #: Clips shorter than this after VAD are skipped (reason recorded).
    min_seconds: float = 0.5
    #: Spectrogram: window and hop in milliseconds and the FFT size.
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    #: Highest frequency kept, in Hz (0 = up to the Nyquist frequency). Pitch,
    #: its harmonics and the formants that carry a speaker lie below ~4 kHz.
    max_hz: float = 0.0
    #: Frequency rows: 0 keeps the linear FFT bins; n > 0 pools them into n
    #: mel bands (finer at low frequencies, where the pitch harmonics are).
    n_mels: int = 0
    #: log(1 + magnitude) before normalisation; False keeps plain magnitude.
    log_compress: bool = True
    #: "bin": every frequency row standardised over time (VGGVox; removes the
    #: channel's colouring, but also the speaker's long-term spectral shape);
    #: "utterance": one mean and standard deviation for the whole spectrogram.
    normalise: str = "bin"

    @property
    def frequency_rows(self) -> int:
        """Rows of the spectrograms this configuration makes."""
        if self.n_mels:
            return self.n_mels
        bins = self.n_fft // 2 + 1
        if self.max_hz:
            bins = min(bins, int(self.max_hz * self.n_fft / self.sample_rate) + 1)
        return bins


@dataclass
class PreprocessConfig:
    """Shared settings of the preprocessing stage."""

    #: Worker processes for voices (faces run batched MTCNN in the main
    #: process; torch stays single-threaded there, which is faster on CPU).
    workers: int = 2


@dataclass
class LoopConfig:
    """Settings of the one training loop (:func:`vfcross.training.train`)."""

    epochs: int = 10
    #: "adam" or "sgd" (momentum 0.9).
    optimizer: str = "adam"
    lr: float = 1e-3
    #: Exponential learning-rate decay per epoch (1.0 = constant).
    lr_decay: float = 0.95
    weight_decay: float = 0.0
    seed: int = 0
    #: Mixed precision: float16 on CUDA, bfloat16 on CPUs with native bfloat16
    #: arithmetic, float32 elsewhere (see vfcross.training.autocast_dtype).
    amp: bool = True
    #: Cap on batches per epoch (0 = the whole epoch); smoke runs use it.
    max_batches_per_epoch: int = 0
    #: Validate after every this many epochs (and always after the last).
    validate_every: int = 1
    #: A validation number to maximise (e.g. "val_auc"): the run then keeps
    #: the objective of the epoch where it was highest (``best.pt``), and the
    #: later stages use that one. "" keeps the last epoch's.
    select_best: str = ""


@dataclass
class BackboneConfig:
    """The single-stream network (or its dual-stream baseline) and its training."""

    #: "single" (one InceptionResNet-V1 for both modalities) or "dual".
    architecture: str = "single"
    #: Side of the square backbone input (faces are resized, spectrograms too).
    input_size: int = 96
    #: How a spectrogram enters the backbone; "image" = resize the 1xFxT crop
    #: to input_size x input_size and replicate it to 3 channels (paper).
    spectrogram_input: str = "image"
    #: Training voice input: a random crop of this many spectrogram frames.
    #: At test time a whole utterance is embedded as the mean of the
    #: embeddings of crops of this length (half overlapping), re-normalised.
    voice_crop_frames: int = 200
    dropout: float = 0.2
    #: A batch holds P identities, each with K faces and K voices. Many
    #: identities per step matter more than many samples per identity: each
    #: identity's classifier row and center are updated only when it is in a
    #: batch (on the synthetic default, P=24, K=1 reached validation AUC 0.69
    #: after 135 steps where P=8, K=2 was still at chance).
    identities_per_batch: int = 24
    samples_per_identity: int = 1
    #: Cross-modal center loss: weight lambda and center learning rate alpha.
    center_weight: float = 1.0
    center_lr: float = 0.5
    #: "mean" (divide by batch size, as Wen et al.'s code) or "sum" (formula).
    center_reduction: str = "mean"
    #: Fraction of each training identity's samples (per modality) held out
    #: to measure identification accuracy during training.
    holdout_fraction: float = 0.15
    #: Batches per epoch = ceil(train identities / P) * epoch_repeats.
    epoch_repeats: int = 1
    #: Training seeds of the single- and the dual-stream backbone compared in
    #: notebook 05; the run of ``loop.seed`` is the one every later stage uses.
    seeds: tuple[int, ...] = (0,)
    loop: LoopConfig = field(default_factory=LoopConfig)


@dataclass
class FusionConfig:
    """Fusion + orthogonal projection loss on the backbone's embeddings."""

    #: Dimension d of the projections u, v and the fused I.
    dim: int = 128
    #: "gated" (attention gate, the paper), "linear" (one learned scalar) or
    #: "none" (no fusion: the losses see u and v themselves; Table 6 row a).
    fusion: str = "gated"
    #: "ce+opl" (the paper), "ce" (Table 6 row b) or "opl" (row c).
    loss: str = "ce+opl"
    #: Weight alpha of the orthogonal projection loss in "ce+opl".
    alpha: float = 1.0
    batch_size: int = 128
    #: Training seeds of every fusion variant (notebooks 03 and 05 train one
    #: model per seed); the run of ``loop.seed`` is the one evaluated in notebook 04.
    seeds: tuple[int, ...] = (0, 1, 2)
    #: Paper: Adam, lr 1e-5 with exponential decay, 100 epochs.
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=100, lr=1e-5, lr_decay=0.98))


#: Table 6 of the paper: each ablation is a change of the fusion configuration (the one
#: model and the one loop), named here once; the last is the full model.
TABLE6_VARIANTS: dict[str, dict[str, str]] = {
    "single stream + FOP loss, no fusion": {"fusion": "none", "loss": "ce+opl"},
    "+ fusion, CE only": {"fusion": "gated", "loss": "ce"},
    "+ fusion, OPL (cosine) only": {"fusion": "gated", "loss": "opl"},
    "full model (fusion + CE + OPL)": {"fusion": "gated", "loss": "ce+opl"},
}
#: The full model's name among the variants (notebook 03 trains it; Table 6's reference row).
FULL_MODEL = list(TABLE6_VARIANTS)[-1]


@dataclass
class EvalConfig:
    """Test-time protocols generated from the manifest (see vfcross.evaluation.protocols)."""

    seed: int = 0
    #: Folder of the official VoxCeleb1 protocol files (Learnable-PINs verification lists,
    #: 1:2 matching lists, 20k retrieval galleries): when set, they are scored instead of
    #: protocols generated from the split (see vfcross.evaluation.registry).
    lists: str = ""
    #: Verification pairs per list (random, G, N, A, GNA), half positive.
    n_pairs: int = 10000
    #: 1:N matching trials per direction (galleries nested for N = 2..10).
    n_trials: int = 2000
    #: Bootstrap resamples for every 95% confidence interval.
    n_boot: int = 1000
    split: str = "test"


def _bilingual_population() -> SynthConfig:
    """The default bilingual population of notebook 06: small, so the FAME protocol costs about 90 s on 2 cores."""
    return SynthConfig(identities=96, videos_per_identity=1, clips_per_video=2, faces_per_video=1, image_size=128,
                       split_fractions=(0.6, 0.1, 0.3), languages=("English", "German"))


@dataclass
class MultilingualConfig:
    """Notebook 06: the FAME protocol (train on one language's clips, verify on the heard and the unheard one).

    It runs on its own data in ``<work_dir>/multilingual``: the bilingual
    synthetic population ``synth`` or, when ``mavceleb_root`` is set, a
    MAV-Celeb version folder. Everything else (preprocessing, the backbone
    and fusion settings, the bootstrap) is the run's own configuration; the
    training lengths are set here, as the notebook trains one backbone (and
    fusion) per language within its time budget.
    """

    #: The bilingual synthetic population (English and German, as MAV-Celeb v3).
    synth: SynthConfig = field(default_factory=_bilingual_population)
    #: "per_language": a backbone trained from scratch on each language's clips (the protocol in full;
    #: the paper preset). "shared": notebook 02's backbone (``<work_dir>/runs/backbone-single``,
    #: trained on the English-only main population, identities disjoint from these) embeds both
    #: languages, and only the fusion stage is trained per language, as the FAME baseline trains
    #: FOP per language on fixed feature extractors; a backbone from scratch does not learn within
    #: the default preset's budget (10 epochs on 57 identities stayed at chance). Without
    #: notebook 02's run, "shared" falls back to "per_language".
    backbone: MultilingualBackbone = "shared"
    #: Backbone epochs per training language when trained per language (0 = ``backbone.loop.epochs``).
    backbone_epochs: int = 0
    #: Train the fusion stage per language and score its projections u, v;
    #: False scores the backbone's own embeddings.
    fusion: bool = True
    #: Fusion epochs per training language (0 = ``fusion.loop.epochs``).
    fusion_epochs: int = 0
    #: Verification pairs per (training, test) language pair, half positive.
    n_pairs: int = 2000
    #: A MAV-Celeb version folder (``voices/``, ``faces/``) to run the protocol on instead of
    #: the synthetic population; see vfcross.data.mavceleb.
    mavceleb_root: str = ""
    #: Its list folder (``<Language>_test.txt`` trial lists: submission files are written for
    #: them); empty looks for ``<root>_lists`` and ``<root>/../<name>_lists``.
    mavceleb_lists: str = ""
    #: Its identity split (``identity_splits.txt`` format, names = id folders); empty draws one
    #: with ``split_fractions`` and ``split_seed`` (MAV-Celeb's own test identities are unlabelled).
    mavceleb_splits: str = ""
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0


@dataclass
class RunConfig:
    """Everything one run needs; presets fill it in, overrides adjust it."""

    preset: str = "default"
    #: Where generated data, caches and checkpoints go.
    work_dir: str = "work"
    #: Dataset root in the VoxCeleb1 layout; empty means the synthetic
    #: population under ``work_dir``.
    data_root: str = ""
    #: Identity-split file (``identity_splits.txt`` format); empty means the
    #: one inside ``data_root`` if present.
    splits_file: str = ""
    synth: SynthConfig = field(default_factory=SynthConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    multilingual: MultilingualConfig = field(default_factory=MultilingualConfig)

    @property
    def dataset_root(self) -> Path:
        """The dataset to read: ``data_root`` or the generated population."""
        if self.data_root:
            return Path(self.data_root)
        s = self.synth
        return Path(self.work_dir) / f"synth-n{s.identities}-s{s.seed}"

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


PRESETS = ("paper", "default", "smoke")


def preset(name: str) -> RunConfig:
    """Return a fresh configuration for one of :data:`PRESETS`."""
    if name == "paper":
        # 256x256 input, batch 45 (45 identities x one face and one voice), lambda = 1, dropout as
        # facenet-pytorch. The paper does not state the backbone's epochs or learning rate: ours.
        return RunConfig(preset="paper", voice=VoiceConfig(log_compress=False),
                         backbone=BackboneConfig(input_size=256, identities_per_batch=45, samples_per_identity=1,
                                                 dropout=0.6, loop=LoopConfig(epochs=50, lr=1e-3, lr_decay=0.95)),
                         multilingual=MultilingualConfig(
                             synth=SynthConfig(languages=("English", "German")), backbone="per_language",
                             n_pairs=10000))
    if name == "default":
        # Sized so that `make reproduce` takes about 10 minutes on 2 CPU cores; every departure from the
        # paper is listed, with its reason, in the README ("The default preset and the paper") and measured
        # in docs/experiments.md.
        return RunConfig(preset="default", face=FaceConfig(size=128), voice=VoiceConfig(max_hz=4000.0),
                         backbone=BackboneConfig(input_size=80, loop=LoopConfig(epochs=20, validate_every=5)),
                         fusion=FusionConfig(loop=LoopConfig(epochs=40, lr=3e-4, lr_decay=0.98,
                                                             select_best="val_auc")))
    if name == "smoke":
        return RunConfig(
            preset="smoke",
            synth=SynthConfig(identities=12, videos_per_identity=2, clips_per_video=2, faces_per_video=2,
                              image_size=128, split_fractions=(0.5, 0.25, 0.25)),
            face=FaceConfig(size=96),
            backbone=BackboneConfig(input_size=75, voice_crop_frames=100, identities_per_batch=3,
                                    samples_per_identity=2, loop=LoopConfig(epochs=1, max_batches_per_epoch=2)),
            fusion=FusionConfig(dim=32, batch_size=16, seeds=(0, 1),
                                loop=LoopConfig(epochs=3, lr=1e-3, select_best="val_auc")),
            eval=EvalConfig(n_pairs=200, n_trials=40, n_boot=50),
            multilingual=MultilingualConfig(
                synth=SynthConfig(identities=12, videos_per_identity=1, clips_per_video=2, faces_per_video=1,
                                  image_size=128, split_fractions=(0.5, 0.25, 0.25), languages=("English", "German")),
                n_pairs=200),
        )
    raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")


def to_dict(cfg: Any) -> dict:
    """The configuration as plain JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``data``, recursing into nested configs.

    Unknown keys are an error rather than silently ignored, so a typo in a
    saved or overridden configuration cannot pass unnoticed.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{cls.__name__}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Convert JSON data ``value`` to the annotated type ``hint``."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]: any length
            return tuple(_coerce(args[0], v, where) for v in value)
        return tuple(_coerce(t, v, where) for t, v in zip(args, value, strict=True))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise TypeError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise TypeError(f"{where}: expected int, got {value!r}")
    return value


def override(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """Return a copy of ``cfg`` with dotted-key ``changes`` applied and type-checked."""
    data = to_dict(cfg)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if part not in node or not isinstance(node[part], dict):
                raise KeyError(f"no configuration section {dotted!r}")
            node = node[part]
        if leaf not in node:
            raise KeyError(f"no configuration field {dotted!r}")
        node[leaf] = value
    return from_dict(RunConfig, data)


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
    """Read a configuration written by :func:`save_config`."""
    return from_dict(RunConfig, json.loads(Path(path).read_text()))
