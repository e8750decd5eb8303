"""``python -m search.predict --bundle DIR --data EVAL_DIR``: write submission.csv.

Reads EVAL_DIR/info.csv (EVAL_DIR may also be the data root holding eval/), checks that every
image exists before predicting anything, predicts in batches with the bundle (onnxruntime on the
CPU, torch on CUDA, or the ``--backend`` named; optional horizontal-flip TTA), and writes
``ImageID,ans`` in info.csv's row order.
Default output: ``submission.csv`` in the current folder; ``--out`` an existing folder writes
``submission.csv`` inside it. The file is written to a temporary name and renamed, so an
interrupted run leaves no half-written submission; its mode follows the umask.

Needs neither optuna nor the training code.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from search.common.atomic import write_text
from search.cli import add_verbose, os_error_line, report_error, setup_logging
from search.data import DataError, load_eval
from search.deploy.bundle import Bundle
from search.deploy.graph import AUTO_BACKEND, BACKENDS, choose_backend
from search.deploy.manifest import not_a_bundle
from search.common.outputs import Output, OutputExistsError, claim, marked_file

log = logging.getLogger("search.predict")

DEFAULT_OUT = Path("submission.csv")
HEADER = b"ImageID,ans"
_ROW = re.compile(rb"[^,\r\n]+,[0-9]{1,2}")


def _is_submission(data: bytes) -> bool:
    lines = data.splitlines()
    return bool(lines) and lines[0] == HEADER and all(_ROW.fullmatch(line) for line in lines[1:])


OUTPUT = Output("a submission", "python -m search.predict", lambda p: marked_file(p, _is_submission),
                flag=None, folder=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--bundle", type=Path, required=True, help="bundle folder written by python -m search.export"
    )
    p.add_argument(
        "--data", type=Path, required=True, help="eval folder holding info.csv and images/ (or its parent)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="submission file, or an existing folder to write submission.csv in (default: ./submission.csv)",
    )
    p.add_argument(
        "--backend",
        choices=(AUTO_BACKEND, *BACKENDS),
        default=AUTO_BACKEND,
        help="auto (default): onnx on the CPU, where it is 2.6x faster with the same classes; torch on CUDA",
    )
    p.add_argument("--tta-flip", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_verbose(p)
    return p


def predict_eval(
    bundle: Bundle,
    eval_dir: Path,
    backend: str = "torch",
    tta_flip: bool = False,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(submission table in info.csv order, probabilities (N, 18)).

    ``load_eval`` checks that every row's image exists first (a missing one is a DataError
    naming the info.csv line and ImageID), so nothing is predicted for a broken folder.
    """
    data = load_eval(eval_dir, check_images=False)
    probs = bundle.predict_proba(
        data.paths,
        backend=backend,
        batch_size=batch_size,
        tta_flip=tta_flip,
        device=device,
        progress=progress,
    )
    table = pd.DataFrame(
        {"ImageID": data.info["ImageID"].to_numpy(), "ans": probs.argmax(1).astype(np.int64)}
    )
    return table, probs


def submission_path(out: Path, bundle: Path | None = None) -> Path:
    """Where ``--out`` writes (``out/submission.csv`` when ``out`` is a folder), refused with
    OutputExistsError when that is inside a bundle (``bundle``, or any bundle folder) or holds
    anything but an earlier submission (search/common/outputs.py)."""
    out = Path(out)
    if out.is_dir() and not out.is_symlink():
        out = out / DEFAULT_OUT.name
    folder = out.parent.resolve()
    inside = bundle is not None and folder.is_relative_to(Path(bundle).resolve())
    if inside or not_a_bundle(folder) is None:
        raise OutputExistsError(
            f"--out {out} is inside the bundle {folder}, which must hold only what export wrote "
            "(export --overwrite would refuse it after); write the submission outside the bundle."
        )
    claim(out, OUTPUT)
    return out


def write_submission(table: pd.DataFrame, out: Path, bundle: Path | None = None) -> Path:
    """Write ``table`` atomically to :func:`submission_path`."""
    out = submission_path(out, bundle)
    text = io.StringIO(newline="")
    table.to_csv(text, index=False)
    return write_text(out, text.getvalue(), newline="")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        with warnings.catch_warnings():
            # PIL only warns about a photo over its pixel limit; load_image refuses it, and the
            # warning would be a second, noisier line
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            bundle = Bundle.load(args.bundle)
            submission_path(args.out, args.bundle)  # before predicting: a refusal costs nothing
            backend = choose_backend(args.backend, args.device)
            table, _ = predict_eval(bundle, args.data, backend, args.tta_flip, args.batch_size, args.device)
        out = write_submission(table, args.out, args.bundle)
    except (ValueError, FileNotFoundError, OutputExistsError, DataError) as exc:
        return report_error(log, exc, args.verbose)
    except KeyboardInterrupt:
        log.warning("interrupted: no submission was written")
        return 130
    except OSError as exc:  # a full disk, a read-only place: the atomic write left no partial file
        line = os_error_line(exc, f"writing {args.out}")
        log.error("%s; no submission was written", line, exc_info=args.verbose)
        return 1
    counts = table["ans"].value_counts().sort_index()
    print(
        f"wrote {len(table)} predictions to {out.resolve()} "
        f"({backend}{', flip TTA' if args.tta_flip else ''})"
    )
    print("predicted classes: " + ", ".join(f"{c}:{n}" for c, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
