"""Command line: python -m search.realfaces --faces DIR --out DIR [--exclude FILE] [--people 700] [--seed 0]."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from search.benches.synth.build import size_arg

from search.benches.realfaces.build import build

SUMMARY = "build the real-face bench from a folder of UTKFace photos"

log = logging.getLogger("search.realfaces")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.realfaces",
                                description="Build a bench of real faces (UTKFace-named photos) in the "
                                            "competition's layout, masks drawn on.")
    p.add_argument("--faces", type=Path, required=True, help="folder of <age>_<gender>_<race>_<date>.jpg photos")
    p.add_argument("--out", type=Path, default=Path("data/realfaces"), help="folder to create; the data is OUT/data")
    p.add_argument("--exclude", type=Path, default=None, help="file naming photos never to use, one per line")
    p.add_argument("--people", type=int, default=700, help="train people (default 700)")
    p.add_argument("--eval-people", type=int, default=300, help="eval people (default 300)")
    p.add_argument("--size", type=size_arg, default=(384, 512), help="photo WIDTHxHEIGHT (real photos: 384x512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bench built by this command")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    start = time.perf_counter()
    try:
        data = build(args.faces, args.out, n_train=args.people, n_eval=args.eval_people, seed=args.seed,
                     size=args.size, exclude=args.exclude, overwrite=args.overwrite, n_jobs=args.jobs,
                     progress=not args.quiet)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info("built in %.1f s; run: python -m search.run --study age_cutoff --data %s", time.perf_counter() - start, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
