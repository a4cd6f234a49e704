"""A ctypes binding of espeak-ng (the ``espeakng-loader`` wheel's library): speech and phonemes of a text.

espeak-ng keeps global state between calls that changes its output, so each call loads the library afresh, seeds libc's
``rand()`` and espeak-ng's generator, and unloads it, under a lock that a fork waits for: every clip is a pure function
of its inputs, whichever process renders it (docs/data.md). Nothing else in the process may hold libespeak-ng open."""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Iterator

import espeakng_loader
import numpy as np

#: espeak-ng's native output rate, the rate of every rendered clip.
SAMPLE_RATE = 22050

#: espeak-ng C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS, _INITIALIZE_DONT_EXIT, _CHARS_UTF8, _POS_CHARACTER = 2, 0x8000, 1, 1
_PARAMETERS = {"rate": 1, "pitch": 3, "range": 4, "wordgap": 7}
#: espeak_TextToPhonemes mode: IPA, with "_" between the phonemes of a word.
_IPA_SEPARATED = 0x02 | (ord("_") << 8)

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_chunks: list[np.ndarray] = []


@_SynthCallback
def _collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None) -> int:
    """espeak-ng's synthesis callback: keep a copy of each chunk of samples; 0 = go on."""
    if count > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    return 0


_LOCK = threading.Lock()
os.register_at_fork(before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_LOCK.release)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, whose ``srand`` seeds espeak-ng's breath noise."""
    return ctypes.CDLL(ctypes.util.find_library("c"))


@contextlib.contextmanager
def _espeak(voice: str) -> Iterator[ctypes.CDLL]:
    """A freshly loaded libespeak-ng, initialised with ``voice``, unloaded on exit. Hold ``_LOCK``."""
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                     _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected the sample rate {SAMPLE_RATE}")
        lib.espeak_SetSynthCallback(_collect)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        yield lib
    finally:
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)


def synthesize(text: str, voice: str, params: dict[str, int], seed: int) -> np.ndarray:
    """Raw espeak-ng speech for ``text`` in ``voice`` with ``params``, as floats in [-1, 1]."""
    with _LOCK, _espeak(voice) as lib:
        for name, value in params.items():
            lib.espeak_SetParameter(_PARAMETERS[name], value, 0)
        _libc().srand(seed)
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        _chunks.clear()
        data = text.encode() + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        samples = np.concatenate([np.zeros(0, np.int16), *_chunks])
        _chunks.clear()
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return samples.astype(np.float64) / 32768.0


def phonemes(sentence: str, voice: str) -> list[str]:
    """espeak-ng's IPA for ``sentence`` read by ``voice``: one string per clause, words separated by blanks."""
    with _LOCK, _espeak(voice) as lib:
        buffer = ctypes.create_string_buffer(sentence.encode())
        pointer = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        while pointer.value:
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _IPA_SEPARATED).decode())
    return clauses
