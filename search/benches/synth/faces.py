"""Procedurally drawn faces for the synthetic data (PIL ImageDraw plus a little numpy noise).

A person's `Look` is sampled once; each of the seven photos redraws it with a slight pose
jitter and the mask state of that photo. Age is shown continuously: an apparent age (true age
plus per-person noise) drives grey hair, wrinkle count and darkness, age spots and skin tone,
so 58, 59 and 60 look nearly alike while 20, 45 and 60 differ. Gender is shown mostly by hair
length, jaw width, brows and lips, with overlap. Coordinates are in face units: (u, v) maps to
(cx + u * fw, cy + v * fh), with the face ellipse spanning u, v in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from runners.classes import MASK_NAMES

RGB = tuple[int, int, int]

# Background palettes per age band (bluish young, greenish middle, warm old), used for most people.
BAND_BACKGROUNDS: tuple[RGB, ...] = ((105, 140, 205), (120, 175, 120), (215, 160, 110))
BAND_BACKGROUND_SHARE = 0.8
_SKINS: tuple[RGB, RGB] = ((240, 208, 182), (178, 128, 92))
_HAIR_BASES: tuple[RGB, ...] = ((22, 20, 20), (45, 32, 24), (70, 48, 32), (105, 70, 42))
_GREY: RGB = (212, 212, 216)
_CLOTHES: tuple[RGB, ...] = ((40, 40, 45), (200, 200, 205), (60, 80, 140), (140, 40, 50), (90, 110, 70),
                             (190, 160, 120), (230, 230, 230), (110, 70, 120))
_MASK_SOLIDS: tuple[RGB, ...] = ((240, 240, 240), (28, 28, 32), (150, 195, 230), (95, 140, 205),
                                 (200, 205, 210), (225, 170, 185), (60, 70, 110))
_PATTERN_INKS: tuple[RGB, ...] = ((200, 40, 50), (30, 60, 140), (40, 40, 40), (220, 180, 40), (40, 130, 80))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = float(np.clip(t, 0.0, 1.0))
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, c: RGB, sd: float) -> RGB:
    out = np.clip(np.array(c) + rng.normal(0, sd, 3), 0, 255)
    return tuple(int(v) for v in out)  # type: ignore[return-value]


@dataclass(frozen=True)
class Look:
    """Everything that stays the same across one person's seven photos."""

    gender: int  # drawn gender: 0 male, 1 female
    apparent_age: float  # true age plus per-person noise; drives every age cue
    skin: RGB
    face_w: float  # half width of the face ellipse, as a fraction of the reference length
    face_h: float  # half height, same unit
    jaw: float  # jaw width relative to face width (square male jaw ~0.9, narrow ~0.65)
    hair: str  # "long", "bob", "short", "buzz"
    hairline: float  # v of the hairline centre (-0.38 fringe ... -0.9 receding)
    hair_rgb: RGB
    grey: float  # 0 dark hair .. 1 white
    wrinkles: float  # 0 smooth .. ~1.3 deep lines
    brow: float  # eyebrow thickness factor
    lips: RGB
    spots: tuple[tuple[float, float, float], ...]  # (u, v, radius) age spots
    background: RGB
    clothes: RGB
    collar: RGB


