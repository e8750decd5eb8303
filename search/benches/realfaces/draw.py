"""Draw one person's seven photos: a real face on a portrait photo, with a mask drawn on.

UTKFace faces are aligned 200x200 crops: eyes near y=70, nose tip near 110, mouth near 140,
chin near 190. A mask is drawn in that frame (top edge over the nose bridge when worn; below the
nose or on the chin when worn incorrectly), then the face is posed (shift, scale, tilt, light)
and pasted into the upper middle of a portrait photo with a background and shoulders, where
the harness's ``face`` crop finds it. A person keeps the background, clothes and mask style
across the seven photos; pose, light and mask colour vary per photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

CHIP = 200  # UTKFace's side
FACE_WIDTH_SHARE = 0.62  # face width / photo width
FACE_TOP_SHARE = 0.16  # face top / photo height
_SUPERSAMPLE = 2
_MASK_COLOURS: tuple[RGB, ...] = ((238, 238, 238), (30, 30, 34), (150, 192, 225), (95, 140, 205), (200, 204, 210),
                                  (226, 172, 186), (58, 68, 108), (212, 196, 168))
_INKS: tuple[RGB, ...] = ((200, 40, 50), (30, 60, 140), (40, 40, 40), (220, 180, 40), (40, 130, 80))
_CLOTHES: tuple[RGB, ...] = ((40, 40, 45), (200, 200, 205), (60, 80, 140), (140, 40, 50), (90, 110, 70),
                             (190, 160, 120), (230, 230, 230), (110, 70, 120))
# Top edge of the mask in the chip frame, per mask state: worn over the nose, below it, on the chin.
MASK_TOP = {"wear": 86.0, "nose": 122.0, "chin": 156.0}


@dataclass(frozen=True)
class Scene:
    """What stays the same across one person's photos."""

    background: tuple[RGB, RGB]  # top and bottom of a vertical gradient
    clothes: RGB
    style: str  # "surgical" (pleats) or "kf94" (a seam)
    incorrect: str  # "nose" or "chin": how this person wears the mask wrongly


def sample_scene(rng: np.random.Generator) -> Scene:
    top = rng.integers(60, 230, 3)
    bottom = np.clip(top + rng.normal(0, 25, 3), 0, 255)
    return Scene(
        background=(_rgb(top), _rgb(bottom)),
        clothes=_CLOTHES[int(rng.integers(len(_CLOTHES)))],
        style="surgical" if rng.random() < 0.6 else "kf94",
        incorrect="nose" if rng.random() < 0.6 else "chin",
    )


def _rgb(values: np.ndarray) -> RGB:
    return tuple(int(v) for v in np.clip(values, 0, 255))  # type: ignore[return-value]


def _mask_layer(top: float, colour: RGB, style: str, rng: np.random.Generator) -> Image.Image:
    """An RGBA layer in the chip frame holding a mask whose top edge is at ``top``."""
    s = _SUPERSAMPLE
    t = top + rng.normal(0, 2.0)
    left, right = 28 + rng.normal(0, 2), 172 + rng.normal(0, 2)
    outline = [(left, t + 14), (64, t + 1), (100, t - 4), (136, t + 1), (right, t + 14),
               (right - 6, t + 52), (160, t + 78), (130, t + 98), (100, t + 104), (70, t + 98),
               (40, t + 78), (left + 6, t + 52)]
    alpha = Image.new("L", (CHIP * s, CHIP * s), 0)
    draw = ImageDraw.Draw(alpha)
    draw.polygon([(x * s, y * s) for x, y in outline], fill=255)
    for y0, y1 in ((t + 16, t + 6), (t + 70, t + 58)):  # ear loops towards both sides
        draw.line([(left * s, y0 * s), (4 * s, y1 * s)], fill=255, width=3 * s)
        draw.line([(right * s, y0 * s), ((CHIP - 4) * s, y1 * s)], fill=255, width=3 * s)
    alpha = alpha.resize((CHIP, CHIP), Image.Resampling.BOX)

    yy = np.arange(CHIP, dtype=np.float32)[:, None, None]
    shade = 1.0 - 0.18 * np.clip((yy - t) / 110.0, 0, 1)  # darker towards the chin, as the cloth turns away
    rgb = np.broadcast_to(np.array(colour, np.float32), (CHIP, CHIP, 3)) * shade
    rgb = rgb + rng.normal(0, 5, (CHIP, CHIP, 1))
    layer = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(layer)
    seam = tuple(int(c * 0.75) for c in colour)
    if style == "surgical":
        for dy in (28, 48, 68):
            draw.line([(left + 6, t + dy), (right - 6, t + dy + 2)], fill=seam, width=2)
    else:
        draw.line([(100, t - 3), (100, t + 103)], fill=seam, width=2)
    if rng.random() < 0.2:  # a printed pattern
        ink = _INKS[int(rng.integers(len(_INKS)))]
        for _ in range(18):
            x, y = rng.uniform(left + 10, right - 10), rng.uniform(t + 10, t + 90)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=ink)
    layer.putalpha(alpha)
    return layer


def _feather(size: int) -> Image.Image:
    """An elliptical alpha with a soft rim, so the chip's corners fade into the photo."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot((xx - size / 2) / (size * 0.5), (yy - size * 0.52) / (size * 0.56))
    return Image.fromarray((np.clip((1.0 - r) / 0.08, 0, 1) * 255).astype(np.uint8), "L")


def _canvas(scene: Scene, width: int, height: int) -> Image.Image:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top, bottom = (np.array(c, np.float32) for c in scene.background)
    img = Image.fromarray(np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8), "RGB")
    ImageDraw.Draw(img).ellipse([-0.1 * width, 0.72 * height, 1.1 * width, 1.5 * height], fill=scene.clothes)
    return img


def draw_portrait(chip: Image.Image, scene: Scene, state: str, size: tuple[int, int],
               rng: np.random.Generator) -> Image.Image:
    """One photo of size (width, height). ``state``: a name of runners.classes.MASK_NAMES."""
    width, height = size
    face = chip.convert("RGB").resize((CHIP, CHIP), Image.Resampling.BILINEAR).convert("RGBA")
    if state != "not_wear":
        top = MASK_TOP["wear" if state == "wear" else scene.incorrect]
        colour = _MASK_COLOURS[int(rng.integers(len(_MASK_COLOURS)))]
        face.alpha_composite(_mask_layer(top, colour, scene.style, rng))
    face = face.rotate(float(rng.normal(0, 3.0)), resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0, 0))
    side = max(8, int(round(width * FACE_WIDTH_SHARE * rng.uniform(0.95, 1.05))))
    face = face.resize((side, side), Image.Resampling.BILINEAR)
    alpha = Image.fromarray(np.minimum(np.asarray(face.getchannel("A")), np.asarray(_feather(side))), "L")
    photo = _canvas(scene, width, height)
    x = int(round((width - side) / 2 + rng.normal(0, 0.015 * width)))
    y = int(round(height * FACE_TOP_SHARE + rng.normal(0, 0.012 * height)))
    photo.paste(face.convert("RGB"), (x, y), alpha)
    light = np.asarray(photo, np.float32) * rng.uniform(0.88, 1.12) + rng.normal(0, 6, 3)
    return Image.fromarray(np.clip(light, 0, 255).astype(np.uint8), "RGB")
