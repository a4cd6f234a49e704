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

Every choice is a ``Literal`` type defined here once (:data:`Architecture`,
:data:`Fusion`, ...); the modules that act on a choice take their allowed
values from these types. Every field is validated when its dataclass is built
(types, choices and ranges, in ``__post_init__``), so a bad value, whether
from code, a saved file or ``--set``, fails at once with a
:class:`ConfigError` naming the dotted key and what is allowed, before any
work starts.

Why the check is written here and not pydantic's (measured with pydantic
2.14.4 on a prototype of these sections): pydantic would replace about 100
lines (the type check, the coercion of saved JSON and ``--set``), but adds an
11 MB dependency, makes importing the configuration about 110 ms instead of
33 ms, and reports a range check of ``__post_init__`` inside a multi-line
``ValidationError``, which every caller would have to unwrap to keep errors to
one line naming the key; the stages also build and copy these sections as
plain dataclasses (``dataclasses.replace``). An annotation the check here does
not know is refused, not passed (:func:`_type_problem`).
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

#: The choices of the configuration, one definition each.
PresetName = Literal["paper", "default", "smoke"]
#: Identity splits of the Learnable-PINs split file (codes 1, 2, 3, 4).
Split = Literal["train", "val", "seen_heard", "test"]
#: What happens to an image in which MTCNN finds no face.
NoFace = Literal["skip", "fallback"]
#: How the cache stores an aligned face crop: exactly (WebP lossless) or as JPEG at ``face.jpeg_quality``.
FaceStorage = Literal["lossless", "jpeg"]
#: How the cache stores a clip: its float16 spectrogram, or its speech as 16-bit FLAC (spectrogram made when loaded).
VoiceStorage = Literal["spectrogram", "audio"]
Architecture = Literal["single", "dual"]
#: How a spectrogram enters the backbone (see :mod:`vfcross.backbone.inception`).
SpectrogramInput = Literal["image"]
#: How a spectrogram is standardised: per frequency row ("bin", VGGVox) or as a whole.
SpectrogramNormalisation = Literal["bin", "utterance"]
CenterReduction = Literal["mean", "sum"]
#: What the cross-modal center loss pulls to the centers: the backbone's features f (the paper's
#: formula) or their L2-normalised copies (the embeddings compared at test time).
CenterInput = Literal["features", "normalised"]
Optimizer = Literal["adam", "sgd"]
#: What one backbone epoch passes over: every training identity once, or every training voice once.
EpochUnit = Literal["identities", "voices"]
#: The learning rate over epochs: ``lr * lr_decay**epoch``, or a cosine from ``lr`` to ``lr_min`` at the last epoch.
LrSchedule = Literal["exponential", "cosine"]
#: The fusion of face and voice projections (see :mod:`vfcross.fusion.model`).
Fusion = Literal["gated", "linear", "none"]
#: The loss of the fusion stage: the paper's "ce+opl" or one of its parts (Table 6).
FusionLoss = Literal["ce+opl", "ce", "opl"]
#: Where notebook 06's models get their backbone: notebook 02's (one for both languages; only the fusion
#: stage is trained per language) or one trained from scratch per language.
MultilingualBackbone = Literal["shared", "per_language"]
#: MAV-Celeb versions (English with Urdu, Hindi, German): they name the FAME submission files.
MavcelebVersion = Literal["v1", "v2", "v3"]
#: Languages the synthetic voices speak (vfcross.data.synthetic.text.LANGUAGES), named as
#: MAV-Celeb names its language folders.
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
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.problem)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a configuration dataclass."""
    return typing.get_type_hints(cls)


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not have type ``hint`` (``None`` when it does)."""
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        return None if value in allowed else \
            f"{value!r} is not allowed; choose one of {', '.join(repr(a) for a in allowed)}"
    if typing.get_origin(hint) is tuple:
        kinds = typing.get_args(hint)
        if len(kinds) == 2 and kinds[1] is Ellipsis:  # tuple[int, ...]: any length
            if not isinstance(value, tuple):
                return f"expected a list of values, got {value!r}"
            kinds = (kinds[0],) * len(value)
        if not isinstance(value, tuple) or len(value) != len(kinds):
            return f"expected {len(kinds)} values, got {value!r}"
        return next((p for p in map(_type_problem, kinds, value) if p), None)
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, hint) else f"expected a {hint.__name__} section, got {value!r}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"expected a number, got {value!r}"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else \
            f"expected an integer, got {value!r}"
    if hint in (str, bool):
        return None if isinstance(value, hint) else f"expected {hint.__name__}, got {value!r}"
    return f"its annotation {hint!r} is not one the configuration checks (a Literal, tuple, section, " \
           "float, int, str or bool): give it one, or teach vfcross.config._type_problem to check it"


