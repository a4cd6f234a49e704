"""Datasets in the VoxCeleb1 layout: the reader, protocol files, manifests and the synthetic population."""

from vfcross.data.dataset import Dataset, prepare_dataset
from vfcross.data.voxceleb import read_dataset, scan_dataset

__all__ = ["Dataset", "prepare_dataset", "read_dataset", "scan_dataset"]
