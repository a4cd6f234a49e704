"""Embedding whole utterances: memory stays bounded by ``backbone.embed_chunk_crops``; cache entries keep precisions apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import fake_preprocessed

from vfcross.backbone import embedding
from vfcross.backbone.task import BackboneTask
from vfcross.config import BackboneConfig, LoopConfig
from vfcross.training import train

REPO = Path(__file__).resolve().parents[1]

#: Runs in a fresh process: embeds one utterance and prints the growth of its peak resident memory while
#: doing so (:class:`vfcross.processes.PeakMemory`), in MB.
_MEASURE = """
import json, sys
import numpy as np, pandas as pd, torch
from vfcross.backbone.embedding import embed_rows
from vfcross.backbone.objective import build_network
from vfcross.config import BackboneConfig
from vfcross.processes import PeakMemory

path, frames, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
np.save(path, np.random.default_rng(0).normal(size=(257, frames)).astype(np.float16))
cfg = BackboneConfig(input_size=75, voice_crop_frames=200, embed_chunk_crops=chunk)
torch.manual_seed(0)
net = build_network(cfg, 4)
rows = pd.DataFrame({"modality": ["voice"], "cache_path": [path]})
with PeakMemory() as peak:
    vector = embed_rows(net, rows, cfg, torch.device("cpu"), progress=False)
print(json.dumps({"peak_growth_mb": peak.mb, "norm": float(np.linalg.norm(vector))}))
"""


@pytest.mark.slow
def test_a_ten_minute_utterance_embeds_within_a_bounded_memory(tmp_path):
    """600 s of speech (60,000 frames, 599 crops) in chunks of 16 crops: peak growth under 400 MB.

    Measured on a 2-core CPU machine: ~130 MB in chunks of 16, ~210 MB in
    chunks of 64 (the default); all 599 crops in one pass needed ~690 MB, and
    that grows with the utterance (the issue saw 9.8 GB for 300 s at the
    default preset's sizes before chunking).
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / "long.npy"), "60000", "16"],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["norm"] == pytest.approx(1.0, abs=1e-4)
    assert measured["peak_growth_mb"] < 400


def test_embeddings_computed_in_another_precision_are_cached_apart(tmp_path, monkeypatch):
    """bfloat16 vectors (a CPU with native bfloat16, or amp on) must not be served for float32 ones, nor back."""
    manifest = fake_preprocessed(tmp_path / "data", {"train": 2}, n_face=2, n_voice=2)
    cfg = BackboneConfig(input_size=75, voice_crop_frames=50, identities_per_batch=2, samples_per_identity=1,
                         holdout_fraction=0.0, loop=LoopConfig(epochs=1, max_batches_per_epoch=1))
    train(BackboneTask(manifest, cfg), cfg.loop, tmp_path / "run", progress=False)
    vectors = {}
    for dtype in (torch.bfloat16, None):
        monkeypatch.setattr(embedding, "autocast_dtype", lambda amp, dev, dtype=dtype: dtype)
        vectors[dtype] = embedding.extract_embeddings(tmp_path / "run", manifest, cfg, tmp_path / "emb",
                                                      progress=False).vectors
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "emb").glob("*.json"))]
    assert len(records) == 2, "the float32 call was served the bfloat16 entry"
    assert sorted(r["precision"] for r in records) == ["bfloat16", "float32"]
    assert not np.array_equal(vectors[torch.bfloat16], vectors[None])  # they do differ, so sharing would be wrong
