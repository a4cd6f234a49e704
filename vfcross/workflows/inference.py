"""A trained model as one object: load it, embed raw faces and voices, rank matches, export it.

A trained model is three things: the backbone run (the single-stream
network), the fusion run (the projections ``u`` and ``v``) and the
preprocessing settings (the ``face`` and ``voice`` sections of the
configuration) that prepared the training inputs. :func:`load` reads them
from any of

* a model file written by :func:`export` (one ``.safetensors`` file);
* a work folder holding ``runs/backbone-single`` and ``runs/fusion-full``
  (the notebooks' layout), or its ``runs/`` folder;
* a fusion run folder, whose backbone run is its sibling ``backbone-single``
  (or given explicitly);

and returns a :class:`VoiceFaceModel`. Its :meth:`~VoiceFaceModel.embed_faces`
and :meth:`~VoiceFaceModel.embed_voices` take raw files (or images and
waveforms) and prepare them exactly as training did, through the same code:
MTCNN detection and 5-landmark alignment (:mod:`vfcross.preprocess.faces`);
reading, 16 kHz mono, energy VAD and spectrogram
(:mod:`vfcross.preprocess.voices`); then the backbone's own input conversion
and test-time voice averaging (:mod:`vfcross.backbone`). They return the
test-time embeddings, ``u`` for faces and ``v`` for voices (L2-normalised),
so a voice and a face compare by the dot product (cosine similarity).

The model file is safetensors: the backbone objective's tensors under
``backbone.``, the fusion objective's under ``fusion.``, and string metadata
``format`` (:data:`FORMAT`), ``format_version`` (:data:`FORMAT_VERSION`),
``config`` (the run configuration as JSON, local paths removed),
``sources`` (JSON: SHA-256 of the checkpoints it came from) and
``trained_on`` (JSON: the identities each run trained and validated on, by split).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from PIL import Image

from vfcross.backbone.embedding import embed_face_batch, embed_rows, embed_utterances
from vfcross.backbone.inception import EMBEDDING_DIM
from vfcross.backbone.objective import BackboneObjective, backbone_from_state
from vfcross.backbone.sampler import face_batch
from vfcross.backbone.task import BACKBONE_RUN
from vfcross.config import RunConfig, from_dict, run_config, to_dict
from vfcross.fusion.model import FusionModel
from vfcross.fusion.task import FUSION_RUN, fusion_from_state, project
from vfcross.io import atomic_write, sha256_file
from vfcross.preprocess.cache import settings_hash
from vfcross.preprocess.faces import (
    FALLBACK_REASON,
    IMAGE_ERRORS,
    FaceDetector,
    crop_faces,
    describe_image_error,
    open_rgb,
    to_rgb,
)
from vfcross.preprocess.voices import process_voice
from vfcross.training import (
    CHECKPOINT,
    device,
    objective_state,
    stage_settings,
    recorded_identities,
    state_path,
)

#: The ``format`` metadata of a model file.
FORMAT = "vfcross-model"
#: Version of the model file layout; files of a later version are refused.
FORMAT_VERSION = 1
#: Face images per forward pass.
BATCH = 64
#: Utterances preprocessed at a time (their crops go through the network in
#: chunks of ``backbone.embed_chunk_crops``).
VOICE_BATCH = 16

#: A face: an image file's path, a PIL image or an (H, W[, 3]) uint8 array of a photo.
FaceInput = str | Path | Image.Image | np.ndarray
#: A voice: an audio file's path, a mono (or frames x channels) waveform at the
#: model's sample rate, or ``(waveform, sample_rate)``.
VoiceInput = str | Path | np.ndarray | tuple


class InputError(ValueError):
    """A face or voice a model cannot embed; its message is one line naming the file and the reason."""


class VoiceFaceModel:
    """A trained backbone + fusion with the preprocessing settings of their training."""

    def __init__(self, cfg: RunConfig, backbone: BackboneObjective, fusion: FusionModel, source: str,
                 sources: dict[str, str] | None = None, dev: str | torch.device | None = None,
                 trained_on: dict[str, dict[str, list[str]] | None] | None = None) -> None:
        """Wrap trained modules; :func:`load` is the usual way to get one. ``dev`` defaults to CUDA if present."""
        self.cfg = cfg
        #: Where the model was loaded from.
        self.source = source
        #: SHA-256 of the checkpoints the weights came from.
        self.sources = dict(sources or {})
        #: The identities each run ("backbone", "fusion") trained and validated on, by split (None: unrecorded).
        self.trained_on = dict(trained_on or {})
        self.device = torch.device(dev) if dev is not None else device()
        self.backbone = backbone.to(self.device).eval()
        self.fusion = fusion.to(self.device).eval()
        self._detector: FaceDetector | None = None

    @property
    def dim(self) -> int:
        """Dimension of the test-time embeddings ``u`` and ``v``."""
        return self.fusion.face_proj.out_features

    def __repr__(self) -> str:
        """Where the model came from and its main sizes."""
        b = self.cfg.backbone
        return (f"VoiceFaceModel({self.source!r}: {b.architecture} stream, input {b.input_size}, "
                f"d = {self.dim}, preset {self.cfg.preset!r})")

    # --- preprocessing -------------------------------------------------------------------------

    def face_crops(self, faces: Sequence[FaceInput]) -> list[np.ndarray]:
        """Aligned uint8 crops (size, size, 3) of ``faces``, as the preprocessing stage makes them.

        Raises :class:`InputError` for an unreadable image or one where MTCNN
        finds no face (a training run's centre-crop fallback is not used here:
        a user's photo without a detectable face has no meaningful embedding).
        """
        images = [_open_image(face, _name(face, i, "image")) for i, face in enumerate(faces)]
        crops = []
        for i, (crop, reason) in enumerate(crop_faces(images, self._face_detector())):
            if reason == FALLBACK_REASON:
                raise InputError(f"no face found in {_name(faces[i], i, 'image')}")
            crops.append(crop)
        return crops

    def spectrograms(self, voices: Sequence[VoiceInput]) -> list[np.ndarray]:
        """Spectrograms (F, T) of ``voices`` exactly as cached by the preprocessing stage (float16 values).

        Raises :class:`InputError` for unreadable audio or too little speech
        after VAD.
        """
        out = []
        for i, voice in enumerate(voices):
            name = _name(voice, i, "waveform")
            spec, reason = process_voice(_audio_source(voice, name, self.cfg.voice.sample_rate), self.cfg.voice)
            if spec is None:
                raise InputError(_voice_error(name, reason))
            out.append(spec.astype(np.float32))  # as load_spectrogram reads the cache
        return out

    # --- embeddings ----------------------------------------------------------------------------

    @torch.no_grad()
    def embed_faces(self, faces: Sequence[FaceInput], raw: bool = False) -> np.ndarray:
        """Test-time face embeddings ``u`` (N, d), L2-normalised, in input order.

        ``raw=True`` gives the backbone's L2-normalised 512-d embeddings instead.
        """
        faces = _as_list(faces)
        out = np.zeros((len(faces), EMBEDDING_DIM if raw else self.dim), dtype=np.float32)
        for start in range(0, len(faces), BATCH):
            crops = self.face_crops(faces[start:start + BATCH])
            vectors = embed_face_batch(self.backbone.net, face_batch(crops, self.cfg.backbone.input_size),
                                       self.device, amp=self.cfg.backbone.loop.amp)
            out[start:start + len(crops)] = vectors if raw else self._project(vectors, "face")
        return out

    @torch.no_grad()
    def embed_voices(self, voices: Sequence[VoiceInput], raw: bool = False) -> np.ndarray:
        """Test-time voice embeddings ``v`` (N, d), L2-normalised, in input order.

        A whole utterance is embedded as in evaluation: the mean of its
        half-overlapping training-length crops. ``raw=True`` gives the
        backbone's L2-normalised 512-d embeddings instead.
        """
        voices = _as_list(voices)
        out = np.zeros((len(voices), EMBEDDING_DIM if raw else self.dim), dtype=np.float32)
        for start in range(0, len(voices), VOICE_BATCH):
            specs = self.spectrograms(voices[start:start + VOICE_BATCH])
            vectors = embed_utterances(self.backbone.net, specs, self.cfg.backbone.voice_crop_frames, self.device,
                                       chunk=self.cfg.backbone.embed_chunk_crops, amp=self.cfg.backbone.loop.amp)
            out[start:start + len(specs)] = vectors if raw else self._project(vectors, "voice")
        return out

    def embed_preprocessed(self, rows: pd.DataFrame, raw: bool = False) -> np.ndarray:
        """Test-time embeddings of already preprocessed manifest rows (``modality``, ``cache_path``).

        The rows must come from preprocessing with this model's ``face`` and
        ``voice`` settings. ``raw=True`` gives the 512-d backbone embeddings.
        """
        vectors = embed_rows(self.backbone.net, rows, self.cfg.backbone, self.device, progress=False)
        return vectors if raw else project(self.fusion, vectors, rows, self.device)

    def _project(self, vectors: np.ndarray, modality: str) -> np.ndarray:
        """``u`` (faces) or ``v`` (voices) of backbone embeddings."""
        return self.fusion.embed(torch.from_numpy(vectors).to(self.device), modality).cpu().numpy()

    def _face_detector(self) -> FaceDetector:
        """MTCNN with this model's face settings, made on first use (its weights take a moment)."""
        if self._detector is None:
            self._detector = FaceDetector(self.cfg.face, device=str(self.device))
        return self._detector

    # --- export --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model to one safetensors file (see the module docstring); returns its path."""
        from safetensors.torch import save

        tensors = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        tensors |= {f"fusion.model.{k}": v for k, v in self.fusion.state_dict().items()}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                    "config": json.dumps(to_dict(self.cfg)), "sources": json.dumps(self.sources),
                    "trained_on": json.dumps(self.trained_on)}
        data = save(tensors, metadata=metadata)
        path = Path(path)
        atomic_write(path, lambda stream: stream.write(data))
        return path


