"""A trained model as one object: load it, embed raw faces and voices as training prepared them (test-time ``u``
and ``v``, L2-normalised), rank matches, export it. The model file's layout: ``docs/workflows.md``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from functools import cached_property
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
from vfcross.preprocess.faces import (FALLBACK_REASON, IMAGE_ERRORS, FaceDetector, crop_faces, describe_image_error,
                                     open_rgb, to_rgb)
from vfcross.preprocess.voices import process_voice
from vfcross.training import CHECKPOINT, device, objective_state, recorded_identities, stage_settings, state_path

FORMAT, FORMAT_VERSION = "vfcross-model", 1  # a model file's metadata; files of a later version are refused
BATCH, VOICE_BATCH = 64, 16  # face images per forward pass; utterances preprocessed at a time

#: A face: an image file's path, a PIL image or an (H, W[, 3]) uint8 array of a photo.
FaceInput = str | Path | Image.Image | np.ndarray
#: A voice: an audio file's path, a mono (or frames x channels) waveform at the model's rate, or (waveform, rate).
VoiceInput = str | Path | np.ndarray | tuple


class InputError(ValueError):
    """A face or voice a model cannot embed; its message is one line naming the file and the reason."""


class VoiceFaceModel:
    """A trained backbone + fusion with the preprocessing settings of their training."""

    def __init__(self, cfg: RunConfig, backbone: BackboneObjective, fusion: FusionModel, source: str,
                 sources: dict[str, str], dev: str | torch.device | None, trained_on: dict[str, dict | None]) -> None:
        """Wrap trained modules (as :func:`load` does); ``sources`` are the checkpoints' SHA-256, ``trained_on`` the
        identities each run trained and validated on, by split (None: unrecorded)."""
        self.cfg, self.source, self.sources, self.trained_on = cfg, source, sources, trained_on
        self.device = torch.device(dev) if dev is not None else device()
        self.backbone = backbone.to(self.device).eval()
        self.fusion = fusion.to(self.device).eval()

    @property
    def dim(self) -> int:
        """Dimension of the test-time embeddings ``u`` and ``v``."""
        return self.fusion.face_proj.out_features

    def __repr__(self) -> str:
        b = self.cfg.backbone
        return (f"VoiceFaceModel({self.source!r}: {b.architecture} stream, input {b.input_size}, "
                f"d = {self.dim}, preset {self.cfg.preset!r})")

    def face_crops(self, faces: Sequence[FaceInput]) -> list[np.ndarray]:
        """Aligned uint8 crops of ``faces`` as preprocessing makes them; :class:`InputError` for an unreadable image
        or one without a face (training's centre-crop fallback would give a photo a meaningless embedding)."""
        images = [_open_image(face, _name(face, i, "image")) for i, face in enumerate(faces)]
        crops = []
        for i, (crop, reason) in enumerate(crop_faces(images, self._face_detector)):
            if reason == FALLBACK_REASON:
                raise InputError(f"no face found in {_name(faces[i], i, 'image')}")
            crops.append(crop)
        return crops

    def spectrograms(self, voices: Sequence[VoiceInput]) -> list[np.ndarray]:
        """Spectrograms (F, T) of ``voices`` as the preprocessing stage caches them; :class:`InputError` for
        unreadable audio or too little speech after VAD."""
        out = []
        for i, voice in enumerate(voices):
            name = _name(voice, i, "waveform")
            spec, reason = process_voice(_audio_source(voice, name, self.cfg.voice.sample_rate), self.cfg.voice)
            if spec is None:
                raise InputError(_voice_error(name, reason))
            out.append(spec.astype(np.float32))  # as load_spectrogram reads the cache
        return out

    def embed_faces(self, faces: Sequence[FaceInput], raw: bool = False) -> np.ndarray:
        """Test-time face embeddings ``u`` (N, d) in input order; ``raw=True``: the backbone's 512-d ones."""
        return self._embed(faces, "face", raw)

    def embed_voices(self, voices: Sequence[VoiceInput], raw: bool = False) -> np.ndarray:
        """Test-time voice embeddings ``v`` (N, d) in input order, an utterance the mean of its training-length
        crops as in evaluation; ``raw=True``: the backbone's 512-d ones."""
        return self._embed(voices, "voice", raw)

    @torch.no_grad()
    def _embed(self, items: Sequence, modality: str, raw: bool) -> np.ndarray:
        """Embeddings of raw faces or voices, a batch at a time."""
        items, b, batch = _as_list(items), self.cfg.backbone, BATCH if modality == "face" else VOICE_BATCH
        out = np.zeros((len(items), EMBEDDING_DIM if raw else self.dim), dtype=np.float32)
        for start in range(0, len(items), batch):
            part = items[start:start + batch]
            if modality == "face":
                vectors = embed_face_batch(self.backbone.net, face_batch(self.face_crops(part), b.input_size),
                                           self.device, amp=b.loop.amp)
            else:
                vectors = embed_utterances(self.backbone.net, self.spectrograms(part), b.voice_crop_frames,
                                           self.device, chunk=b.embed_chunk_crops, amp=b.loop.amp)
            if not raw:
                vectors = self.fusion.embed(torch.from_numpy(vectors).to(self.device), modality).cpu().numpy()
            out[start:start + len(part)] = vectors
        return out

    def embed_preprocessed(self, rows: pd.DataFrame, raw: bool = False) -> np.ndarray:
        """Test-time embeddings of manifest rows preprocessed with this model's settings (``raw``: the backbone's)."""
        vectors = embed_rows(self.backbone.net, rows, self.cfg.backbone, self.device, progress=False)
        return vectors if raw else project(self.fusion, vectors, rows, self.device)

    @cached_property
    def _face_detector(self) -> FaceDetector:
        """MTCNN with this model's face settings, made on first use (its weights take a moment)."""
        return FaceDetector(self.cfg.face, device=str(self.device))

    def save(self, path: str | Path) -> Path:
        """Write the model to one safetensors file (docs/workflows.md); returns its path."""
        from safetensors.torch import save

        tensors = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        tensors |= {f"fusion.model.{k}": v for k, v in self.fusion.state_dict().items()}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                    "config": json.dumps(to_dict(self.cfg)), "sources": json.dumps(self.sources),
                    "trained_on": json.dumps(self.trained_on)}
        data = save(tensors, metadata=metadata)
        atomic_write(Path(path), lambda stream: stream.write(data))
        return Path(path)


