"""Run by tests/test_training.py under torchrun: train the smoke backbone, noting per rank what it loads,
validates and writes (``rank<r>.jsonl`` beside the run folder)."""

import json
import os
import sys
from pathlib import Path

from vfcross import config as C
from vfcross import training
from vfcross.backbone.task import BackboneTask
from vfcross.data.manifest import read_manifest

manifest, out, settings = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
log = out.parent / f"rank{os.environ['RANK']}.jsonl"


def note(**record) -> None:
    with open(log, "a") as stream:
        stream.write(json.dumps(record) + "\n")


def noting(name, function, what):
    def wrapped(*args, **kwargs):
        note(**{name: what(*args)})
        return function(*args, **kwargs)
    return wrapped


cfg = C.override(C.preset("smoke"), settings).backbone
task = BackboneTask(read_manifest(manifest), cfg)
task.load = noting("loaded", task.load, lambda batch: batch.face_rows.tolist())
task.validate = noting("validated", task.validate, lambda dev: True)
training.atomic_write = noting("wrote", training.atomic_write, lambda path, write: Path(path).name)
training.train(task, cfg.loop, out, progress=False)
