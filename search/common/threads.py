"""How many torch intra-op threads the main command uses: one rule, in one function.

A trial's loader runs augmentation in ``runners.devices.default_num_workers`` processes
(``min(4, cores - 1)``, or ``MASK_AUTOML_LOADER_WORKERS``), each busy on a core. torch's own
default is one thread per core on top of them, and on a small or busy machine the threads then
wait on each other (an epoch took 820 s instead of 90 s on 2 cores). So torch gets the cores
the loader leaves free, and at least one: ``max(1, cores - loader_workers)``. An explicit
``OMP_NUM_THREADS`` (a whole number >= 1) is taken as the user's choice instead; ``--threads``
overrides both.
"""

from __future__ import annotations

import os


def intra_op_threads(cores: int, loader_workers: int) -> int:
    """torch threads that, with ``loader_workers`` loader processes, do not oversubscribe ``cores``."""
    return max(1, cores - max(0, loader_workers))


def env_threads() -> int:
    """``OMP_NUM_THREADS`` when it is a whole number >= 1 (the user's choice), else 0."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else 0


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else the rule on this machine, with the loader workers an
    augmenting trial starts."""
    from runners.devices import default_num_workers

    return env_threads() or intra_op_threads(len(os.sched_getaffinity(0)), default_num_workers("flip"))


def inference_threads() -> int:
    """onnxruntime's intra-op threads for predict: ``OMP_NUM_THREADS`` when set, else the cores this
    process may run on when that is fewer than the machine's, else 0 (onnxruntime's own default).

    onnxruntime starts one thread per physical core whatever the process's CPU affinity, so under
    ``taskset`` or a container's cpuset they share the allowed cores: on one allowed core of two,
    two threads predicted 1.6x slower than one (benchmarks/README.md, "Predict on a pinned core").
    """
    allowed = len(os.sched_getaffinity(0))
    return env_threads() or (allowed if allowed < (os.cpu_count() or allowed) else 0)


def set_torch_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads``, or to :func:`default_threads`; returns the count."""
    import torch

    count = threads or default_threads()
    torch.set_num_threads(count)
    return count
