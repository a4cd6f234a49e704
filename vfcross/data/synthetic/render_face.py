"""Synthetic face photographs rendered from an identity's face attributes.

A face is painted in *face units* (origin between the eyes, x right, y down, head half-height about 1.35) as soft-edged
regions with Gaussian shading and ellipsoid lighting, so that MTCNN detects it. :class:`FaceStyle` is fixed per
identity, :class:`FaceSession` per video, pose and expression per image. The model is described in docs/data.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from vfcross.config import MIN_INPUT_SIZE
from vfcross.data.synthetic.population import Identity

RGB = tuple[float, float, float]

#: Skin tone by "melanin" and hair colour by "darkness" in [0, 1]: piecewise-linear between these anchors.
_SKIN_ANCHORS = np.array([(0.97, 0.85, 0.77), (0.91, 0.73, 0.61), (0.80, 0.59, 0.44), (0.60, 0.41, 0.28),
                          (0.40, 0.26, 0.18)])
_HAIR_ANCHORS = np.array([(0.86, 0.73, 0.47), (0.63, 0.46, 0.28), (0.34, 0.22, 0.14), (0.15, 0.11, 0.09),
                          (0.07, 0.06, 0.06)])
_RED_HAIR: RGB = (0.58, 0.27, 0.13)
_GREY_HAIR: RGB = (0.80, 0.80, 0.79)
_EYE_COLOURS: dict[str, RGB] = {"brown": (0.33, 0.20, 0.11), "dark": (0.16, 0.10, 0.07), "blue": (0.33, 0.47, 0.62),
                                "green": (0.36, 0.45, 0.30), "grey": (0.45, 0.49, 0.52)}

#: Per nationality: (mean, sd) of skin melanin and of hair darkness, P(red hair); overlapping on purpose.
_NATIONALITY_COLOURING: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "USA": ((0.33, 0.24), (0.58, 0.22), 0.04), "UK": ((0.15, 0.09), (0.50, 0.20), 0.09),
    "Germany": ((0.14, 0.08), (0.45, 0.20), 0.04), "Italy": ((0.30, 0.10), (0.78, 0.12), 0.01),
    "Mexico": ((0.48, 0.11), (0.86, 0.09), 0.0), "India": ((0.63, 0.12), (0.93, 0.05), 0.0),
}
#: Per age group: range of the grey-hair fraction and of wrinkle/sag strength.
_AGE_LOOK: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "young": ((0.0, 0.03), (0.0, 0.1)), "middle": ((0.1, 0.45), (0.35, 0.6)), "old": ((0.55, 1.0), (0.75, 1.0))}


@dataclass(frozen=True)
class FaceStyle:
    """Everything fixed about one identity's look, in face units and RGB in [0, 1]."""

    skin: RGB
    hair: RGB
    brow: RGB
    eye: RGB
    lip: RGB
    #: Head half-width and half-height, jaw squareness (superellipse exponent added below) and chin taper.
    face_width: float
    face_length: float
    jaw_square: float
    jaw_taper: float
    eye_spacing: float
    eye_y: float
    eye_width: float
    eye_height: float
    lash: float
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    nose_y: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_height: float
    #: "long", "bob", "short" or "bald".
    hair_style: str
    hair_volume: float
    hairline: float
    fringe: float
    parting: float
    beard: float
    stubble: float
    wrinkles: float
    sag: float
    ear_size: float
    #: (x, y, radius) of moles in face units.
    moles: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class FaceSession:
    """What all frames of one video share: background, light, camera, clothes."""

    background: tuple[RGB, RGB]
    background_angle: float
    texture_seed: int
    texture_strength: float
    #: Unit light direction (x, y, z) in face coordinates, z towards the camera.
    light: tuple[float, float, float]
    light_colour: RGB
    ambient: float
    tint: RGB
    clothes: RGB
    #: Typical head pose of the video, around which each frame varies.
    yaw: float
    angle: float
    noise: float
    blur: float


@dataclass(frozen=True)
class _Pose:
    """Per-image geometry and expression: centre, pixels per face unit, in-plane angle, yaw (feature shift)."""

    cx: float
    cy: float
    scale: float
    angle: float
    yaw: float
    gaze: tuple[float, float]
    smile: float
    mouth_open: float


