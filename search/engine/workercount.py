"""How many trial processes ``python -m search.run`` starts when ``--workers`` is not given.

    CPU     one process per usable core, each with one torch thread and its augmentation in the
            process itself: an epoch of the CPU trial runs single-threaded at about the same pace
            either way, so N processes finish about N times the trials (issue 25, 2 cores: 5
            complete trials in 7 min 36 s with two processes, 2 with one; benchmarks/workers.py)
    GPU     one process per visible GPU (``--device cuda:N``: one)

``--threads T`` alone keeps its meaning from before this default: one process with T threads
(the measurements recorded with ``--threads 1`` stay reproducible). ``MASK_AUTOML_WORKERS`` (a
whole number >= 1) replaces the rule, as ``--workers`` does; no run starts more processes than
the study has trials. Several local processes share the run's storage (search/engine/launcher.py).
"""

from __future__ import annotations

import os

WORKERS_ENV = "MASK_AUTOML_WORKERS"  # the default --workers (tests and CI pin it to 1)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` if set, else all GPUs."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


def env_workers() -> int | None:
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_ENV} must be a whole number >= 1 but got {value!r}; unset it for the "
                         "default (one process per core on a CPU, one per GPU).")
    return int(value)


def default_workers(
    device: str = "auto",
    n_trials: int | None = None,
    threads: int | None = None,
    cores: int | None = None,
    gpus: int | None = None,
) -> int:
    """Trial processes for a run on ``device`` (see the module docstring); ``cores`` and ``gpus``
    default to this machine's."""
    count = env_workers()
    if count is None:
        if gpus is None and device != "cpu":
            gpus = len(visible_gpus())
        if device.startswith("cuda:"):
            count = 1
        elif device != "cpu" and gpus:
            count = gpus
        else:
            count = 1 if threads is not None else cores or usable_cores()
    return max(1, min(count, n_trials)) if n_trials is not None else count
