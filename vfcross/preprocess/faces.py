"""Face preprocessing: MTCNN detection, 5-landmark similarity alignment, crop.

facenet-pytorch's MTCNN (its bundled P/R/O-Net weights) finds faces and their
five landmarks (eye centres, nose tip, mouth corners). Its own crops are plain
box crops, not rotated upright, so the alignment is done here: a similarity
transform (rotation, uniform scale, translation; Umeyama's least-squares
estimate) maps the detected landmarks onto a canonical five-point template and
the image is warped with it into a ``size x size`` RGB crop.

The template is the widely used ArcFace 112x112 one, zoomed out and shifted
down (:data:`TEMPLATE_ZOOM`, :data:`TEMPLATE_SHIFT`) so that the whole face,
the chin and some hair fit into the crop rather than only the inner face.

Coordinates follow the usual image convention (OpenCV, scikit-image, MTCNN):
``(x, y)`` in pixels with the centre of the top-left pixel at ``(0, 0)``.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vfcross.config import FaceConfig

#: Reason attached to crops taken without a detected face.
FALLBACK_REASON = "fallback: no face detected"
#: Reason of an image left out because MTCNN found no face in it (``FaceConfig.no_face = "skip"``).
NO_FACE_REASON = "no face detected"
#: Note on a crop from a frame in which MTCNN found more than one face.
MULTI_FACE_REASON = "several faces detected: the largest kept"

#: The ArcFace alignment template: left eye, right eye, nose tip, left and
#: right mouth corner of a 112x112 crop (x, y in pixels).
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
#: Scale of the template about the crop centre: below 1 adds margin around
#: the inner face (0.72 keeps the chin and the top of the head in the crop).
TEMPLATE_ZOOM = 0.72
#: Vertical shift of the template as a fraction of the crop side (positive =
#: down), leaving more room above the eyes for forehead and hair than below the
#: mouth.
TEMPLATE_SHIFT = 0.04

#: What decoding a broken image file can raise in PIL (truncated data, unknown
#: format, corrupt headers, absurd sizes).
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

#: Modes holding more than 8 bits per sample; they are rescaled to 8 bits
#: instead of clipped (PIL's ``convert`` would clip 16-bit values at 255).
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def template(size: int) -> np.ndarray:
    """The canonical five landmarks (5 x 2, x/y pixels) in a ``size x size`` crop."""
    unit = (TEMPLATE_112 + 0.5) / 112.0  # pixel centres -> fractions of the side
    unit = (unit - 0.5) * TEMPLATE_ZOOM + 0.5 + np.array([0.0, TEMPLATE_SHIFT])
    return unit * size - 0.5


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB, whatever its mode.

    16-bit and float greyscale is rescaled rather than clipped, and transparent
    pixels are composited onto white so that they do not turn black.
    """
    if image.mode in _WIDE_MODES:
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def open_rgb(source: bytes | str | Path) -> Image.Image:
    """Decode an image file (its bytes or its path) fully into upright RGB.

    EXIF orientation is applied, since photos from phones are often stored
    sideways with a tag saying so. Raises one of :data:`IMAGE_ERRORS` for unreadable or truncated files: the
    image is loaded completely here so that a truncated file fails now, not
    later.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(stream) as image:
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))


def describe_image_error(err: Exception) -> str:
    """A short, file-independent description of a decoding error for reports."""
    if isinstance(err, UnidentifiedImageError):  # its message names the file
        return "not a recognised image format"
    return str(err)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2 x 3) taking points ``src`` to ``dst``.

    Umeyama (1991): rotation, uniform scale and translation minimising the
    squared distances; reflections are excluded, since a mirrored face is not
    the same face.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (src_c**2).sum(axis=1).mean()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def _pil_affine(matrix: np.ndarray) -> tuple[float, ...]:
    """PIL ``Image.transform`` data for the forward transform ``matrix`` (2 x 3).

    PIL wants the inverse map (output pixel -> input position) and measures
    positions from pixel corners, while ``matrix`` maps pixel-centre
    coordinates; both differences are folded in here.
    """
    linear, shift = matrix[:, :2], matrix[:, 2]
    inverse = np.linalg.inv(linear)
    offset = 0.5 - inverse @ (shift + 0.5)
    return (*inverse[0], offset[0], *inverse[1], offset[1])


def align_face(image: Image.Image, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` so that its five ``landmarks`` land on :func:`template`.

    Returns a ``size x size x 3`` uint8 RGB array; parts of the crop outside
    the photo are black. A face much larger than the crop is first shrunk by
    an integer box filter, because a bilinear warp alone would alias.
    """
    image = to_rgb(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    target = template(size)
    matrix = similarity_transform(landmarks, target)
    factor = int(1.0 / np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if factor >= 2:
        image = image.reduce(factor)
        landmarks = (landmarks + 0.5) / factor - 0.5
        matrix = similarity_transform(landmarks, target)
    crop = image.transform((size, size), Image.Transform.AFFINE, _pil_affine(matrix),
                           resample=Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.uint8)


def centre_crop(image: Image.Image, size: int) -> np.ndarray:
    """The largest centred square of ``image`` resized to ``size x size`` (uint8 RGB)."""
    image = to_rgb(image)
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run the block with one torch thread, then restore the previous setting.

    MTCNN on CPU is thousands of tiny operations (one resize per candidate
    box) and synchronising threads costs more than they gain: on a 2-core
    machine one thread took ~30 ms per face, two threads 20-650 ms depending
    on other load. The same holds for one clip's spectrogram. Parallelism
    comes from processes instead.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Detection:
    """The face chosen in one image: its five landmarks (5 x 2, x/y pixels) and how many faces were found."""

    landmarks: np.ndarray
    faces: int


class FaceDetector:
    """Batched MTCNN returning, per image, the landmarks of its largest face.

    When MTCNN finds several faces in a frame, the largest box is kept (the
    person the frame is about is, in face-track frames and photos alike, the
    one nearest the camera), not the most confident one, and the frame is
    flagged (:data:`MULTI_FACE_REASON`) since it may show the wrong person.
    """

    def __init__(self, cfg: FaceConfig, device: str | None = None) -> None:
        """Load MTCNN's bundled weights (no download) on ``device`` (default :func:`vfcross.training.device`;
        the CPU where MTCNN does not run, see :func:`vfcross.training.runs_on`)."""
        from facenet_pytorch import MTCNN

        from vfcross.training import device as default_device, runs_on

        self.cfg = cfg
        device = device or default_device()
        device = device if runs_on(device, "MTCNN") else "cpu"
        self._mtcnn = MTCNN(keep_all=True, select_largest=True, min_face_size=cfg.min_face_size,
                            device=device)

    def detect(self, images: Sequence[Image.Image]) -> list[Detection | None]:
        """The largest face of each image, or None where MTCNN finds none.

        MTCNN batches only equally sized images, so images are grouped by size
        and each group is detected in batches of at most ``cfg.batch_size``
        images and ``cfg.batch_pixels`` pixels, with one torch thread (see
        :func:`single_torch_thread`). An image larger than ``batch_pixels`` is
        detected on a copy downscaled to that many pixels (faces smaller than
        ``min_face_size`` in the copy are then missed) and its landmarks are
        mapped back to the full image. Images smaller than ``min_face_size``
        cannot hold a face of that size (and MTCNN fails on them), so they are
        not passed to it.
        """
        found: list[Detection | None] = [None] * len(images)
        scaled: dict[int, tuple[Image.Image, float]] = {}
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            copy, scale = _fit_pixels(image, self.cfg.batch_pixels)
            if min(copy.size) >= self.cfg.min_face_size:
                scaled[i] = (copy, scale)
                by_size[copy.size].append(i)
        batches = []
        for (width, height), indices in by_size.items():
            per_batch = max(1, min(self.cfg.batch_size, self.cfg.batch_pixels // (width * height)))
            batches += [indices[start:start + per_batch] for start in range(0, len(indices), per_batch)]
        with single_torch_thread():
            for batch in batches:
                boxes, _, points = self._mtcnn.detect([scaled[i][0] for i in batch], landmarks=True)
                for i, box, point in zip(batch, boxes, points):
                    if point is not None and len(point):
                        box = np.asarray(box, dtype=np.float64)
                        largest = int(np.argmax((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])))
                        scale = scaled[i][1]
                        landmarks = (np.asarray(point, dtype=np.float64)[largest] + 0.5) / scale - 0.5
                        found[i] = Detection(landmarks, len(point))
        return found


def _fit_pixels(image: Image.Image, max_pixels: int) -> tuple[Image.Image, float]:
    """``image``, or a copy downscaled to at most ``max_pixels`` pixels, and the scale applied."""
    pixels = image.width * image.height
    if pixels <= max_pixels:
        return image, 1.0
    scale = (max_pixels / pixels) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), size[0] / image.width


def crop_faces(images: Sequence[Image.Image], detector: FaceDetector) -> list[tuple[np.ndarray, str]]:
    """Aligned crops of ``images`` as ``(array, reason)`` pairs.

    ``reason`` is empty for a frame with one detected face and
    :data:`MULTI_FACE_REASON` for a frame with several (the largest is
    aligned). An image without a face gives its centre crop flagged
    :data:`FALLBACK_REASON`; whether such a crop is used at all is decided
    later by ``FaceConfig.no_face`` (see :func:`vfcross.preprocess.run.preprocess`),
    so the cache holds the same entry under either policy.
    """
    size = detector.cfg.size
    results: list[tuple[np.ndarray, str]] = []
    for image, found in zip(images, detector.detect(images)):
        if found is None:
            results.append((centre_crop(image, size), FALLBACK_REASON))
        else:
            results.append((align_face(image, found.landmarks, size), MULTI_FACE_REASON if found.faces > 1 else ""))
    return results


def load_face(path: str | Path) -> np.ndarray:
    """A cached face crop: ``size x size x 3`` uint8 RGB."""
    return np.load(path)