def face_style(identity: Identity) -> FaceStyle:
    """The look of ``identity``: attributes move the distributions, the seed draws the individual. The random stream is
    keyed by the seed and a face-only constant, independent of the voice's."""
    attrs = identity.face
    rng = np.random.default_rng([identity.seed, 0xFACE])
    build, length, lively = (float(np.clip(t, -2.5, 2.5)) for t in attrs.traits)
    male = attrs.gender == "m"
    (grey_lo, grey_hi), (age_lo, age_hi) = _AGE_LOOK[attrs.age_group]
    age = float(rng.uniform(age_lo, age_hi))
    skin, hair, eye = _colouring(attrs.nationality, rng)
    hair = _mix(hair, _GREY_HAIR, float(rng.uniform(grey_lo, grey_hi)))
    hair_style, beard, stubble = _hair_and_beard(male, attrs.age_group, rng)
    return FaceStyle(
        skin=skin, hair=hair, brow=_mix(hair, (0.08, 0.06, 0.05), 0.35), eye=eye, lip=_lip_colour(skin, male, rng),
        face_width=(1.0 if male else 0.92) * (1 + 0.07 * build) * float(rng.uniform(0.96, 1.04)),
        face_length=1.35 * (1 + 0.05 * length) * float(rng.uniform(0.97, 1.03)),
        jaw_square=max(0.0, (0.9 if male else 0.15) + 0.25 * build + 0.3 * age),
        jaw_taper=(0.10 if male else 0.26) - 0.03 * build - 0.06 * age, eye_spacing=float(rng.uniform(0.36, 0.44)),
        eye_y=-0.12 + 0.02 * age,
        eye_width=0.21 * (1 + 0.07 * lively) * float(rng.uniform(0.92, 1.08)) * (0.95 if male else 1.03),
        eye_height=0.085 * (1 + 0.15 * lively) * float(rng.uniform(0.9, 1.1)) * (1 - 0.15 * age),
        lash=(0.25 if male else 0.6) * float(rng.uniform(0.7, 1.3)), brow_gap=0.24 * (1 + 0.15 * lively) - 0.03 * age,
        brow_thickness=(0.065 if male else 0.036) * float(rng.uniform(0.8, 1.2)),
        brow_arch=(0.035 if male else 0.07) * float(rng.uniform(0.6, 1.4)),
        nose_y=0.40 * (1 + 0.10 * length) * float(rng.uniform(0.95, 1.05)),
        nose_width=(0.17 if male else 0.145) * float(rng.uniform(0.85, 1.2)) * (1 + 0.05 * build),
        mouth_y=0.70 * (1 + 0.06 * length) + 0.04 * age,
        mouth_width=(0.30 if male else 0.28) * float(rng.uniform(0.88, 1.12)),
        lip_height=(0.055 if male else 0.075) * float(rng.uniform(0.8, 1.2)) * (1 - 0.3 * age), hair_style=hair_style,
        hair_volume=float(rng.uniform(0.0, 0.08) if hair_style == "short" else rng.uniform(0.08, 0.22)),
        hairline=-1.0 + float(rng.uniform(-0.08, 0.08)) + (0.25 if male else 0.08) * age * float(rng.random()),
        fringe=float(rng.uniform(0.25, 0.55)) if not male and rng.random() < 0.35 else 0.0,
        parting=float(rng.uniform(-0.4, 0.4)), beard=beard, stubble=stubble, wrinkles=age, sag=age,
        ear_size=float(rng.uniform(0.85, 1.15)),
        moles=tuple(_rgb(rng.uniform((-0.7, -0.6, 0.018), (0.7, 0.9, 0.035)))
                    for _ in range(int(rng.integers(0, 3)))),
    )


def _colouring(nationality: str, rng: np.random.Generator) -> tuple[RGB, RGB, RGB]:
    """Skin, hair and eye colour drawn from the nationality's overlapping distributions."""
    (skin_mu, skin_sd), (hair_mu, hair_sd), p_red = _NATIONALITY_COLOURING[nationality]
    melanin = float(np.clip(rng.normal(skin_mu, skin_sd), 0.0, 1.0))
    darkness = float(np.clip(rng.normal(hair_mu, hair_sd), 0.0, 1.0))
    skin = _interp(_SKIN_ANCHORS, melanin)
    skin = tuple(float(np.clip(c + d, 0, 1)) for c, d in zip(skin, rng.normal(0, 0.02, 3)))
    hair = _RED_HAIR if rng.random() < p_red else _interp(_HAIR_ANCHORS, darkness)
    light_eyes = max(0.0, 0.75 - darkness) * (1 - melanin)
    if rng.random() < light_eyes:
        eye = _EYE_COLOURS[("blue", "green", "grey")[int(rng.integers(3))]]
    else:
        eye = _EYE_COLOURS["dark" if darkness > 0.8 else "brown"]
    return skin, hair, eye


