"""What validating costs beside training, at a preset's sizes, projected onto VoxCeleb1 (docs/training.md).

    python benchmarks/validation_cost.py [--preset paper] [--batch 32] [--out docs/validation_cost.json]

Times, in one process on this machine's device (random inputs): the backbone's
training step per image (``--batch`` images, half faces and half voice crops:
forward, backward, Adam), its eval-mode forward pass per face and per voice
crop (``--batch`` at a time), the checkpoint's serialisation, the fusion step,
and the AUC of a validation subset. From these and
:func:`vfcross.training.planned_schedules` it projects one epoch's training and
one validation of each stage on VoxCeleb1's training and validation splits, and
their ratio per epoch (a validation every ``validate_every`` epochs).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import time

import numpy as np
import pandas as pd
import torch

from vfcross.backbone.embedding import all_pairs_auc
from vfcross.backbone.objective import BackboneObjective
from vfcross.config import preset
from vfcross.fusion.task import FusionObjective
from vfcross.training import device, make_optimizer, planned_schedules

#: VoxCeleb1's Learnable-PINs split: 1,251 identities, 153,516 utterances, about 1.3 M face frames.
VOX1 = {"train": {"identities": 901, "voices": round(153_516 * 901 / 1251), "faces": round(1_300_000 * 901 / 1251)},
        "val": {"identities": 100, "voices": round(153_516 * 100 / 1251), "faces": round(1_300_000 * 100 / 1251)}}
MEAN_SECONDS = 8.2  # VoxCeleb1's mean utterance


def timed(step, repeats: int) -> float:
    """Median seconds of ``step()`` after one untimed warm-up."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(name: str, repeats: int, batch: int) -> dict:
    """Seconds of each timed operation at preset ``name``'s sizes, in float32 (the paper preset's arithmetic)."""
    cfg, dev = preset(name), device()
    b, rows = cfg.backbone, cfg.voice.frequency_rows
    torch.manual_seed(0)
    objective = BackboneObjective(b, VOX1["train"]["identities"]).to(dev)
    optimizer = make_optimizer(list(objective.parameters()), b.loop)
    n = batch // 2
    faces, voices = torch.randn(n, 3, b.input_size, b.input_size, device=dev), torch.randn(n, 1, rows,
                                                                                        b.voice_crop_frames, device=dev)
    labels = torch.arange(n, device=dev)

    def step() -> None:
        loss = objective(faces, voices, labels, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    images = 2 * b.identities_per_batch * b.samples_per_identity
    out = {"train_image_s": timed(step, repeats) / (2 * n)}
    out["train_step_s"] = out["train_image_s"] * images  # the preset's batch, from the per-image time
    chunk = 2 * n
    objective.eval()
    with torch.no_grad():
        for modality, shape in (("face", (3, b.input_size, b.input_size)), ("voice", (1, rows, b.voice_crop_frames))):
            x = torch.randn(chunk, *shape, device=dev)
            out[f"embed_{modality}_s"] = timed(lambda: objective.net.features(x, modality), repeats) / chunk
    state = {"objective": objective.state_dict(), "optimizer": optimizer.state_dict()}
    out["checkpoint_s"] = timed(lambda: torch.save(state, io.BytesIO()), 1)
    fusion = FusionObjective(cfg.fusion, VOX1["train"]["identities"]).to(dev)
    fusion_optimizer = make_optimizer(list(fusion.parameters()), cfg.fusion.loop)
    pairs = torch.randn(2, cfg.fusion.batch_size, 512, device=dev)
    pair_labels = torch.arange(cfg.fusion.batch_size, device=dev) % VOX1["train"]["identities"]

    def fusion_step() -> None:
        loss = fusion(pairs[0], pairs[1], pair_labels)["loss"]
        fusion_optimizer.zero_grad()
        loss.backward()
        fusion_optimizer.step()

    out["fusion_step_s"] = timed(fusion_step, 20 * repeats)
    for stage in ("backbone", "fusion"):
        loop = getattr(cfg, stage).loop
        table = subset(VOX1["val"], loop.val_voices, loop.val_faces)
        vectors = np.random.default_rng(0).normal(size=(len(table), 128)).astype(np.float32)
        out[f"{stage}_val_auc_s"] = timed(lambda: all_pairs_auc(vectors, table), 1)
        out[f"{stage}_val_pairs"] = int((table.modality == "voice").sum() * (table.modality == "face").sum())
    return out


def subset(split: dict, voices: int, faces: int) -> pd.DataFrame:
    """The validation rows of a split: ``voices`` and ``faces`` per identity (0 = its mean count)."""
    ids = split["identities"]
    per = {"voice": voices or round(split["voices"] / ids), "face": faces or round(split["faces"] / ids)}
    return pd.DataFrame([(i, m) for i in range(ids) for m, k in per.items() for _ in range(k)],
                        columns=["identity", "modality"])


def project(name: str, t: dict) -> dict:
    """Seconds of an epoch's training and of a validation of each stage on VoxCeleb1, and their ratio per epoch."""
    cfg = preset(name)
    plans = planned_schedules(cfg, VOX1)
    b = cfg.backbone
    frames = MEAN_SECONDS * 1000 / cfg.voice.hop_ms
    crops = max(1, math.ceil((frames - b.voice_crop_frames) / (b.voice_crop_frames // 2)) + 1)
    out = {}
    for stage in ("backbone", "fusion"):
        loop = getattr(cfg, stage).loop
        steps = plans[stage]["steps_per_epoch"]
        epoch = steps * t["train_step_s" if stage == "backbone" else "fusion_step_s"]
        if stage == "backbone":  # held-out samples of the training identities, and the validation identities
            held = {m: VOX1["train"][f"{m}s"] * b.holdout_fraction / VOX1["train"]["identities"] for m in ("voice", "face")}
            per = lambda m, limit, own: min(limit, own) if limit else own  # noqa: E731
            voices = (VOX1["train"]["identities"] * per("voice", loop.val_voices, held["voice"])
                      + VOX1["val"]["identities"] * per("voice", loop.val_voices, VOX1["val"]["voices"] / 100))
            faces = (VOX1["train"]["identities"] * per("face", loop.val_faces, held["face"])
                     + VOX1["val"]["identities"] * per("face", loop.val_faces, VOX1["val"]["faces"] / 100))
            validation = (voices * crops * t["embed_voice_s"] + faces * t["embed_face_s"] + t["checkpoint_s"]
                          + t["backbone_val_auc_s"])
            embedded = {"voices": round(voices), "voice_crops": round(voices * crops), "faces": round(faces),
                        # device-free: a training image costs about 3 forward passes (forward + backward)
                        "share_by_3x_rule": round((voices * crops + faces) / (3 * steps * plans[stage]["images_per_step"])
                                                  / loop.validate_every, 4)}
        else:  # projecting the subset's embeddings is a few matrix products: the AUC is the cost
            validation, embedded = t["fusion_val_auc_s"], {}
        out[stage] = {"steps_per_epoch": plans[stage]["steps_per_epoch"], "epoch_s": round(epoch, 1),
                      "validation_s": round(validation, 2), "validate_every": loop.validate_every,
                      "val_voices": loop.val_voices, "val_faces": loop.val_faces, **embedded,
                      "validation_share_of_epoch": round(validation / loop.validate_every / epoch, 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="images of a timed step (memory: ~0.1 GB each at 256x256)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    dev = device()
    timings = measure(args.preset, args.repeats, args.batch)
    result = {"preset": args.preset, "device": torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor()
              or platform.machine(), "threads": torch.get_num_threads(), "timings_s": timings,
              "voxceleb1": VOX1, "projection": project(args.preset, timings)}
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as stream:
            stream.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