def load(path: str | Path, dev: str | torch.device | None = None, backbone: str | Path | None = None
         ) -> VoiceFaceModel:
    """The trained model in ``path``: a model file, a work folder, its ``runs/`` or a fusion run folder.

    ``backbone`` names the backbone run folder when it is not where the
    layout puts it. ``dev`` defaults to CUDA when present, else the CPU.
    """
    path = Path(path)
    if path.is_file():
        if backbone is not None:
            raise ValueError("a model file already holds its backbone: drop the backbone argument")
        return _load_file(path, dev)
    backbone_run, fusion_run = find_runs(path, backbone)
    backbone_cfg, fusion_cfg = run_config(backbone_run), run_config(fusion_run)
    cfg = model_config(backbone_cfg, fusion_cfg)
    sources = {name: sha256_file(state_path(run)) for name, run in (("backbone", backbone_run), ("fusion", fusion_run))}
    # each run's config.json must describe the model its checkpoint holds
    backbone_state = objective_state(backbone_run, stage_settings("backbone", backbone_cfg.backbone))
    fusion_state = objective_state(fusion_run, stage_settings("fusion", fusion_cfg.fusion))
    trained_on = {"backbone": recorded_identities(backbone_run), "fusion": recorded_identities(fusion_run)}
    return VoiceFaceModel(cfg, backbone_from_state(backbone_state, cfg.backbone),
                          fusion_from_state(fusion_state, cfg.fusion), str(path), sources, dev, trained_on)