def sample_look(rng: np.random.Generator, gender: int, age: int, background_band: int) -> Look:
    """Sample a person's appearance; `background_band` is the canonical band of the true age."""
    apparent = age + rng.normal(0.0, 2.0)
    t_age = float(np.clip((apparent - 18.0) / 45.0, 0.0, 1.1))
    skin = _mix(*_SKINS, rng.beta(2.0, 3.0))
    skin = _mix(skin, (150, 120, 100), 0.22 * t_age)  # older skin: duller and darker
    skin = _jitter(rng, skin, 4.0)
    grey = float(np.clip((apparent - 38.0) / 24.0 + rng.normal(0.0, 0.1), 0.0, 1.0))
    wrinkles = float(np.clip((apparent - 26.0) / 28.0 + rng.normal(0.0, 0.08), 0.0, 1.3))
    hair_p = [0.45, 0.3, 0.15, 0.1] if gender == 1 else [0.55, 0.3, 0.12, 0.03]
    base = _HAIR_BASES[int(rng.choice(4, p=hair_p))]

    if gender == 1:
        hair = str(rng.choice(["long", "bob", "short"], p=[0.62, 0.24, 0.14]))
        fringe = rng.random() < 0.4
    else:
        hair = str(rng.choice(["short", "buzz", "bob", "long"], p=[0.62, 0.24, 0.09, 0.05]))
        fringe = rng.random() < 0.15
    hairline = -0.4 if fringe else -0.62 + rng.normal(0.0, 0.04)
    if gender == 0 and rng.random() < np.clip((apparent - 40.0) / 35.0, 0.0, 0.6):
        hairline = -0.8 - 0.1 * rng.random()  # receding
    if gender == 1:
        jaw, brow = rng.normal(0.66, 0.06), rng.normal(0.6, 0.12)
        lips = _mix(skin, (150, 70, 70), 0.35)
        if rng.random() < 0.7:  # lipstick
            lips = _mix(skin, (200, 60, 80), rng.uniform(0.3, 0.8))
    else:
        jaw, brow = rng.normal(0.9, 0.06), rng.normal(1.25, 0.15)
        lips = _mix(skin, (150, 70, 70), 0.35)
    face_w = rng.normal(0.245 if gender == 0 else 0.235, 0.01)
    face_h = face_w * rng.normal(1.3 if gender == 1 else 1.25, 0.04)

    n_spots = int(rng.poisson(max(0.0, apparent - 46.0) / 3.0))
    spots = tuple((float(rng.uniform(-0.75, 0.75)), float(rng.uniform(-0.5, 0.2)),
                   float(rng.uniform(0.02, 0.045))) for _ in range(n_spots))
    if rng.random() < BAND_BACKGROUND_SHARE:
        background = _jitter(rng, BAND_BACKGROUNDS[background_band], 14.0)
    else:
        background = tuple(int(v) for v in rng.integers(50, 235, 3))  # type: ignore[assignment]
    clothes = _jitter(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 10.0)
    return Look(gender=gender, apparent_age=float(apparent), skin=skin, face_w=float(face_w),
                face_h=float(face_h), jaw=float(np.clip(jaw, 0.5, 1.05)), hair=hair, hairline=float(hairline),
                hair_rgb=_mix(base, _GREY, grey), grey=grey, wrinkles=wrinkles, brow=float(max(0.3, brow)),
                lips=lips, spots=spots, background=background, clothes=clothes,
                collar=_mix(clothes, (255, 255, 255), rng.uniform(0.2, 0.6)))


class _Face:
    """Maps face units to canvas pixels for one photo (with its pose jitter)."""

    def __init__(self, draw: ImageDraw.ImageDraw, w: int, h: int, look: Look, rng: np.random.Generator):
        self.d = draw
        ref = min(w, 0.75 * h)
        scale = rng.uniform(0.95, 1.05)
        self.cx = w * (0.5 + rng.uniform(-0.03, 0.03))
        self.cy = h * (0.43 + rng.uniform(-0.02, 0.02))
        self.fw = look.face_w * ref * scale
        self.fh = look.face_h * ref * scale
        self.yaw = rng.uniform(-0.07, 0.07)  # inner features shift sideways a little
        self.px = ref / 100.0  # one "point": line widths scale with the image

    def p(self, u: float, v: float, feature: bool = False) -> tuple[float, float]:
        return self.cx + (u + (self.yaw if feature else 0.0)) * self.fw, self.cy + v * self.fh

    def box(self, u0: float, v0: float, u1: float, v1: float, feature: bool = False) -> list[float]:
        return [*self.p(u0, v0, feature), *self.p(u1, v1, feature)]

    def width(self, points: float) -> int:
        return max(1, int(round(points * self.px)))

    def curve(self, us: Sequence[float] | np.ndarray, vs: Sequence[float] | np.ndarray,
              feature: bool = True) -> list[tuple[float, float]]:
        return [self.p(float(u), float(v), feature) for u, v in zip(us, vs)]

    def stroke(self, us: Sequence[float] | np.ndarray, vs: Sequence[float] | np.ndarray, fill: RGB,
               points: float, feature: bool = True) -> None:
        self.d.line(self.curve(us, vs, feature), fill=fill, width=self.width(points))