def _check_types(obj: Any) -> None:
    """Raise :class:`ConfigError` for the first field of ``obj`` whose value has the wrong type."""
    for f in dataclasses.fields(obj):
        problem = _type_problem(_hints(type(obj))[f.name], getattr(obj, f.name))
        if problem:
            raise ConfigError(f.name, problem)


def _at_least(obj: Any, name: str, low: float, why: str = "") -> None:
    """Require ``obj.name >= low``."""
    value = getattr(obj, name)
    if value < low:
        raise ConfigError(name, f"must be at least {low}{why}, got {value!r}")


def _check_fractions(obj: Any) -> None:
    """Require ``obj.split_fractions`` to be non-negative fractions (train, val, test) summing to 1."""
    if min(obj.split_fractions) < 0 or not math.isclose(sum(obj.split_fractions), 1.0, abs_tol=1e-6):
        raise ConfigError("split_fractions", f"must be three non-negative fractions summing to 1, "
                                             f"got {obj.split_fractions!r}")


def _check_seeds(obj: Any) -> None:
    """Require a non-empty ``obj.seeds`` of distinct non-negative seeds."""
    seeds = obj.seeds
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"must be one or more distinct non-negative seeds, got {seeds!r}")


def _between(obj: Any, name: str, low: float, high: float, high_open: bool = False,
             low_open: bool = False) -> None:
    """Require ``low <= obj.name <= high`` (either end open on request)."""
    value = getattr(obj, name)
    if value < low or value > high or (high_open and value == high) or (low_open and value == low):
        span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(name, f"must lie in {span}, got {value!r}")


