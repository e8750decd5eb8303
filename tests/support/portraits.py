"""Portrait JPEGs with a drawn face that MTCNN finds (score above 0.9), for the face_detect tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def draw_face(path: Path, cx: int, cy: int, r: int = 90, size: tuple[int, int] = (384, 512)) -> None:
    """A portrait JPEG with a plain drawn face (skin oval, eyes, brows, nose, mouth) centred at (cx, cy)."""
    img = Image.new("RGB", size, (120, 140, 170))
    d = ImageDraw.Draw(img)
    d.ellipse([cx - r, cy - int(r * 1.3), cx + r, cy + int(r * 1.3)], fill=(225, 190, 160))
    eye, brow, mouth = r * 0.42, r * 0.2, r * 0.72
    for ex in (cx - eye, cx + eye):
        d.ellipse([ex - r * 0.22, cy - r * 0.39, ex + r * 0.22, cy - r * 0.19], fill=(250, 250, 250))
        d.ellipse([ex - r * 0.09, cy - r * 0.38, ex + r * 0.09, cy - r * 0.2], fill=(60, 40, 30))
        d.line([(ex - r * 0.27, cy - r * 0.58), (ex + r * 0.24, cy - r * 0.61)], fill=(70, 50, 40), width=6)
    nose = [(cx, cy - brow * 0.75), (cx - r * 0.13, cy + r / 3), (cx + r * 0.13, cy + r / 3)]
    d.polygon(nose, fill=(205, 165, 135))
    d.line([(cx - r / 3, cy + mouth), (cx + r / 3, cy + mouth)], fill=(160, 70, 70), width=8)
    img.save(path, quality=92)


def draw_blank(path: Path, size: tuple[int, int] = (384, 512)) -> None:
    Image.new("RGB", size, (120, 140, 170)).save(path, quality=92)
