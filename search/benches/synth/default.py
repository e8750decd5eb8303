"""The default data when the user names none: the synthetic data, generated on first use.

``default_data_root()`` returns ``$MASK_DATA_DIR`` when that is set (the user's own data),
else ``ensure_synthetic_data()``: ``data/synthetic`` (under the git-ignored ``data/`` folder),
drawn with ``search.benches.synth.generate`` the first time. It is generated into a temporary sibling
folder and renamed into place only when complete, under a file lock, so two processes
starting at once generate it once and a half-generated folder is never reused.

Earlier versions generated it into ``data/bench``; a complete one there is used in place
(and the log says so) rather than drawn again, so studies made on it stay resumable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from search.common.atomic import atomic_path
from search.common.locks import locked
from search.data.errors import DataError

log = logging.getLogger(__name__)

ENV_VAR = "MASK_DATA_DIR"
SYNTHETIC_NAME = "synthetic"
LEGACY_NAME = "bench"  # the folder's name before it was renamed SYNTHETIC_NAME
# The main command's data: 150 people (and 50 eval people), half the generator's default, so that a
# 2-core machine completes at least 6 trials and a fold group in the CPU profile's 8 minutes
# (issue 25; benchmarks/README.md, "The main command"). Its scores say nothing about accuracy anyway.
DEMO_PEOPLE = 150


def _complete(root: Path) -> bool:
    return (root / "train" / "train.csv").is_file() and (root / "eval" / "info.csv").is_file()


def default_data_root(
    cache_root: Path | str = Path("data"), people: int | None = None, seed: int = 0
) -> Path:
    """The data folder to use when ``--data`` is not given (see module docstring)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        root = Path(env).expanduser().resolve()
        if not root.is_dir():
            raise DataError(
                f"{ENV_VAR}={env!r} is not a folder; point it at the folder holding train/ and eval/."
            )
        return root
    return ensure_synthetic_data(cache_root, people, seed)


def ensure_synthetic_data(
    cache_root: Path | str = Path("data"), people: int | None = None, seed: int = 0
) -> Path:
    """``cache_root/synthetic``, generated when absent (or ``cache_root/bench`` from earlier versions).

    ``people``: its size on first generation (``DEMO_PEOPLE`` when None); an existing
    folder is reused whatever its size - delete it to draw another.
    """
    cache_root = Path(cache_root).expanduser().resolve()
    root = cache_root / SYNTHETIC_NAME
    if _complete(root):
        return root
    legacy = cache_root / LEGACY_NAME
    if not root.exists() and _complete(legacy):
        log.info(
            "using the synthetic data in %s, where earlier versions generated it (new ones generate %s; "
            "rename the folder to move it there)", legacy, root,
        )
        return legacy
    cache_root.mkdir(parents=True, exist_ok=True)
    with locked(cache_root / f"{SYNTHETIC_NAME}.lock"):
        if _complete(root):  # another process generated it while we waited
            return root
        if root.exists():
            raise DataError(
                f"{root} exists but holds no train/train.csv and eval/info.csv; "
                "delete it so the synthetic data can be generated again."
            )
        _generate(root, people, seed)
    return root


def _generate(root: Path, people: int | None, seed: int) -> None:
    try:
        from search.benches.synth import generate
    except ImportError as exc:
        raise DataError(
            f"cannot generate the synthetic data ({exc}); pass --data with your own data."
        ) from exc
    log.info("generating the synthetic data into %s (first use)", root)
    with atomic_path(root) as tmp:
        generate(tmp, people=DEMO_PEOPLE if people is None else people, seed=seed)
        if not _complete(tmp):
            raise DataError(f"the generator left no train/train.csv and eval/info.csv in {tmp}.")
