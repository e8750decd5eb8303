"""A contact sheet of a bench (or of real data in the same layout): one row per class.

It reads train.csv and the person folders directly, so it also shows label noise as it is on
disk (a gender-flipped person appears in the row of their CSV label).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from runners.classes import AGE_BAND_NAMES, GENDER_NAMES, MASK_NAMES, NUM_CLASSES, age_band, decompose
from search.data.labels import MASK_OF_PHOTO, PHOTOS

log = logging.getLogger(__name__)

_MASK_TEXT = {"wear": "mask worn", "incorrect": "incorrect", "not_wear": "no mask"}
_STEMS = {mask: tuple(p for p in PHOTOS if MASK_OF_PHOTO[p] == mask) for mask in range(len(MASK_NAMES))}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _photo(folder: Path, stem: str) -> Path:
    found = sorted(p for p in folder.glob(f"{stem}.*") if not p.name.startswith("."))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {stem}.* photo in {folder}, found {[p.name for p in found]}")
    return found[0]


def contact_sheet(root: Path | str, out_png: Path | str, per_class: int = 2,
                  tile: tuple[int, int] | None = None) -> Path:
    """Write a PNG grid: one row per class (0..17), `per_class` people each, labelled.

    `root` holds train/train.csv and train/images/; `tile` is (width, height) of each photo on
    the sheet (default: the photos' own size). People are taken in train.csv's path order.
    """
    root, out_png = Path(root), Path(out_png)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    csv = root / "train" / "train.csv"
    if not csv.is_file():
        raise FileNotFoundError(f"{csv} not found: contact_sheet needs a bench or data root holding train/")
    table = pd.read_csv(csv, dtype={"id": str, "path": str}).sort_values("path")
    missing = {"gender", "age", "path"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv} lacks column(s) {sorted(missing)}")
    table["g"] = table["gender"].map({name: code for code, name in enumerate(GENDER_NAMES)})
    table["band"] = table["age"].map(lambda a: age_band(int(a)))

    picks: list[list[tuple[Path, int]]] = []
    for cls in range(NUM_CLASSES):
        mask, gender, band = decompose(cls)
        rows = table[(table["g"] == gender) & (table["band"] == band)].head(per_class)
        stems = _STEMS[mask]
        picks.append([(_photo(root / "train" / "images" / r.path, stems[k % len(stems)]), int(r.age))
                      for k, r in enumerate(rows.itertuples())])
    first = next((p for row in picks for p, _ in row), None)
    if first is None:
        raise ValueError(f"{csv} has no people to show")
    if tile is None:
        with Image.open(first) as im:
            tile = im.size
    tw, th = tile
    font, small = _font(max(10, th // 9)), _font(max(9, th // 11))
    label_w = max(110, int(tw * 1.3))
    sheet = Image.new("RGB", (label_w + per_class * tw, NUM_CLASSES * th), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for cls, row in enumerate(picks):
        y = cls * th
        mask, gender, band = decompose(cls)
        text = "\n".join([f"class {cls}", _MASK_TEXT[MASK_NAMES[mask]], GENDER_NAMES[gender],
                          f"age {AGE_BAND_NAMES[band]}"])
        draw.multiline_text((6, y + 6), text, fill=(20, 20, 20), font=font, spacing=2)
        draw.line([(0, y), (sheet.width, y)], fill=(200, 200, 200))
        for k, (path, age) in enumerate(row):
            with Image.open(path) as im:
                photo = im.convert("RGB").resize((tw, th), Image.Resampling.LANCZOS)
            x = label_w + k * tw
            sheet.paste(photo, (x, y))
            box = draw.textbbox((x + 3, y + th - 3), f"{age}", font=small, anchor="lb")
            draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(0, 0, 0))
            draw.text((x + 3, y + th - 3), f"{age}", fill=(255, 255, 255), font=small, anchor="lb")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    # A 128-colour palette keeps the README copy under 300 KB; the drawings are flat colour anyway.
    palette = sheet.quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(out_png, optimize=True)
    log.info("wrote contact sheet %s (%dx%d)", out_png, sheet.width, sheet.height)
    return out_png