def export(source: str | Path, out: str | Path, backbone: str | Path | None = None) -> Path:
    """Write the trained model of ``source`` (see :func:`load`) to the one file ``out``."""
    return load(source, "cpu", backbone).save(out)


def find_runs(path: str | Path, backbone: str | Path | None = None) -> tuple[Path, Path]:
    """The (backbone, fusion) run folders of a work folder, its ``runs/`` or a fusion run folder."""
    path = Path(path)
    for runs in (path / "runs", path):
        if (runs / FUSION_RUN / CHECKPOINT).exists():
            return Path(backbone) if backbone else runs / BACKBONE_RUN, runs / FUSION_RUN
    if (path / CHECKPOINT).exists():
        if path.name.startswith("backbone-") and backbone is None:
            raise ValueError(f"{path} is a backbone run; a model needs its fusion run too: "
                             f"give the work folder or the fusion run folder")
        return Path(backbone) if backbone else path.parent / BACKBONE_RUN, path
    raise FileNotFoundError(f"no trained model in {path}: expected a model file from `vfcross export`, a work "
                            f"folder with runs/{BACKBONE_RUN} and runs/{FUSION_RUN}, or a fusion run folder")


def model_config(backbone_cfg: RunConfig, fusion_cfg: RunConfig) -> RunConfig:
    """One configuration for a model: the backbone run's, with the fusion run's ``fusion`` section.

    The two runs must agree on everything that shapes the inputs of the
    fusion stage (face and voice preprocessing, backbone input size and voice
    crop length); local paths are dropped, since a model file is shared.
    """
    b, f = backbone_cfg, fusion_cfg
    for section in ("face", "voice"):
        if settings_hash(getattr(b, section)) != settings_hash(getattr(f, section)):
            raise ValueError(f"the backbone and fusion runs were made with different {section} settings: "
                             f"{to_dict(getattr(b, section))} vs {to_dict(getattr(f, section))}")
    for key in ("input_size", "voice_crop_frames", "spectrogram_input"):
        if getattr(b.backbone, key) != getattr(f.backbone, key):
            raise ValueError(f"the backbone and fusion runs disagree on backbone.{key}: "
                             f"{getattr(b.backbone, key)!r} vs {getattr(f.backbone, key)!r}")
    return dataclasses.replace(b, fusion=f.fusion, work_dir=RunConfig.work_dir, data_root="", splits_file="")