def _outline(f: _Face, look: Look, grow: float = 1.0) -> list[tuple[float, float]]:
    """Face outline: an ellipse whose lower half is widened towards the jaw width."""
    theta = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    u, v = np.cos(theta), np.sin(theta)
    lower = np.clip(v, 0.0, 1.0)
    jaw_push = 1.0 + (look.jaw - 0.7) * 0.9 * np.sin(np.pi * lower) ** 0.7 * (lower > 0)
    return f.curve(u * jaw_push * grow, v * grow, feature=False)


def _draw_hair_back(f: _Face, look: Look) -> None:
    if look.hair in ("long", "bob"):
        bottom = 1.9 if look.hair == "long" else 0.75
        f.d.rounded_rectangle(f.box(-1.3, -0.7, 1.3, bottom), radius=0.5 * f.fw, fill=look.hair_rgb)


def _draw_hair_front(f: _Face, look: Look) -> None:
    volume = {"long": 0.22, "bob": 0.2, "short": 0.14, "buzz": 0.06}[look.hair]
    theta = np.linspace(np.pi, 0.0, 25)
    outer = f.curve(1.1 * np.cos(theta), -0.25 - (0.75 + volume) * np.sin(theta), feature=False)
    us = np.linspace(1.0, -1.0, 25)
    line = f.curve(us, look.hairline + (-0.25 - look.hairline) * np.abs(us) ** 1.6, feature=False)
    colour = _mix(look.hair_rgb, look.skin, 0.35) if look.hair == "buzz" else look.hair_rgb
    f.d.polygon(outer + line, fill=colour)
    if look.hair in ("long", "bob"):  # strands over the ears, down the sides of the face
        low = 1.6 if look.hair == "long" else 0.55
        for s in (-1, 1):
            f.d.polygon([f.p(s * 1.12, -0.35), f.p(s * 0.88, -0.35), f.p(s * 0.93, low * 0.6),
                         f.p(s * 1.25, low)], fill=colour)
    else:  # sideburns
        for s in (-1, 1):
            f.d.polygon([f.p(s * 1.06, -0.3), f.p(s * 0.92, -0.3), f.p(s * 0.95, 0.02)], fill=colour)
    if 0.08 < look.grey < 0.92:  # salt and pepper strands
        dark = _mix(look.hair_rgb, (20, 20, 20), 0.6)
        for k in range(9):
            a = np.pi * (0.12 + 0.76 * k / 8)
            f.stroke([0.55 * np.cos(a), np.cos(a)], [-0.5 - 0.3 * np.sin(a), -0.3 - 0.65 * np.sin(a)],
                     dark if k % 2 else _GREY, 0.6, feature=False)


def _draw_features(f: _Face, look: Look) -> None:
    dark = _mix(look.skin, (40, 25, 20), 0.55)
    brow_rgb = _mix(look.hair_rgb, (30, 25, 20), 0.5 * (1 - look.grey))
    for s in (-1, 1):
        f.d.ellipse(f.box(s * 0.4 - 0.17, -0.17, s * 0.4 + 0.17, -0.07, True), fill=(245, 245, 240))
        f.d.ellipse(f.box(s * 0.4 - 0.07, -0.17, s * 0.4 + 0.07, -0.07, True), fill=(45, 32, 28))
        if look.gender == 1:  # eyeliner and lashes: a cue that stays visible above a mask
            f.stroke([s * 0.2, s * 0.4, s * 0.6, s * 0.66], [-0.14, -0.19, -0.16, -0.2], (25, 18, 18), 1.3)
        else:
            f.stroke([s * 0.22, s * 0.4, s * 0.58], [-0.15, -0.19, -0.15], dark, 0.7)
        f.d.line(f.curve(np.array([s * 0.16, s * 0.38, s * 0.62]), np.array([-0.3, -0.35, -0.31])),
                 fill=brow_rgb, width=f.width(1.3 * look.brow))
    f.d.line(f.curve(np.array([0.02, -0.07, 0.0, 0.09]), np.array([-0.08, 0.22, 0.29, 0.26])),
             fill=dark, width=f.width(0.8))
    f.d.chord(f.box(-0.26, 0.44, 0.26, 0.66, True), 0, 180, fill=look.lips)
    f.stroke([-0.26, 0.0, 0.26], [0.55, 0.57, 0.55], dark, 0.6)