@dataclass
class SynthConfig:
    """The embedded synthetic population (see :mod:`vfcross.data.synthetic.writer`)."""

    identities: int = 300
    seed: int = 0
    videos_per_identity: int = 3
    clips_per_video: int = 2
    faces_per_video: int = 3
    #: The samples of every validation and test identity, apart from the training identities'
    #: (0 = the training identities' value): videos, and faces and clips per video. Evaluation
    #: identities are rendered, preprocessed and embedded but never trained on, and the identity
    #: is the unit of every interval, so many of them with few samples each narrow the intervals
    #: at little cost. A training identity's files do not depend on these settings.
    eval_videos_per_identity: int = 0
    eval_faces_per_video: int = 0
    eval_clips_per_video: int = 0
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

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("identities", "videos_per_identity", "clips_per_video", "faces_per_video", "workers"):
            _at_least(self, name, 1)
        for name in ("eval_videos_per_identity", "eval_faces_per_video", "eval_clips_per_video"):
            _at_least(self, name, 0, " (0 = as the training identities)")
        _at_least(self, "image_size", 32)
        for name in ("coupling_nationality", "coupling_age", "coupling_traits"):
            _between(self, name, 0.0, 1.0)
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

    #: Side of the aligned square crop (the paper uses 256).
    size: int = 256
    #: What to do when MTCNN finds no face: "skip" (default) leaves the image
    #: out of training and evaluation, counted in the report as "no face
    #: detected"; "fallback" keeps a centre crop of it, flagged in the report
    #: and in the manifest's ``fallback`` column (opt in: such crops are often
    #: not faces at all).
    no_face: NoFace = "skip"
    #: Smallest face MTCNN looks for, in pixels.
    min_face_size: int = 20
    #: Most images per MTCNN call.
    batch_size: int = 16
    #: Most pixels per MTCNN call (its memory grows with the pixels it sees,
    #: about 50 MB per megapixel on CPU). An image larger than this on its own
    #: is detected on a downscaled copy; its crop still comes from the full image.
    batch_pixels: int = 4_000_000
    #: MTCNN looks at each image scaled to this many pixels on its longer side
    #: and padded to a square, so that images of any size share its batches
    #: (0 = at full size, batched by size); faces below ``min_face_size`` in
    #: that copy are missed, and the crop comes from the full image. Right for
    #: face-track frames (VoxCeleb1's are mostly face); for photos with small
    #: faces set 0. See docs/preprocessing.md.
    detect_size: int = 160
    #: Cached crops: "lossless" (exact) or "jpeg" (about a quarter of the bytes).
    storage: FaceStorage = "lossless"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("size", "min_face_size", "batch_size"):
            _at_least(self, name, 1)
        _at_least(self, "batch_pixels", 10_000)
        if self.detect_size and self.detect_size < self.min_face_size:
            raise ConfigError("detect_size", f"must be 0 or at least min_face_size = {self.min_face_size}, "
                                             f"got {self.detect_size!r}")
        _between(self, "jpeg_quality", 1, 100)


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
    normalise: SpectrogramNormalisation = "bin"
    #: Longest speech kept per clip, in seconds after VAD (0 = no limit). A
    #: longer clip keeps its first ``max_seconds`` of speech, and the report
    #: notes it; this bounds the memory and time of very long recordings.
    max_seconds: float = 0.0
    #: Cached clips: "spectrogram" (float16, read as is) or "audio" (the speech
    #: as 16-bit FLAC, about a third of the bytes at 257 rows; the spectrogram
    #: is made when loaded, from the speech rounded to 16 bits).
    storage: VoiceStorage = "spectrogram"

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("sample_rate", "n_fft"):
            _at_least(self, name, 1)
        for name in ("vad_window_ms", "vad_threshold_db", "win_ms", "hop_ms"):
            _between(self, name, 0.0, math.inf, low_open=True)
        _between(self, "vad_overlap", 0.0, 1.0, high_open=True)
        for name in ("min_seconds", "max_seconds", "n_mels"):
            _at_least(self, name, 0)
        _between(self, "max_hz", 0.0, self.sample_rate / 2)
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
        if self.max_hz:
            bins = min(bins, int(self.max_hz * self.n_fft / self.sample_rate) + 1)
        return bins


@dataclass
class PreprocessConfig:
    """Shared settings of the preprocessing stage."""

    #: Processes that make face crops and spectrograms: the calling one plus
    #: ``workers - 1`` spawned helpers (one torch thread each, which is faster
    #: on CPU than threads). With CUDA, faces run on the GPU in the calling
    #: process and the helpers make the spectrograms.
    workers: int = 2

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, "workers", 1)


@dataclass
class LoopConfig:
    """Settings of the one training loop (:func:`vfcross.training.train`)."""

    epochs: int = 10
    #: "adam" or "sgd" (momentum 0.9).
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    #: Exponential learning-rate decay per epoch (1.0 = constant).
    lr_decay: float = 0.95
    #: "exponential" (``lr_decay``) or "cosine" (``lr`` to ``lr_min`` at the last epoch, so ``epochs`` is recorded).
    lr_schedule: LrSchedule = "exponential"
    lr_min: float = 0.0
    #: Average the weights and buffers (BatchNorm statistics too) over every step of the last this many epochs
    #: (0 = off): the average is the model validated, kept and handed on. ``average_decay`` 0 weighs the steps
    #: equally (SWA); d > 0 is an exponential moving average (EMA) of decay d per step.
    average_epochs: int = 0
    average_decay: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    #: Mixed precision: bfloat16 on CUDA cards and CPUs with native bfloat16, float16 with loss
    #: scaling on older CUDA cards, float32 elsewhere (see vfcross.training.autocast_dtype).
    amp: bool = True
    #: Cap on batches per epoch (0 = the whole epoch); smoke runs use it.
    max_batches_per_epoch: int = 0
    #: Validate after every this many epochs (and always after the last); the run's
    #: checkpoint is written there too, so an interrupted run resumes from its last validated epoch.
    validate_every: int = 1
    #: A validation number to maximise (e.g. "val_auc"): the run then keeps
    #: the objective of the epoch where it was highest (``best.pt``), and the
    #: later stages use that one. "" keeps the last epoch's.
    select_best: str = ""
    #: Validation subset: at most this many voices and faces of each identity that validation embeds
    #: or scores (the validation identities; the backbone's held-out samples too), drawn once with
    #: a fixed seed (vfcross.backbone.sampler.subset_mask); 0 = all of them.
    val_voices: int = 0
    val_faces: int = 0
    #: DataLoader worker processes that load the batches (0: the training process itself).
    workers: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("epochs", "validate_every"):
            _at_least(self, name, 1)
        for name in ("seed", "weight_decay", "max_batches_per_epoch", "val_voices", "val_faces", "workers"):
            _at_least(self, name, 0)
        _between(self, "lr", 0.0, math.inf, low_open=True)
        _between(self, "lr_decay", 0.0, 1.0, low_open=True)
        _between(self, "lr_min", 0.0, self.lr)
        _between(self, "average_epochs", 0, self.epochs)
        _between(self, "average_decay", 0.0, 1.0, high_open=True)