def load(path: str | Path, dev: str | torch.device | None = None, backbone: str | Path | None = None
         ) -> VoiceFaceModel:
    """The trained model in ``path`` (a model file, a work folder, its ``runs/`` or a fusion run folder);
    ``backbone`` names the backbone run folder when it is not where the layout puts it."""
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
    """The backbone run's configuration with the fusion run's ``fusion`` section, local paths dropped; the runs
    must agree on what shapes the fusion stage's inputs (preprocessing, input size, voice crop length)."""
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
    """Candidates (of the other modality than ``query_modality``) ranked by cosine similarity to ``query``:
    columns ``rank`` (1 = best), ``candidate`` (its name) and ``similarity``; ties keep the input order."""
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


def _load_file(path: Path, dev: str | torch.device | None) -> VoiceFaceModel:
    """A model from a file written by :meth:`VoiceFaceModel.save`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as stream:
            metadata, tensors = stream.metadata() or {}, {key: stream.get_tensor(key) for key in stream.keys()}
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
    """The bytes of an audio file, or of a waveform as float WAV: mixing and resampling stay the reader's own."""
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
    if reason.startswith("unreadable audio: "):
        return f"unreadable {name} ({reason.removeprefix('unreadable audio: ')})"
    if reason == "too short after VAD":
        return f"audio too short after VAD in {name}"
    short = reason in ("no speech after VAD", "empty audio")
    return f"{'audio too short after VAD' if short else 'unusable audio'} in {name} ({reason})"