def _draw_age(f: _Face, look: Look) -> None:
    w = look.wrinkles
    line = _mix(look.skin, (70, 45, 35), 0.25 + 0.45 * min(w, 1.0))
    width = 0.55 + 0.35 * min(w, 1.0)  # in points
    n_forehead = int(np.clip(np.floor(w * 4.0), 0, 5))
    top = max(look.hairline + 0.06, -0.75)
    for k in range(n_forehead):
        v = -0.42 - (top * -1 - 0.42) * (k + 0.5) / max(n_forehead, 1)
        us = np.linspace(-0.45, 0.45, 7)
        f.stroke(us, v - 0.03 * np.cos(us * 3.0), line, width)
    if w > 0.3:  # crow's feet
        for s in (-1, 1):
            for dv in ((-0.06, -0.1), (0.0, 0.0), (0.06, 0.1))[: 1 + int(w * 2.2)]:
                f.stroke([s * 0.62, s * 0.78], [-0.12 + dv[0], -0.12 + dv[1]], line, width)
    if w > 0.2:  # under-eye bags and nasolabial folds
        for s in (-1, 1):
            f.stroke([s * 0.26, s * 0.4, s * 0.54], [-0.02, 0.01, -0.02], line, width)
            f.stroke([s * 0.17, s * 0.28, s * 0.33], [0.26, 0.42, 0.6], line, width)
    if w > 0.65:  # jowls
        for s in (-1, 1):
            f.stroke([s * 0.5, s * 0.55, s * 0.5], [0.62, 0.75, 0.86], line, width)
    spot = _mix(look.skin, (110, 70, 40), 0.45)
    for u, v, r in look.spots:
        f.d.ellipse(f.box(u - r, v - r * 0.8, u + r, v + r * 0.8, True), fill=spot)


def _mask_fill(rng: np.random.Generator) -> tuple[str, RGB, RGB]:
    style = str(rng.choice(["surgical", "kf94", "cloth", "patterned"], p=[0.35, 0.25, 0.2, 0.2]))
    base = _MASK_SOLIDS[int(rng.integers(len(_MASK_SOLIDS)))]
    if style == "surgical":
        base = _MASK_SOLIDS[int(rng.choice([0, 2, 3]))]
    ink = _mix(base, (0, 0, 0), 0.3)
    if style == "patterned":
        ink = _PATTERN_INKS[int(rng.integers(len(_PATTERN_INKS)))]
    return style, _jitter(rng, base, 6.0), ink