def _hair_and_beard(male: bool, age_group: str, rng: np.random.Generator) -> tuple[str, float, float]:
    """Hair style and beard/stubble strength; mostly long hair for women, short or bald for men."""
    if not male:
        style = ("long", "bob", "short")[int(rng.choice(3, p=(0.78, 0.17, 0.05)))]
        return style, 0.0, 0.0
    p_bald = {"young": 0.03, "middle": 0.15, "old": 0.4}[age_group]
    u = rng.random()
    style = "bald" if u < p_bald else ("long" if u > 0.96 else "short")
    v = rng.random()
    beard = float(rng.uniform(0.6, 0.9)) if v < 0.18 else 0.0
    stubble = float(rng.uniform(0.3, 0.6)) if 0.18 <= v < 0.45 else 0.0
    return style, beard, stubble


def _lip_colour(skin: RGB, male: bool, rng: np.random.Generator) -> RGB:
    """Lips: the skin darkened towards red, more saturated for women (sometimes lipstick)."""
    red = (0.62, 0.22, 0.25) if not male and rng.random() < 0.4 else (0.70, 0.38, 0.36)
    return _mix((skin[0] * 0.85, skin[1] * 0.62, skin[2] * 0.62), red, 0.35 if male else 0.5)


def face_session(rng: np.random.Generator) -> FaceSession:
    """Draw the settings one video shares: background, lighting, camera tint, clothes, pose bias."""
    grey = rng.uniform(0.15, 0.85)
    base = np.clip(0.5 * rng.uniform(0.1, 0.9, 3) + 0.5 * grey, 0, 1)
    other = np.clip(base + rng.normal(0, 0.12, 3), 0, 1)
    azimuth = float(rng.uniform(-0.9, 0.9))
    elevation = float(rng.uniform(-0.7, -0.1))  # light from above
    light = np.array([math.sin(azimuth), math.sin(elevation), 1.2])
    light = light / np.linalg.norm(light)
    return FaceSession(
        background=(_rgb(base), _rgb(other)), background_angle=float(rng.uniform(0, 2 * math.pi)),
        texture_seed=int(rng.integers(2**31)), texture_strength=float(rng.uniform(0.0, 0.12)),
        light=(float(light[0]), float(light[1]), float(light[2])),
        light_colour=_rgb(np.clip(1 + rng.normal(0, 0.03, 3), 0.9, 1.1)), ambient=float(rng.uniform(0.45, 0.65)),
        tint=_rgb(np.clip(1 + rng.normal(0, 0.03, 3), 0.92, 1.08)), clothes=_rgb(rng.uniform(0.05, 0.85, 3)),
        yaw=float(rng.uniform(-0.08, 0.08)), angle=float(rng.uniform(-0.1, 0.1)),
        noise=float(rng.uniform(0.005, 0.025)), blur=float(rng.uniform(0.2, 0.7)),
    )


def render_face(style: FaceStyle, session: FaceSession, rng: np.random.Generator, size: int) -> Image.Image:
    """One ``size`` x ``size`` RGB photograph of ``style`` in ``session``; pose, noise and blur drawn from ``rng``."""
    if size < MIN_INPUT_SIZE:
        raise ValueError(f"image size must be at least {MIN_INPUT_SIZE} pixels (MTCNN and InceptionResNet-V1 "
                         f"need inputs of {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} or more), got {size}")
    pose = _draw_pose(session, rng, size)
    x, y = _face_coordinates(pose, size)
    img = _background(session, size)
    _paint_head(img, x, y, style, session, pose, 1.2 / pose.scale, rng)  # edge: one-pixel-ish, in face units
    return _photograph(img, session, rng)


def _draw_pose(session: FaceSession, rng: np.random.Generator, size: int) -> _Pose:
    """Per-image pose: the face spans 35-60% of the frame width, rotated up to about 15 degrees."""
    width_fraction = float(rng.uniform(0.35, 0.6))
    scale = width_fraction * size / 2.0
    cx = size * (0.5 + float(rng.uniform(-0.07, 0.07)))
    cy = size * (0.46 + float(rng.uniform(-0.05, 0.05)))
    smiling = rng.random() < 0.5
    return _Pose(
        cx=cx, cy=cy, scale=scale, angle=session.angle + float(rng.uniform(-0.17, 0.17)),
        yaw=session.yaw + float(rng.uniform(-0.08, 0.08)),
        gaze=(float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.15, 0.15))),
        smile=float(rng.uniform(0.3, 1.0)) if smiling else 0.0,
        mouth_open=float(rng.uniform(0.0, 1.0)) if rng.random() < 0.3 else 0.0,
    )