def match(model: VoiceFaceModel, query: FaceInput | VoiceInput, candidates: Sequence, query_modality: str
          ) -> pd.DataFrame:
    """Candidates of the other modality ranked by cosine similarity to ``query``, best first.

    ``query_modality`` is ``"voice"`` (candidates are faces) or ``"face"``
    (candidates are voices). Returns columns ``rank`` (1 = best),
    ``candidate`` (its name) and ``similarity``; ties keep the input order.
    """
    if query_modality not in ("voice", "face"):
        raise ValueError(f"query_modality must be 'voice' or 'face', got {query_modality!r}")
    embed = {"face": model.embed_faces, "voice": model.embed_voices}
    other = "face" if query_modality == "voice" else "voice"
    candidates = _as_list(candidates)
    if not candidates:
        raise ValueError("no candidates to rank")
    q = embed[query_modality]([query])[0]
    sims = embed[other](candidates) @ q
    order = np.argsort(-sims, kind="stable")
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1),
                         "candidate": [_name(candidates[i], int(i), other) for i in order],
                         "similarity": sims[order].astype(float)})


# --- helpers ------------------------------------------------------------------------------------

def _load_file(path: Path, dev: str | torch.device | None) -> VoiceFaceModel:
    """A model from a file written by :meth:`VoiceFaceModel.save`."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as stream:
            metadata = stream.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a vfcross model file (not readable as safetensors: {err})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vfcross model file (its metadata has no format {FORMAT!r})")
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} is a model file of format version {version}; this vfcross reads up to "
                         f"version {FORMAT_VERSION}: upgrade vfcross")
    cfg = from_dict(RunConfig, json.loads(metadata["config"]))
    parts = {prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
             for prefix in ("backbone.", "fusion.")}
    return VoiceFaceModel(cfg, backbone_from_state(parts["backbone."], cfg.backbone),
                          fusion_from_state(parts["fusion."], cfg.fusion), str(path),
                          json.loads(metadata.get("sources", "{}")), dev, json.loads(metadata.get("trained_on", "{}")))


def _as_list(items: Sequence | str | Path) -> list:
    """``items`` as a list; a single path is a list of one (a string is not a sequence of files)."""
    return [items] if isinstance(items, (str, Path)) else list(items)


def _name(item: object, index: int, kind: str) -> str:
    """How an input is named in messages and rankings: its path, or ``<kind> <index>``."""
    return str(item) if isinstance(item, (str, Path)) else f"{kind} {index}"


def _open_image(face: FaceInput, name: str) -> Image.Image:
    """An input face as upright 8-bit RGB, decoded as the preprocessing stage decodes files."""
    if isinstance(face, Image.Image):
        return to_rgb(face)
    if isinstance(face, np.ndarray):
        return to_rgb(Image.fromarray(face))
    try:
        return open_rgb(face)
    except IMAGE_ERRORS as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else describe_image_error(err)
        raise InputError(f"unreadable {name} ({reason})") from None


def _audio_source(voice: VoiceInput, name: str, sample_rate: int) -> bytes:
    """The bytes of an audio file: read from its path, or a waveform written losslessly as float WAV.

    A waveform goes through the very reader that files do, so mixing to mono
    and resampling are the preprocessing stage's own.
    """
    if isinstance(voice, (str, Path)):
        try:
            return Path(voice).read_bytes()
        except OSError as err:
            raise InputError(f"unreadable {name} ({err.strerror or err})") from None
    signal, rate = voice if isinstance(voice, tuple) else (voice, sample_rate)
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim not in (1, 2):
        raise InputError(f"unreadable {name} (a waveform has shape (samples,) or (samples, channels), "
                         f"not {signal.shape})")
    buffer = io.BytesIO()
    sf.write(buffer, signal, int(rate), format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _voice_error(name: str, reason: str) -> str:
    """The one-line message for a voice the preprocessing stage could not use."""
    prefix = "unreadable audio: "
    if reason.startswith(prefix):
        return f"unreadable {name} ({reason[len(prefix):]})"
    if reason == "too short after VAD":
        return f"audio too short after VAD in {name}"
    if reason in ("no speech after VAD", "empty audio"):
        return f"audio too short after VAD in {name} ({reason})"
    return f"unusable audio in {name} ({reason})"