def _draw_mask(img: Image.Image, f: _Face, look: Look, state: str, rng: np.random.Generator) -> None:
    """Mask over nose and mouth ("wear"), pulled low under the nose or onto the chin ("incorrect")."""
    style, base, ink = _mask_fill(rng)
    shift = rng.normal(0.0, 0.025)
    if state == "wear":
        top = 0.0 + shift
    else:
        top = (0.37 if rng.random() < 0.5 else 0.7) + shift
    span = 1.06 * max(1.0, 0.35 + look.jaw * 0.75)
    theta = np.linspace(0.12 * np.pi, 0.88 * np.pi, 15)
    drop = 0.12 if top > 0.5 else 0.0  # a mask on the chin hangs below it
    bottom = [f.p(span * np.cos(a) * 0.97, max(top + 0.3, 1.07 * np.sin(a) + drop), True) for a in theta]
    upper = [f.p(-span, top + 0.15, True), f.p(-0.4, top + 0.02, True), f.p(0.0, top - 0.04, True),
             f.p(0.4, top + 0.02, True), f.p(span, top + 0.15, True)]
    polygon = upper + bottom
    for s in (-1, 1):  # ear loops
        f.d.line([f.p(s * span, top + 0.18, True), f.p(s * 1.02, -0.12)], fill=_mix(base, look.skin, 0.4),
                 width=f.width(0.45))
    if style == "patterned":
        layer = Image.new("RGB", img.size, base)
        ld = ImageDraw.Draw(layer)
        step = max(3, int(f.fw * 0.22))
        if rng.random() < 0.5:
            for y in range(0, img.size[1], step):
                ld.rectangle([0, y, img.size[0], y + step // 2], fill=ink)
        else:
            for y in range(0, img.size[1], step):
                for x in range((y // step) % 2 * step // 2, img.size[0], step):
                    ld.ellipse([x, y, x + step // 2, y + step // 2], fill=ink)
        stencil = Image.new("L", img.size, 0)
        ImageDraw.Draw(stencil).polygon(polygon, fill=255)
        img.paste(layer, (0, 0), stencil)
    else:
        f.d.polygon(polygon, fill=base)
    fold = _mix(base, (0, 0, 0), 0.22) if sum(base) > 200 else _mix(base, (255, 255, 255), 0.25)
    if style == "surgical":
        for k in (0.3, 0.5, 0.7):
            v = top + 0.15 + k * (min(1.0, top + 0.9) - top - 0.15)
            f.d.line([f.p(-span * 0.9, v, True), f.p(span * 0.9, v, True)], fill=fold, width=f.width(0.6))
    elif style == "kf94":
        f.stroke([0.0, 0.0], [top - 0.03, min(1.05, top + 1.0)], fold, 0.6)


def draw_photo(look: Look, state: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """One photo of `look` with mask `state` (one of runners.classes.MASK_NAMES), size = (width, height)."""
    if state not in MASK_NAMES:
        raise ValueError(f"mask state must be one of {MASK_NAMES}, got {state!r}")
    w, h = size
    ss = 2 if w < 256 else 1  # supersample small images so thin lines survive as soft lines
    img = Image.new("RGB", (w * ss, h * ss), look.background)
    draw = ImageDraw.Draw(img)
    f = _Face(draw, w * ss, h * ss, look, rng)
    # clothes and shoulders, neck
    draw.ellipse(f.box(-2.6, 1.45, 2.6, 4.2), fill=look.clothes)
    draw.polygon([f.p(-0.55, 1.5), f.p(0.0, 2.15), f.p(0.55, 1.5)], fill=look.collar)
    _draw_hair_back(f, look)
    neck = _mix(look.skin, (60, 40, 30), 0.12)
    draw.rectangle(f.box(-0.45, 0.4, 0.45, 1.6), fill=neck)
    draw.chord(f.box(-0.45, 1.3, 0.45, 1.75), 0, 180, fill=neck)
    for s in (-1, 1):
        draw.ellipse(f.box(s * 1.0 - 0.13, -0.22, s * 1.0 + 0.13, 0.15), fill=neck)
    draw.polygon(_outline(f, look), fill=look.skin)
    _draw_features(f, look)
    _draw_age(f, look)
    _draw_hair_front(f, look)
    if state != "not_wear":
        _draw_mask(img, f, look, state, rng)
    if ss > 1:
        img = img.reduce(ss)
    arr = np.asarray(img, dtype=np.float32)
    gain = rng.uniform(0.92, 1.08)
    # grey (luminance) sensor noise: one value per pixel is a third of the cost of per-channel noise
    arr = arr * gain + 3.0 * rng.standard_normal(size=(h, w, 1), dtype=np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
