"""Preview an augmentation set: a PNG grid of one image through the set, N times::

    python -m runners.augment --preview bccs --image face.jpg --out bccs.png

The sets themselves live in ``runners.augmentations`` (re-exported here).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from runners.augmentations import AUGMENT_SETS, get_augment, list_augment_sets, register_augment

SUMMARY = "preview an augmentation set: a PNG grid of one image through it"

__all__ = ["AUGMENT_SETS", "get_augment", "list_augment_sets", "main", "preview_grid", "register_augment"]

logger = logging.getLogger(__name__)


def preview_grid(name: str, image: np.ndarray, n: int = 8, cols: int = 3, seed: int = 0) -> np.ndarray:
    """The original image followed by ``n`` draws of the set, tiled ``cols`` wide (uint8 HWC)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"preview needs a uint8 RGB image (H, W, 3) but got {image.dtype} {image.shape}.")
    if n < 1 or cols < 1:
        raise ValueError(f"preview needs n >= 1 and cols >= 1 but got n={n}, cols={cols}.")
    height, width = image.shape[:2]
    compose = get_augment(name, height, width, seed=seed)
    tiles = [image] + [compose(image=image)["image"] for _ in range(n)]
    rows = -(-len(tiles) // cols)
    grid = np.full((rows * height, cols * width, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile
    return grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runners.augment", description="Write a PNG grid of one image through an augmentation set."
    )
    parser.add_argument("--preview", required=True, metavar="SET", help=f"set name, one of {list_augment_sets()}")
    parser.add_argument("--image", required=True, type=Path, help="any image PIL can read")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to write")
    parser.add_argument("--n", type=int, default=8, help="augmented draws (default 8)")
    parser.add_argument("--cols", type=int, default=3, help="tiles per row (default 3)")
    parser.add_argument("--height", type=int, default=256, help="resize the image to this height first")
    parser.add_argument("--width", type=int, default=192, help="resize the image to this width first")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> Path:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preview not in AUGMENT_SETS:
        parser.error(f"unknown augmentation set {args.preview!r}; valid names are {list_augment_sets()}")
    if not args.image.is_file():
        parser.error(f"--image {str(args.image)!r} is not a file")
    try:
        with Image.open(args.image) as img:
            rgb = img.convert("RGB").resize((args.width, args.height), Image.Resampling.BILINEAR)
    except OSError as exc:
        parser.error(f"cannot read --image {str(args.image)!r}: {exc}")
    grid = preview_grid(args.preview, np.asarray(rgb), n=args.n, cols=args.cols, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    Image.fromarray(grid).save(tmp, format="PNG")
    tmp.replace(args.out)  # no half-written PNG left behind
    logger.info("wrote %s (%s, %d draws)", args.out, args.preview, args.n)
    return args.out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
