"""Checks of a run's command-line inputs that are not the study file's, made before anything runs.

Each raises ValueError with one line naming the flag and the fix; ``search.run`` prints it.
"""

from __future__ import annotations

import math
from pathlib import Path


class GaveUp(RuntimeError):
    """The study stopped because its trials kept failing: the run must not exit 0."""


def check_budget(n_trials: int | None, timeout_s: float | None) -> None:
    """``--n-trials`` and ``--timeout`` must be positive when given: 0 or less would run nothing."""
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ValueError(f"--n-trials must be a whole number >= 1 but got {n_trials}; "
                         "leave it out to use the study file's n_trials.")
    if timeout_s is not None and not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s)
                                      and timeout_s > 0):
        raise ValueError(f"--timeout must be a number of seconds > 0 but got {timeout_s}; "
                         "leave it out for the study profile's timeout_s (without one: until the "
                         "budget of trials is reached).")


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be a whole number >= 1 but got {threads}; "
                         "leave it out for the default (cores minus loader workers).")


def check_workdir(workdir: Path) -> None:
    """``--workdir`` must be a folder, or a path where one can be made."""
    for path in (workdir, *workdir.parents):
        if path.exists():
            if not path.is_dir():
                what = "--workdir" if path == workdir else f"--workdir {workdir}: {path}"
                raise ValueError(f"{what} is a file, not a folder; pass a folder for checkpoints, "
                                 "artifacts and caches (it is created when missing).")
            return