def _face_coordinates(pose: _Pose, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Face-unit coordinates of every pixel centre (inverse of the pose's similarity transform)."""
    px = np.arange(size, dtype=np.float32) + 0.5
    dx = px[None, :] - pose.cx
    dy = px[:, None] - pose.cy
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    return (c * dx + s * dy) / pose.scale, (-s * dx + c * dy) / pose.scale


def _feature_shifts(pose: _Pose) -> tuple[float, float, float]:
    """Horizontal shift of eyes, nose tip and mouth: nearer parts move more when the head turns."""
    return 0.35 * pose.yaw, 0.9 * pose.yaw, 0.5 * pose.yaw


def _paint(img: np.ndarray, alpha: np.ndarray, colour: RGB | np.ndarray) -> None:
    """Composite ``colour`` over ``img`` in place with coverage ``alpha``."""
    colour = _col(colour) if isinstance(colour, tuple) else colour
    img += alpha * (colour - img)


def _shade(img: np.ndarray, alpha: np.ndarray, factor: float) -> None:
    """Darken (factor < 1) or brighten (factor > 1) ``img`` in place where ``alpha`` covers it."""
    img *= 1 + (factor - 1) * alpha


def _ramp(d: np.ndarray, edge: float) -> np.ndarray:
    """Coverage from a signed distance ``d`` (positive inside), ramping over ``edge``."""
    return np.clip(0.5 + d / edge, 0.0, 1.0)


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A soft Gaussian bump of radii (rx, ry): smooth shading such as shadows and highlights."""
    return np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float) -> np.ndarray:
    """Anti-aliased coverage of a filled ellipse."""
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return _ramp((1 - r) * min(rx, ry), edge)


def _curve_band(x: np.ndarray, y: np.ndarray, x0: float, x1: float, centre: np.ndarray | float,
                half_thickness: np.ndarray | float, edge: float) -> np.ndarray:
    """Coverage of a band of ``half_thickness`` around the curve y = ``centre`` (per pixel) for x0 <= x <= x1."""
    inside_x = np.minimum(x - x0, x1 - x)
    return _ramp(np.minimum(half_thickness - np.abs(y - centre), inside_x), edge)


def _line(x: np.ndarray, y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
          half_width: float, edge: float) -> np.ndarray:
    """Coverage of a straight stroke from ``p0`` to ``p1`` (wrinkles)."""
    vx, vy = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((x - p0[0]) * vx + (y - p0[1]) * vy) / (vx * vx + vy * vy), 0, 1)
    d = np.hypot(x - p0[0] - t * vx, y - p0[1] - t * vy)
    return _ramp(half_width - d, edge)


def _head_radius(x: np.ndarray, y: np.ndarray, style: FaceStyle) -> np.ndarray:
    """Normalised radius of the head outline (1 on the outline): an ellipse squared off and tapered below."""
    cy = -0.2
    b = style.face_length
    v = (y - cy) / b
    lower = np.clip(v, 0.0, 1.0)
    width = style.face_width * (1 + 0.05 * style.sag * lower) * (1 - style.jaw_taper * lower ** 1.5)
    p = 2.0 + style.jaw_square * lower
    return (np.abs(x / width) ** p + np.abs(v) ** p) ** (1 / p)


def _paint_head(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, session: FaceSession,
                pose: _Pose, edge: float, rng: np.random.Generator) -> None:
    """Paint hair, body, head and features over the background in ``img``, then light them."""
    strands = _strand_texture(x, y, style, rng)
    behind = np.zeros_like(x)
    if style.hair_style in ("long", "bob"):
        behind = _hair_behind(x, y, style, edge)
        _paint(img, behind, _texture(style.hair, strands, 0.8))
    cover = np.maximum(behind, _paint_body(img, x, y, style, session, edge))
    if style.hair_style == "long":  # locks falling over the shoulders, in front of the clothes
        locks = behind * _ramp(np.abs(x) - style.face_width * 0.55, edge)
        _paint(img, locks, _texture(style.hair, strands, 0.85))
    cover = np.maximum(cover, _paint_ears(img, x, y, style, pose, edge))
    head = _ramp((1 - _head_radius(x, y, style)) * style.face_width * 0.5, edge)
    _paint(img, head, style.skin)
    eye_dx, nose_dx, mouth_dx = _feature_shifts(pose)
    _paint_skin_shading(img, x, y, head, style, nose_dx)
    for side in (-1, 1):
        _paint_eye(img, x - eye_dx, y, side, style, pose, edge)
        _paint_brow(img, x - eye_dx, y, side, style, edge)
    _paint_nose(img, x - nose_dx, y, style, session, edge)
    _paint_mouth(img, x - mouth_dx, y, style, pose, edge)
    _paint_beard(img, x - mouth_dx, y, head, style, pose, rng)
    _paint_wrinkles(img, x - eye_dx, y, style, edge)
    for mx, my, mr in style.moles:
        _paint(img, _ellipse(x - eye_dx, y, mx, my, mr, mr, edge) * head * 0.8, (0.30, 0.18, 0.12))
    front = _hair_front(x, y, style, head, edge)
    _paint(img, front, _texture(style.hair, strands, 1.0))
    _light(img, x, y, np.maximum(np.maximum(cover, head), front), style, session, pose)


def _strand_texture(x: np.ndarray, y: np.ndarray, style: FaceStyle, rng: np.random.Generator) -> np.ndarray:
    """Brightness modulation of hair: wavy strands of two widths along the hair's fall, plus grain."""
    phase = float(rng.uniform(0, 2 * math.pi))
    u = x - style.parting
    waves = 0.08 * np.sin(23 * u + 3 * np.sin(3 * y) + phase)
    waves += 0.04 * np.sin(61 * u + 5 * np.sin(5 * y + phase))
    return 1 + waves + 0.07 * rng.standard_normal(x.shape).astype(np.float32)


def _texture(colour: RGB, modulation: np.ndarray, gain: float) -> np.ndarray:
    """A per-pixel colour: ``colour`` times a brightness ``modulation`` (times ``gain``)."""
    return np.clip(_col(colour) * (modulation * gain), 0, 1)


def _hair_behind(x: np.ndarray, y: np.ndarray, style: FaceStyle, edge: float) -> np.ndarray:
    """Hair hanging behind the head and beside the face: to the shoulders (long) or the jaw (bob)."""
    bottom = (2.3 if style.hair_style == "long" else 0.85) - 0.08 * x * x + 0.04 * np.sin(17 * x)
    half_width = style.face_width * (1.22 + style.hair_volume)
    top = _ellipse(x, y, 0.0, -0.25, half_width, style.face_length * 1.12, edge)
    sides = _ramp(np.minimum(half_width * (1 - 0.08 * np.clip(y, 0, None)) - np.abs(x), bottom - y), edge * 3)
    return np.maximum(top, sides * _ramp(y + 0.25, edge))


def _hair_front(x: np.ndarray, y: np.ndarray, style: FaceStyle, head: np.ndarray, edge: float) -> np.ndarray:
    """Hair over the head: the cap above the hairline, side locks and fringe (bald: a rim at the sides)."""
    volume = style.face_width * (1.05 + style.hair_volume)
    cap = _ellipse(x, y, 0.0, -0.25, volume, style.face_length * 1.1, edge)
    dx = x - style.parting * 0.3
    hairline = style.hairline + 0.35 * dx ** 2 - 0.06 * np.cos(6 * dx)
    if style.fringe > 0:
        fringe = -0.5 - style.fringe * 0.3 + 0.15 * dx ** 2
        hairline = np.where(np.abs(dx) < 0.9, np.maximum(hairline, fringe), hairline)
    above = _ramp(hairline - y, edge * 2)
    if style.hair_style == "bald":
        rim = _ramp(np.abs(x) - style.face_width * 0.8, edge * 2) * _ramp(0.05 - y, edge) * _ramp(y + 0.9, edge)
        return rim * head * 0.85
    side_bottom = {"long": 0.9, "bob": 0.75, "short": -0.22}[style.hair_style]
    side_inner = style.face_width * (0.93 if style.hair_style == "short" else 0.84)
    sides = _ramp(np.minimum(np.abs(x) - side_inner, volume - np.abs(x)), edge)
    sides *= _ramp(side_bottom - y, edge * 2)
    sides *= np.maximum(cap, _ramp(y + 0.25, edge))
    return np.maximum(np.maximum(cap * above, sides), above * head)


def _paint_body(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, session: FaceSession,
                edge: float) -> np.ndarray:
    """Neck and shoulders in clothes with a V-neck, so that the head sits on a body; returns their coverage."""
    neck_w = style.face_width * 0.48
    neck = _ramp(np.minimum(neck_w - np.abs(x), y - 0.3), edge)
    _paint(img, neck, _col(style.skin) * 0.85)
    _shade(img, _blob(x, y, 0.0, 1.05, neck_w * 1.2, 0.3) * neck, 0.65)
    shoulders = _ramp(y - (1.5 + 0.1 * x * x), edge)
    opening = _ramp(neck_w * 0.9 - 1.1 * (y - 1.45) - np.abs(x), edge)
    clothes = shoulders * (1 - opening)
    _paint(img, clothes, session.clothes)
    _shade(img, _blob(x, y, 0.0, 1.6, 1.8, 0.6) * clothes, 0.85)
    return np.maximum(neck, clothes)


def _paint_ears(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, pose: _Pose,
                edge: float) -> np.ndarray:
    """Two ears on the head's sides (the turned-away one partly hidden); returns their coverage."""
    cover = np.zeros_like(x)
    for side in (-1, 1):
        ex = side * (style.face_width - 0.6 * pose.yaw * side)
        ear = _ellipse(x, y, ex, 0.02, 0.14 * style.ear_size, 0.24 * style.ear_size, edge)
        _paint(img, ear, _col(style.skin) * 0.9)
        _shade(img, _blob(x, y, ex + side * 0.02, 0.02, 0.05, 0.14) * ear, 0.7)
        cover = np.maximum(cover, ear)
    return cover


def _paint_skin_shading(img: np.ndarray, x: np.ndarray, y: np.ndarray, head: np.ndarray, style: FaceStyle,
                        nose_dx: float) -> None:
    """Soft colour variation of the skin: blush on the cheeks, a shadow towards the chin."""
    blush = sum(_blob(x, y, side * 0.55 + nose_dx * 0.4, 0.35, 0.22, 0.16) for side in (-1, 1))
    _paint(img, blush * head * 0.12, (0.85, 0.35, 0.35))
    under_chin = np.clip((y - (style.face_length - 0.45)) * 2.0, 0, 1)
    _shade(img, head * under_chin, 0.88)


def _paint_eye(img: np.ndarray, x: np.ndarray, y: np.ndarray, side: int, style: FaceStyle, pose: _Pose,
               edge: float) -> None:
    """One eye: a dark socket, white almond, coloured iris with pupil and glint, lashes on the lid."""
    ex, ey = side * style.eye_spacing, style.eye_y
    w, h = style.eye_width, style.eye_height
    _shade(img, _blob(x, y, ex, ey - 0.02, w * 1.45, h * 2.6), 0.68)
    _shade(img, _blob(x, y, ex + side * 0.02, ey + h * 2.0, w * 0.9, h * 0.8), 0.9 - 0.08 * style.sag)
    u = (x - ex) / w
    spread = np.clip(1 - u * u, 0, None)
    almond = _ramp(np.minimum(y - (ey - h * spread), (ey + 0.8 * h * spread) - y), edge)
    almond *= _ramp(1 - np.abs(u), edge / w)
    _paint(img, almond, (0.88, 0.86, 0.82))
    ix, iy = ex + pose.gaze[0] * w * 0.4, ey + pose.gaze[1] * h * 0.3
    iris_r = h * 1.02
    iris = _ellipse(x, y, ix, iy, iris_r, iris_r, edge) * almond
    _paint(img, iris, style.eye)
    _paint(img, _ellipse(x, y, ix, iy, iris_r * 0.45, iris_r * 0.45, edge) * almond, (0.03, 0.03, 0.03))
    _paint(img, _blob(x, y, ix + 0.3 * iris_r, iy - 0.35 * iris_r, iris_r * 0.22, iris_r * 0.22) * almond * 0.8,
           (1.0, 1.0, 1.0))
    _shade(img, _blob(x, y, ex, ey - h, w, h * 0.8) * almond, 0.7)  # lid shadow on the eyeball
    lid = _curve_band(x, y, ex - w * 1.05, ex + w * 1.1, ey - h * spread, 0.012 + 0.014 * style.lash, edge)
    _paint(img, lid, (0.08, 0.05, 0.04))
    crease = _curve_band(x, y, ex - w * 0.9, ex + w * 0.95, ey - 1.9 * h - 0.03 * spread, 0.008, edge)
    _shade(img, crease, 0.82)


def _paint_brow(img: np.ndarray, x: np.ndarray, y: np.ndarray, side: int, style: FaceStyle, edge: float) -> None:
    """One eyebrow: an arched, outward-thinning stroke above the eye."""
    ex = side * style.eye_spacing
    base = style.eye_y - style.brow_gap
    half = style.eye_width * 1.15
    inner, outer = ex - side * half * 0.95, ex + side * half * 1.1
    t = np.clip((x - inner) / (outer - inner), 0, 1)  # 0 at the inner end, 1 at the outer end
    thickness = style.brow_thickness * (1.1 - 0.6 * t)
    centre = base - style.brow_arch * np.sin(np.pi * (0.1 + 0.9 * t)) + 0.02 * t
    band = _curve_band(x, y, min(inner, outer), max(inner, outer), centre, thickness, edge)
    _paint(img, band * 0.9, style.brow)


def _paint_nose(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, session: FaceSession,
                edge: float) -> None:
    """Nose: shadowed flanks (the one away from the light darker), bright tip, wings, nostrils, shadow below."""
    tip, w = style.nose_y, style.nose_width
    top = style.eye_y + 0.02
    along = np.clip((y - top) / (tip - top), 0, 1)
    for side in (-1, 1):
        facing_light = side * session.light[0]  # > 0: this flank faces the light
        flank_x = side * (0.05 + 0.45 * w * along)
        flank = _blob(x, y, flank_x, tip - 0.12, 0.035 + 0.04 * along, (tip - top) * 0.55)
        _shade(img, flank * (y > top), float(np.clip(0.8 + 0.15 * facing_light, 0.65, 0.92)))
        _shade(img, _blob(x, y, side * w * 0.78, tip + 0.01, w * 0.32, 0.06), 0.8)
        nostril = _ellipse(x, y, side * w * 0.42, tip + 0.055, w * 0.26, 0.032, edge)
        _paint(img, nostril * 0.85, (0.18, 0.10, 0.08))
    _shade(img, _blob(x, y, 0.0, tip - 0.05, w * 0.45, 0.09), 1.14)
    _shade(img, _blob(x, y, 0.0, (top + tip) / 2, 0.05, (tip - top) * 0.4), 1.07)  # bright bridge
    _shade(img, _blob(x, y, 0.0, tip + 0.12, w * 0.9, 0.05), 0.82)


def _paint_mouth(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, pose: _Pose, edge: float) -> None:
    """Mouth: upper and lower lip around a dark line whose corners rise with a smile; open shows teeth."""
    my, mw = style.mouth_y, style.mouth_width
    u = np.clip(x / mw, -1.2, 1.2)
    spread = np.clip(1 - u * u, 0, None)
    line = my - 0.05 * pose.smile * (u * u) + 0.02 * pose.smile * spread
    gap = pose.mouth_open * 0.07 * spread
    upper = line - gap * 0.35 - style.lip_height * (0.75 + 0.3 * np.abs(np.sin(np.pi * u))) * spread
    lower = line + gap + style.lip_height * 1.2 * spread
    inside_x = _ramp((1 - np.abs(u)) * mw, edge)
    lips = _ramp(np.minimum(y - upper, lower - y), edge) * inside_x
    _shade(img, _blob(x, y, 0.0, my + style.lip_height * 2.4, mw * 0.6, 0.05), 0.85)  # under the lower lip
    _paint(img, lips, style.lip)
    _shade(img, _ramp(np.minimum(y - line, lower - y), edge) * inside_x * 0.2, 1.15)
    opening = _ramp(np.minimum(y - (line - gap * 0.35), line + gap - y), edge) * inside_x
    _paint(img, opening, (0.22, 0.07, 0.07))
    teeth = _ramp(np.minimum(y - (line - gap * 0.35), line + gap * 0.2 - y), edge)
    teeth *= _ramp((0.8 - np.abs(u)) * mw, edge)
    _paint(img, teeth * (gap > 0.01), (0.86, 0.84, 0.78))
    _paint(img, _curve_band(x, y, -mw, mw, line, 0.008, edge), (0.25, 0.09, 0.08))
    for side in (-1, 1):
        _shade(img, _blob(x, y, side * mw, my - 0.05 * pose.smile, 0.04, 0.035), 0.72)


def _paint_beard(img: np.ndarray, x: np.ndarray, y: np.ndarray, head: np.ndarray, style: FaceStyle, pose: _Pose,
                 rng: np.random.Generator) -> None:
    """Beard and moustache (full) or stubble shading on the lower face, leaving the lips free."""
    density = max(style.beard, style.stubble * 0.45)
    if density == 0:
        return
    my, mw = style.mouth_y, style.mouth_width
    jaw_zone = np.clip((y - (style.nose_y + 0.05)) * 4, 0, 1) * head
    lips = _blob(x, y, 0.0, my + 0.02, mw * 1.05, style.lip_height * 1.6 + 0.03 * pose.mouth_open)
    cheeks_free = 1 - _blob(x, y, 0.0, style.nose_y - 0.2, style.face_width * 0.9, 0.35)
    grain = np.clip(0.75 + 0.45 * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
    alpha = np.clip(jaw_zone * (1 - lips) * cheeks_free * density * grain, 0, 1)
    _paint(img, alpha, style.hair)


def _paint_wrinkles(img: np.ndarray, x: np.ndarray, y: np.ndarray, style: FaceStyle, edge: float) -> None:
    """Age lines: forehead lines, nasolabial folds, crow's feet; their strength grows with age."""
    if style.wrinkles < 0.2:
        return
    k = style.wrinkles
    strokes = np.zeros_like(x)
    for i in range(3):
        fy = style.eye_y - style.brow_gap - 0.18 - 0.12 * i
        strokes = np.maximum(strokes, _curve_band(x, y, -0.45, 0.45, fy + 0.12 * x * x, 0.012, edge))
    for side in (-1, 1):
        nose_wing = (side * style.nose_width * 1.05, style.nose_y)
        corner = (side * (style.mouth_width + 0.06), style.mouth_y + 0.08)
        strokes = np.maximum(strokes, _line(x, y, nose_wing, corner, 0.014, edge))
        for j in (-1, 0, 1):
            start = (side * (style.eye_spacing + style.eye_width * 1.05), style.eye_y + 0.02 * j)
            end = (start[0] + side * 0.11, start[1] + 0.05 * j)
            strokes = np.maximum(strokes, _line(x, y, start, end, 0.008, edge))
    _shade(img, strokes * 0.7 * k, 0.7)


def _light(img: np.ndarray, x: np.ndarray, y: np.ndarray, cover: np.ndarray, style: FaceStyle,
           session: FaceSession, pose: _Pose) -> None:
    """Light the person (coverage ``cover``): ambient plus a Lambertian term of the head ellipsoid's normal."""
    nx = x / (style.face_width * 1.15)
    ny = (y + 0.2) / (style.face_length * 1.15)
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.0, 1.0))
    lx, ly, lz = session.light
    lx += 0.3 * pose.yaw
    diffuse = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
    on_head = np.clip(nz * 4, 0, 1)
    lit = session.ambient + (1 - session.ambient) * (on_head * diffuse * 1.25 + (1 - on_head) * 0.6)
    gain = 1 + cover * (lit - 1)
    img *= gain * _col(session.light_colour)


def _background(session: FaceSession, size: int) -> np.ndarray:
    """A two-colour linear gradient with a blurry random texture (walls, rooms, outdoor blur)."""
    t = np.linspace(-1, 1, size, dtype=np.float32)
    c, s = math.cos(session.background_angle), math.sin(session.background_angle)
    g = np.clip(0.5 + 0.5 * (c * t[None, :] + s * t[:, None]), 0, 1)
    c0, c1 = (_col(col) for col in session.background)
    img = c0 * (1 - g) + c1 * g
    coarse = np.random.default_rng(session.texture_seed).random((6, 6, 3))
    texture = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    img += session.texture_strength * (np.asarray(texture, dtype=np.float32).transpose(2, 0, 1) / 255 - 0.5)
    return np.ascontiguousarray(img, dtype=np.float32)


def _photograph(img: np.ndarray, session: FaceSession, rng: np.random.Generator) -> Image.Image:
    """Camera effects: a brightness gradient across the frame, colour tint, sensor noise, lens blur."""
    size = img.shape[1]
    t = np.linspace(-1, 1, size, dtype=np.float32)
    lx, ly = session.light[0], session.light[1]
    img *= 1 + 0.12 * (lx * t[None, :] + ly * t[:, None])
    img *= _col(session.tint)
    img += float(session.noise) * rng.standard_normal(img.shape).astype(np.float32)
    pixels = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    radius = session.blur * float(rng.uniform(0.7, 1.3)) * size / 160
    return image.filter(ImageFilter.GaussianBlur(radius))


def _interp(anchors: np.ndarray, t: float) -> RGB:
    """Piecewise-linear colour along ``anchors`` at ``t`` in [0, 1]."""
    pos = np.clip(t, 0, 1) * (len(anchors) - 1)
    i = min(int(pos), len(anchors) - 2)
    return _rgb(anchors[i] + (pos - i) * (anchors[i + 1] - anchors[i]))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend of two colours."""
    return tuple(float(p + t * (q - p)) for p, q in zip(a, b))


def _col(colour: RGB) -> np.ndarray:
    """A colour as a (3, 1, 1) array that broadcasts over channel-first images."""
    return np.asarray(colour, dtype=np.float32)[:, None, None]


def _rgb(values) -> RGB:
    """A plain float triple (hashable, for frozen dataclasses)."""
    return tuple(float(v) for v in values)
