"""Datasets in the VoxCeleb1 layout: the reader, protocol files and the synthetic population."""

from vfcross.data.voxceleb import read_dataset, scan_dataset

__all__ = ["read_dataset", "scan_dataset"]
