"""Face preprocessing: MTCNN detection, 5-landmark similarity alignment, crop.

facenet-pytorch's MTCNN (its bundled weights) finds faces and five landmarks; a similarity transform (Umeyama's least
squares) maps them onto the ArcFace 112x112 template, zoomed out and shifted down (:data:`TEMPLATE_ZOOM`,
:data:`TEMPLATE_SHIFT`) so that chin and hair fit, and warps the image into a ``size x size`` RGB crop. Coordinates are
``(x, y)`` pixels with the top-left pixel's centre at ``(0, 0)``."""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from vfcross.config import FaceConfig
from vfcross.preprocess.cache import read_entry

#: Reason attached to crops taken without a detected face.
FALLBACK_REASON = "fallback: no face detected"
#: Reason of an image left out because MTCNN found no face in it (``FaceConfig.no_face = "skip"``).
NO_FACE_REASON = "no face detected"
#: Note on a crop from a frame in which MTCNN found more than one face.
MULTI_FACE_REASON = "several faces detected: the largest kept"

#: The ArcFace template: eyes, nose tip and mouth corners of a 112x112 crop (x, y pixels).
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                         [70.7299, 92.2041]])
#: The template's scale about the crop centre (margin for chin and head top) and its downward shift (a fraction
#: of the side: more room above the eyes for forehead and hair).
TEMPLATE_ZOOM, TEMPLATE_SHIFT = 0.72, 0.04
#: What decoding a broken image file can raise in PIL.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
#: Modes of more than 8 bits per sample: rescaled to 8 bits, not clipped as PIL's ``convert`` would.
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def template(size: int) -> np.ndarray:
    """The canonical five landmarks (5 x 2, x/y pixels) in a ``size x size`` crop."""
    unit = (TEMPLATE_112 + 0.5) / 112.0  # pixel centres -> fractions of the side
    unit = (unit - 0.5) * TEMPLATE_ZOOM + 0.5 + np.array([0.0, TEMPLATE_SHIFT])
    return unit * size - 0.5


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: wide greyscale rescaled, not clipped; transparency composited onto white."""
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
    """Decode an image file (bytes or path) fully, now, into upright RGB (EXIF orientation applied). Raises one of
    :data:`IMAGE_ERRORS` for unreadable or truncated files."""
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
    """Least-squares similarity transform (2 x 3) taking points ``src`` to ``dst`` (Umeyama 1991, no reflection)."""
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
    """PIL ``Image.transform`` data for the forward, pixel-centre ``matrix`` (2 x 3): inverse, from pixel corners."""
    linear, shift = matrix[:, :2], matrix[:, 2]
    inverse = np.linalg.inv(linear)
    offset = 0.5 - inverse @ (shift + 0.5)
    return (*inverse[0], offset[0], *inverse[1], offset[1])


def align_face(image: Image.Image, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` so its five ``landmarks`` land on :func:`template`: a ``size x size x 3`` uint8 crop. A face much
    larger than the crop is first shrunk by an integer box filter (a bilinear warp alone aliases)."""
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
    """Run the block with one torch thread (tiny operations that threads slow down; processes are the parallelism)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Detection(NamedTuple):
    """The face chosen in one image: its five landmarks (5 x 2, x/y pixels) and how many faces were found."""
    landmarks: np.ndarray
    faces: int


class FaceDetector:
    """Batched MTCNN returning, per image, the landmarks of its largest face (the person nearest the camera)."""

    def __init__(self, cfg: FaceConfig, device: str | None = None) -> None:
        """Load MTCNN's bundled weights on ``device`` (default :func:`vfcross.training.device`; CPU where MTCNN
        does not run there)."""
        from facenet_pytorch import MTCNN

        from vfcross.training import device as default_device, runs_on

        self.cfg = cfg
        device = device or default_device()
        device = device if runs_on(device, "MTCNN") else "cpu"
        self._mtcnn = MTCNN(keep_all=True, select_largest=True, min_face_size=cfg.min_face_size, device=device)
        if torch.device(device).type == "cpu":
            for net in (self._mtcnn.pnet, self._mtcnn.rnet, self._mtcnn.onet):
                for name, child in list(net.named_children()):
                    if isinstance(child, torch.nn.MaxPool2d):
                        setattr(net, name, _ChannelsLastMaxPool(child))

    def detect(self, images: Sequence[Image.Image]) -> list[Detection | None]:
        """The largest face of each image, or None where MTCNN finds none. Images are scaled into ``cfg.detect_size``
        squares (0: full size, up to ``cfg.batch_pixels``) and batched; one smaller than ``min_face_size`` is not passed
        to MTCNN (it fails on such images)."""
        found: list[Detection | None] = [None] * len(images)
        frames = {i: _detection_frame(image, self.cfg) for i, image in enumerate(images)
                  if min(image.size) >= self.cfg.min_face_size}
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (frame, _) in frames.items():
            by_size[frame.size].append(i)
        batches = []
        for (width, height), indices in by_size.items():
            per_batch = max(1, min(self.cfg.batch_size, self.cfg.batch_pixels // (width * height)))
            batches += [indices[start:start + per_batch] for start in range(0, len(indices), per_batch)]
        with single_torch_thread():
            for batch in batches:
                boxes, _, points = self._mtcnn.detect([frames[i][0] for i in batch], landmarks=True)
                for i, box, point in zip(batch, boxes, points):
                    if point is not None and len(point):
                        box = np.asarray(box, dtype=np.float64)
                        largest = int(np.argmax((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])))
                        landmarks = (np.asarray(point, dtype=np.float64)[largest] + 0.5) / frames[i][1] - 0.5
                        found[i] = Detection(landmarks, len(point))
        return found


class _ChannelsLastMaxPool(torch.nn.Module):
    """``pool`` on a channels-last copy of a contiguous input: the same maxima, faster on CPU."""

    def __init__(self, pool: torch.nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous():
            return self.pool(x)
        return self.pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


def _detection_frame(image: Image.Image, cfg: FaceConfig) -> tuple[Image.Image, np.ndarray]:
    """What MTCNN sees of ``image`` (see :meth:`FaceDetector.detect`) and its x and y scale."""
    side = cfg.detect_size
    if side:
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    else:  # full size, or a copy of at most batch_pixels pixels
        scale = min(1.0, (cfg.batch_pixels / (image.width * image.height)) ** 0.5)
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    frame = image if size == image.size else image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if side and frame.size != (side, side):
        canvas = Image.new("RGB", (side, side), (128, 128, 128))
        canvas.paste(frame)
        frame = canvas
    return frame, np.array(size) / image.size if side else np.full(2, size[0] / image.width)


def crop_faces(images: Sequence[Image.Image], detector: FaceDetector) -> list[tuple[np.ndarray, str]]:
    """Aligned crops of ``images`` as ``(array, reason)``: "", :data:`MULTI_FACE_REASON`, or a centre crop flagged
    :data:`FALLBACK_REASON` (used or not by ``FaceConfig.no_face`` later, so the cache entry is the same)."""
    size = detector.cfg.size
    return [(centre_crop(image, size), FALLBACK_REASON) if found is None else
            (align_face(image, found.landmarks, size), MULTI_FACE_REASON if found.faces > 1 else "")
            for image, found in zip(images, detector.detect(images))]


def encode_face(crop: np.ndarray, cfg: FaceConfig) -> tuple[bytes, str]:
    """A crop as the bytes and suffix of its cache entry: WebP lossless (exact) or JPEG (``cfg.storage``)."""
    buffer = io.BytesIO()
    if cfg.storage == "lossless":
        Image.fromarray(crop).save(buffer, "WEBP", lossless=True, quality=0, method=0)
        return buffer.getvalue(), ".webp"
    Image.fromarray(crop).save(buffer, "JPEG", quality=cfg.jpeg_quality)
    return buffer.getvalue(), ".jpg"


def load_face(path: str | Path) -> np.ndarray:
    """A cached face crop (an entry of :mod:`vfcross.preprocess.cache`, or an ``.npy`` file): uint8 RGB (H, W, 3)."""
    data, suffix = read_entry(path)
    if suffix == ".npy":
        return np.load(io.BytesIO(data))
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB"))
