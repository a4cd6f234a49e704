"""Small fake preprocessed datasets, so training tests need no preprocessing run; smoke-trained models."""

from pathlib import Path

import numpy as np
import pandas as pd


def fake_preprocessed(root: Path, identities: dict[str, int], n_face: int = 3, n_voice: int = 3,
                      face_size: int = 80, freq: int = 257, seed: int = 0) -> pd.DataFrame:
    """A preprocessed manifest whose cache files are random arrays with an identity signal.

    ``identities`` maps split name -> number of identities. Each identity has a
    random mean pattern shared by its faces and voices (plus noise), so the
    data is learnable but tiny.
    """
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for split, count in identities.items():
        for _ in range(count):
            n += 1
            ident = f"id{n:05d}"
            face_mean = rng.integers(0, 255, (face_size, face_size, 3))
            voice_mean = rng.normal(size=(freq, 1))
            for k in range(n_face):
                path = root / "cache" / f"{ident}_f{k}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                noise = rng.integers(-30, 30, face_mean.shape)
                np.save(path, np.clip(face_mean + noise, 0, 255).astype(np.uint8))
                rows.append((ident, "face", str(path), split))
            for k in range(n_voice):
                path = root / "cache" / f"{ident}_v{k}.npy"
                frames = int(rng.integers(60, 140))
                np.save(path, (voice_mean + rng.normal(size=(freq, frames))).astype(np.float16))
                rows.append((ident, "voice", str(path), split))
    table = pd.DataFrame(rows, columns=["identity", "modality", "cache_path", "split"])
    return table.assign(split=table["split"].astype("string"))


def train_work_dir(cfg, manifest: pd.DataFrame):
    """Train the backbone and the fusion of ``cfg`` (a RunConfig) on ``manifest`` into the notebooks' run folders.

    Returns ``cfg``; ``cfg.work_dir`` then holds ``runs/backbone-single`` and
    ``runs/fusion-full``, which :func:`vfcross.load` reads.
    """
    from vfcross import config as C
    from vfcross.backbone.embedding import extract_embeddings
    from vfcross.backbone.task import BACKBONE_RUN, BackboneTask
    from vfcross.fusion.task import FUSION_RUN, FusionTask
    from vfcross.training import train

    train(BackboneTask(manifest, cfg.backbone), cfg.backbone.loop, cfg.run_dir(BACKBONE_RUN), progress=False)
    C.save_config(cfg, cfg.run_dir(BACKBONE_RUN))
    emb = extract_embeddings(cfg.run_dir(BACKBONE_RUN), manifest, cfg.backbone, cfg.cache_dir / "embeddings",
                             progress=False)
    train(FusionTask(emb, cfg.fusion), cfg.fusion.loop, cfg.run_dir(FUSION_RUN), progress=False)
    C.save_config(cfg, cfg.run_dir(FUSION_RUN))
    return cfg


#: Attribute values of the manifest-like tables of :func:`make_table`.
GENDERS, NATIONALITIES, AGES = ("m", "f"), ("USA", "UK", "India"), ("20s", "40s", "60s")


def make_table(n_test=30, n_train=8, seed=0, missing_age=(3, 17), big_identity=None):
    """A shuffled manifest-like table: identities with attributes, 1-4 voices and 2-5 faces each.

    ``missing_age`` test identities have NA age; ``big_identity`` gets 200 voices.
    """
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_test + n_train):
        identity = f"id{i:03d}"
        attributes = {
            "split": "test" if i < n_test else "train",
            "gender": GENDERS[i % 2],
            "nationality": NATIONALITIES[(i // 2) % 3],
            "age": pd.NA if i in missing_age else AGES[(i // 6) % 3],
        }
        n_voices = 200 if i == big_identity else int(rng.integers(1, 5))
        for modality, count in (("voice", n_voices), ("face", int(rng.integers(2, 6)))):
            for k in range(count):
                relpath = f"{modality}/{identity}/{k:03d}"
                records.append({"identity": identity, "modality": modality, "relpath": relpath, **attributes})
    table = pd.DataFrame(records).astype("string")
    return table.sample(frac=1, random_state=seed).reset_index(drop=True)


def unit_vectors(rng, n, dim=8):
    vectors = rng.normal(size=(n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def median_f0(audio: np.ndarray, sample_rate: int = 22050) -> float:
    """Median F0 (Hz) of a clip at ``sample_rate`` (the synthetic voices' rate), by the probes' pitch tracker."""
    from vfcross.evaluation.features import pitch_track

    return float(np.median(pitch_track(np.asarray(audio, dtype=np.float64), sample_rate)))


def population_table(people) -> pd.DataFrame:
    """One voice row and one face row per identity of a synthetic population, with its true attributes, so the
    protocol generators can draw pairs for the oracle without rendering anything."""
    from vfcross.data.voxceleb import SPLIT_CODES

    return pd.DataFrame([{"identity": p.vox_id, "modality": modality, "split": SPLIT_CODES[str(p.split)],
                          "gender": p.face.gender, "nationality": p.face.nationality, "age": p.age}
                         for p in people for modality in ("voice", "face")])


def check_submission(path, trials: pd.DataFrame) -> None:
    """Raise ValueError unless ``path`` scores exactly the keys of ``trials``, in its order, one number each."""
    lines, keys = Path(path).read_text().splitlines(), list(trials["key"])
    if len(lines) != len(keys):
        raise ValueError(f"{path}: {len(lines)} lines for {len(keys)} trials")
    for lineno, (line, key) in enumerate(zip(lines, keys), start=1):
        fields = line.split(" ")
        if len(fields) != 2 or fields[0] != key:
            raise ValueError(f"{path}, line {lineno}: expected '{key} <score>', got {line!r}")
        try:
            float(fields[1])
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: {fields[1]!r} is not a number") from None


def average_precisions(similarity, query_labels, gallery_labels, chunk_size: int = 1024) -> np.ndarray:
    """Per-query average precision of a similarity matrix (queries x gallery), through the chunked path of
    :func:`vfcross.metrics.retrieval_map`; NaN without a relevant item (a test and benchmark helper)."""
    from vfcross.metrics import _chunked_average_precisions, _label_codes

    similarity = np.asarray(similarity)
    query_codes, gallery_codes = _label_codes(query_labels, gallery_labels)
    if similarity.ndim != 2 or similarity.shape != (len(query_codes), len(gallery_codes)):
        raise ValueError(f"similarity must have shape (queries, gallery) = ({len(query_codes)}, "
                         f"{len(gallery_codes)}), got {similarity.shape}")
    return _chunked_average_precisions(lambda start, stop: np.array(similarity[start:stop], dtype=np.float64),
                                       query_codes, gallery_codes, chunk_size)