@dataclass
class BackboneConfig:
    """The single-stream network (or its dual-stream baseline) and its training."""

    #: "single" (one InceptionResNet-V1 for both modalities) or "dual".
    architecture: Architecture = "single"
    #: Side of the square backbone input (faces are resized, spectrograms too).
    input_size: int = 96
    #: How a spectrogram enters the backbone; "image" = resize the 1xFxT crop
    #: to input_size x input_size and replicate it to 3 channels (paper).
    spectrogram_input: SpectrogramInput = "image"
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
    center_reduction: CenterReduction = "mean"
    #: "features" (the paper: the 512-d features f) or "normalised" (f / ||f||,
    #: what every run before this setting used; saved configs without it keep it).
    center_input: CenterInput = "normalised"
    #: Fraction of each training identity's samples (per modality) held out
    #: to measure identification accuracy during training.
    holdout_fraction: float = 0.15
    #: What an epoch passes over: "identities" (each training identity once, ``epoch_repeats``
    #: times: ceil(identities / P) * epoch_repeats batches) or "voices" (each training voice once,
    #: with as many faces: see vfcross.backbone.sampler.voice_pass_batches).
    epoch: EpochUnit = "identities"
    epoch_repeats: int = 1
    #: Most images (face crops or spectrogram crops) per forward pass when
    #: embedding; a long utterance is embedded in chunks of this many crops,
    #: which bounds the memory whatever its length.
    embed_chunk_crops: int = 64
    #: Training seeds of the single- and the dual-stream backbone (notebooks 02 and 05). A seed
    #: is a replicate of the whole method: fusion seed s is trained on backbone seed s, so every
    #: ``fusion.seeds`` must be one of these. The run of ``loop.seed`` is the one notebook 04 evaluates.
    seeds: tuple[int, ...] = (0, 1, 2)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, "input_size", MIN_INPUT_SIZE, " (InceptionResNet-V1's smallest input)")
        _at_least(self, "voice_crop_frames", 2)
        _at_least(self, "identities_per_batch", 2, " (a batch must contrast identities)")
        for name in ("samples_per_identity", "epoch_repeats", "embed_chunk_crops"):
            _at_least(self, name, 1)
        _between(self, "dropout", 0.0, 1.0, high_open=True)
        _at_least(self, "center_weight", 0.0)
        _between(self, "center_lr", 0.0, 1.0)
        _between(self, "holdout_fraction", 0.0, 1.0, high_open=True)
        _check_seeds(self)


