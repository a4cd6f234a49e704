"""Preprocessing: faces (MTCNN + 5-landmark alignment), voices (VAD, spectrogram), the cache they are read from."""

from vfcross.preprocess.faces import align_face, load_face
from vfcross.preprocess.run import PreprocessResult, preprocess, write_report
from vfcross.preprocess.voices import load_spectrogram, spectrogram, vad

__all__ = ["PreprocessResult", "align_face", "load_face", "load_spectrogram", "preprocess", "spectrogram",
           "vad", "write_report"]
