"""The default data when the user names none: the synthetic bench, generated on first use.

``default_data_root()`` returns ``$MASK_DATA_DIR`` when that is set (the user's own data),
else ``data/bench`` (under the git-ignored ``data/`` folder), drawing it with
``search.synth.generate`` the first time. The bench is generated into a temporary sibling
folder and renamed into place only when complete, under a file lock, so two processes
starting at once generate it once and a half-generated bench is never reused.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from search.atomic import atomic_path
from search.data.errors import DataError

log = logging.getLogger(__name__)

ENV_VAR = "MASK_DATA_DIR"
BENCH_NAME = "bench"


def _complete(bench: Path) -> bool:
    return (bench / "train" / "train.csv").is_file() and (bench / "eval" / "info.csv").is_file()


def default_data_root(
    cache_root: Path | str = Path("data"), people: int | None = None, seed: int = 0
) -> Path:
    """The data folder to use when ``--data`` is not given (see module docstring).

    ``people``: bench size on first generation (the generator's default when None); an
    existing bench is reused whatever its size - delete it to draw another.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        root = Path(env).expanduser().resolve()
        if not root.is_dir():
            raise DataError(
                f"{ENV_VAR}={env!r} is not a folder; point it at the folder holding train/ and eval/."
            )
        return root
    cache_root = Path(cache_root).expanduser().resolve()
    bench = cache_root / BENCH_NAME
    if _complete(bench):
        return bench
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"{BENCH_NAME}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _complete(bench):  # another process generated it while we waited
                return bench
            if bench.exists():
                raise DataError(
                    f"{bench} exists but holds no train/train.csv and eval/info.csv; "
                    "delete it so the bench can be generated again."
                )
            _generate(bench, people, seed)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return bench


def _generate(bench: Path, people: int | None, seed: int) -> None:
    try:
        from search.synth import generate
    except ImportError as exc:
        raise DataError(
            f"cannot generate the synthetic bench ({exc}); pass --data with your own data."
        ) from exc
    log.info("generating the synthetic bench into %s (first use)", bench)
    with atomic_path(bench) as tmp:
        kwargs = {"seed": seed} if people is None else {"people": people, "seed": seed}
        generate(tmp, **kwargs)
        if not _complete(tmp):
            raise DataError(f"the bench generator left no train/train.csv and eval/info.csv in {tmp}.")