@dataclass
class FusionConfig:
    """Fusion + orthogonal projection loss on the backbone's embeddings."""

    #: Dimension d of the projections u, v and the fused I.
    dim: int = 128
    #: "gated" (attention gate, the paper), "linear" (one learned scalar) or
    #: "none" (no fusion: the losses see u and v themselves; Table 6 row a).
    fusion: Fusion = "gated"
    #: "ce+opl" (the paper), "ce" (Table 6 row b) or "opl" (row c).
    loss: FusionLoss = "ce+opl"
    #: Weight alpha of the orthogonal projection loss in "ce+opl".
    alpha: float = 1.0
    batch_size: int = 128
    #: Training seeds of every fusion variant (notebooks 03 and 05 train one model per seed, seed s
    #: on backbone seed s); the run of ``loop.seed`` is the one evaluated in notebook 04.
    seeds: tuple[int, ...] = (0, 1, 2)
    #: Paper: Adam, lr 1e-5 with exponential decay, 100 epochs.
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=100, lr=1e-5, lr_decay=0.98))

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, "dim", 1)
        _at_least(self, "batch_size", 2, " (the orthogonal projection loss compares pairs)")
        _at_least(self, "alpha", 0.0)
        _check_seeds(self)


#: Table 6 of the paper, by name: each ablation is a change of the fusion configuration (the one
#: model and the one loop). Code names a variant by its key, never by its position (the order
#: is only the order of the table's rows); FULL_MODEL is the full model (notebook 03 trains it).
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
    #: Folder of the official VoxCeleb1 protocol files (Learnable-PINs verification lists,
    #: 1:2 matching lists, 20k retrieval galleries): when set, they are scored instead of
    #: protocols generated from the split (see vfcross.evaluation.protocols).
    lists: str = ""
    #: Verification pairs per generated list (random, G, N, A, GNA): 0 scores every voice-face pair
    #: the list's restriction allows; a positive number samples that many without replacement
    #: (half positive where possible), and the protocol's label says so.
    n_pairs: int = 0
    #: 1:N matching trials per direction (galleries nested for N = 2..10).
    n_trials: int = 2000
    #: Bootstrap resamples for every 95% confidence interval.
    n_boot: int = 1000
    split: Split = "test"
    #: Memory a list's scores may take above the embeddings: larger every-pair lists are scored in blocks.
    memory_gb: float = 2.0

    def __post_init__(self) -> None:
        _check_types(self)
        _at_least(self, "seed", 0)
        _at_least(self, "n_pairs", 0)
        for name in ("n_trials", "n_boot"):
            _at_least(self, name, 1)
        _between(self, "memory_gb", 0.0, math.inf, low_open=True)


def _bilingual_population() -> SynthConfig:
    """The default bilingual population of notebook 06: small, so the FAME protocol takes under a minute on 2 cores.

    Its time in the committed default run: ``wall_time_s["06_multilingual"]`` in reports/summary.json.
    """
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
    #: Its MAV-Celeb version, which names the submission files (``sub_score_<version>_...``, as the
    #: organisers' computeScore.py of mavceleb/mavceleb_baseline names them; see vfcross.evaluation.fame).
    mavceleb_version: MavcelebVersion = "v3"
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        if len(self.synth.languages) != 2:
            raise ConfigError("synth.languages", f"the FAME protocol compares two languages, got "
                                                 f"{list(self.synth.languages)}")
        for name in ("backbone_epochs", "fusion_epochs", "split_seed"):
            _at_least(self, name, 0)
        if self.n_pairs < 2 or self.n_pairs % 2:
            raise ConfigError("n_pairs", f"must be a positive even number (half positive pairs), got {self.n_pairs!r}")
        _check_fractions(self)


@dataclass
class RunConfig:
    """Everything one run needs; presets fill it in, overrides adjust it."""

    preset: PresetName = "default"
    #: Where generated data, caches and checkpoints go.
    work_dir: str = "work"
    #: Dataset root in the VoxCeleb1 layout; empty means the synthetic
    #: population under ``work_dir``.
    data_root: str = ""
    #: Identity-split file (``identity_splits.txt`` format); empty means the
    #: one inside ``data_root`` if present.
    splits_file: str = ""
    #: Identities of the dataset that the split file does not list are an
    #: error (naming them); True leaves them out instead, each file recorded
    #: in the skip report with the reason.
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


PRESETS: tuple[str, ...] = choices(PresetName)


