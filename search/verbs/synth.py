"""Command line: python -m search.synth --out data/synthetic [--people 300] [--size 96x128] [--seed 0]."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from search.benches.synth.build import generate, size_arg
from search.benches.synth.sheet import contact_sheet

SUMMARY = "draw the synthetic bench in the competition's data layout"

log = logging.getLogger("search.synth")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.synth",
                                description="Draw the synthetic data in the competition's data layout.")
    p.add_argument("--out", type=Path, default=Path("data/synthetic"),
                   help="folder to create (default data/synthetic)")
    p.add_argument("--people", type=int, default=300, help="train people (real data: 2700)")
    p.add_argument("--size", type=size_arg, default=(96, 128), help="WIDTHxHEIGHT (real photos: 384x512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-people", type=int, default=None, help="eval people (default people // 3)")
    p.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    p.add_argument("--sheet-per-class", type=int, default=2, help="people per class row on the sheet")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: by bench size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    start = time.perf_counter()
    try:
        root = generate(args.out, people=args.people, size=args.size, seed=args.seed,
                        n_eval_people=args.eval_people, progress=not args.quiet, overwrite=args.overwrite,
                        n_jobs=args.jobs)
        log.info("generated in %.1f s", time.perf_counter() - start)
        if args.sheet is not None:
            contact_sheet(root, args.sheet, per_class=args.sheet_per_class)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