def preset(name: str) -> RunConfig:
    """Return a fresh configuration for one of :data:`PRESETS`."""
    if name == "paper":
        # 256x256 input, batch 45 (45 identities x one face and one voice), lambda = 1 on the formula's sum over
        # the features f, dropout as facenet-pytorch, float32 (the paper names no mixed precision). The paper does
        # not state the backbone's epochs or learning rate: ours, 20 passes over the training voices (README's
        # departures table). Validation on a fixed subset, the backbone's every 5 epochs and the fusion's every
        # 10 (neither selects an epoch here): under 10% of training (docs/training.md). It reports one run; we
        # keep 3 fusion seeds. The cache stores JPEG crops and FLAC speech, so that it takes less disk than VoxCeleb1.
        return RunConfig(preset="paper", face=FaceConfig(storage="jpeg"),
                         voice=VoiceConfig(log_compress=False, storage="audio"),
                         backbone=BackboneConfig(input_size=256, identities_per_batch=45, samples_per_identity=1,
                                                 dropout=0.6, center_reduction="sum", center_input="features",
                                                 epoch="voices",
                                                 loop=LoopConfig(epochs=20, lr=1e-3, lr_decay=0.9, amp=False,
                                                                 validate_every=5, val_voices=4, val_faces=8,
                                                                 workers=8)),
                         fusion=FusionConfig(loop=dataclasses.replace(FusionConfig().loop, amp=False, validate_every=10,
                                                                      val_voices=10, val_faces=10)),
                         multilingual=MultilingualConfig(
                             synth=SynthConfig(languages=("English", "German")), backbone="per_language",
                             n_pairs=10000))
    if name == "default":
        # Every departure from the paper is listed, with its reason, in the README ("The default preset and the
        # paper") and measured in docs/experiments.md. The population: the 216 training identities of 9 faces
        # and 6 voices each that the learning experiments tuned, and many cheap evaluation identities with few
        # samples each (84 val, 300 test, 2 faces + 2 voices each), because the identity is the unit of every
        # interval. Its seed 1 is one no tuning run used: the experiments ran on the development population
        # (300 identities, seed 0). Backbones: 25 epochs (at 20 the single stream was still learning; both are flat
        # from about 25 to 30), validated at 10, 20, 25 only (nothing is selected there; 4-5 s a validation).
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
    """Build dataclass ``cls`` from ``data``, recursing into nested configs.

    Unknown keys are an error rather than silently ignored, so a typo in a
    saved or overridden configuration cannot pass unnoticed. Every problem
    raises :class:`ConfigError` naming the dotted key (prefixed by ``where``).
    """
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(_join(where, unknown[0]),
                          f"no such setting; {cls.__name__} has {', '.join(names)}")
    kwargs = {key: _coerce(hints[key], value, _join(where, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within(where) from None


def _join(prefix: str, key: str) -> str:
    """Dotted key ``prefix.key`` (just ``key`` at the top)."""
    return f"{prefix}.{key}" if prefix else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Convert JSON data ``value`` to the annotated type ``hint``."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"expected a section (mapping), got {value!r}")
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        kinds = typing.get_args(hint)
        if len(kinds) == 2 and kinds[1] is Ellipsis:  # tuple[int, ...]: any length
            return tuple(_coerce(kinds[0], v, where) for v in value)
        if len(value) != len(kinds):
            raise ConfigError(where, f"expected {len(kinds)} values, got {value!r}")
        return tuple(_coerce(t, v, where) for t, v in zip(kinds, value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value  # the dataclass checks everything else when it is built


def override(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """Return a copy of ``cfg`` with dotted-key ``changes`` applied and validated.

    Raises :class:`ConfigError` naming the key for an unknown key, a value of
    the wrong type, a choice that does not exist or a value out of range.
    """
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
    """The value of ``--set dotted=text``, read as the type of the setting ``dotted`` names.

    A ``str`` setting or a choice keeps ``text`` as given (``data_root=123`` is the
    folder "123"); any other is read as JSON (``128``, ``true``, ``[0, 1]``). Text
    that is not JSON is passed on as it is, for the configuration's check to
    refuse in one line naming the key (``epochs=five``: expected an integer).
    """
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
