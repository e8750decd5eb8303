"""Shared bits of the benchmark scripts: the machine, benches, study files, tables and JSON.

Every script saves ``{"benchmark", "created", "command", "machine", "inputs", "figures",
"notes"}`` to ``benchmarks/results/<name>.json`` (small, committed) and prints a table. Benches
and runs go under the git-ignored ``data/`` and ``runs/`` folders and are reused between runs.
"""

from __future__ import annotations

import argparse
import builtins
import errno
import json
import logging
import math
import os
import platform
import shlex
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.common.atomic import write_text
from search.run import positive_int
from search.studyfile.parse import load_study_spec

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
DATA_DIR = REPO / "data"  # git-ignored
RUNS_DIR = REPO / "runs" / "benchmarks"  # git-ignored
FULL_PEOPLE, FULL_SIZE = 2700, (384, 512)  # the real data: 2,700 train people, 384x512 (WxH) photos

log = logging.getLogger("benchmarks")


# a full disk, simulated (benchmarks/attacks.py, and the tests through tests/support/diskfull.py)
class FullDiskFile:
    """What ``open`` gives on a full disk: the file is really opened (and created), so the clean-up
    of a half-written file is exercised too, and every ``write`` raises ``OSError(ENOSPC)``, as a
    real full disk does on the first block that does not fit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._file = builtins.open(*args, **kwargs)  # noqa: SIM115 (closed by __exit__)
        self.name = self._file.name

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", self.name)


# machine ------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: Any = None) -> dict[str, Any]:
    """What the figures were measured on; ``device`` is the torch device the script used."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and str(device).startswith("cuda"):
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    return info


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def describe_machine(m: Mapping[str, Any]) -> str:
    gpu = f", GPU {m['gpu']} (CUDA {m.get('cuda')})" if m.get("gpu") else ", no GPU used"
    return (
        f"{m['cpu']}, {m['usable_cores']} usable cores (load {m['load_average_1m']} at start), "
        f"{m['memory_gib']} GiB, Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {m['device']}{gpu}"
    )


# output -------------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (readable in a terminal too); floats get 4 significant digits."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def command_line() -> str:
    """The command that ran this script, as a user would type it from the repository root."""
    argv = list(sys.argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return "python -m " + " ".join([spec.name, *map(shlex.quote, argv[1:])])
    return "python " + " ".join(map(shlex.quote, argv))


def save_result(
    name: str,
    *,
    inputs: Mapping[str, Any],
    figures: Mapping[str, Any],
    machine_info: Mapping[str, Any],
    notes: Sequence[str] = (),
    results_dir: Path | str = RESULTS_DIR,
) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically and return its path."""
    payload = {
        "benchmark": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command_line(),
        "machine": dict(machine_info),
        "inputs": dict(inputs),
        "figures": dict(figures),
        "notes": list(notes),
    }
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    return write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} {value!r} in a benchmark result")


# command line -------------------------------------------------------------------------------
def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{prog}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json goes")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (default 0: torch's own choice); 1 is steadier on a busy machine")
    return p


def paired_names(flag: str, items: Sequence[Any], noun: str, other_flag: str, others: Sequence[Any],
                 other_noun: str, names: Sequence[str] | None) -> list[str]:
    """The table label of each of ``items`` (``--names``, else the item itself), after checking that
    ``others`` pairs one with each item and ``names`` labels each; a SystemExit naming the flags if not."""
    if len(items) != len(others):
        raise SystemExit(f"{flag} has {len(items)} entries but {other_flag} {len(others)}: "
                         f"give one {other_noun} per {noun}, in the same order.")
    labels = list(names) if names else [str(i) for i in items]
    if len(labels) != len(items):
        raise SystemExit(f"--names has {len(labels)} labels for {len(items)} {noun}s.")
    return labels


def setup(args: argparse.Namespace) -> None:
    """Logging, torch threads, and SIGTERM as Ctrl-C so temporary folders are removed on either."""
    setup_logging(args.verbose)

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    if args.threads < 0:
        raise SystemExit(f"--threads must be >= 0 but got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_bench_args(p: argparse.ArgumentParser, people: int, size: tuple[int, int]) -> None:
    p.add_argument("--bench", type=Path, help="bench folder (default: data/bench_<W>x<H>_p<people>_s<seed>; "
                                              f"data/bench_full for {FULL_PEOPLE} people at "
                                              f"{FULL_SIZE[0]}x{FULL_SIZE[1]}); generated when missing")
    p.add_argument("--people", type=positive_int, default=people,
                   help=f"train people of the bench (default {people}; the real data has {FULL_PEOPLE})")
    p.add_argument("--size", type=size_arg, default=size,
                   help=f"bench photo size WIDTHxHEIGHT (default {size[0]}x{size[1]}; real photos are 384x512)")
    p.add_argument("--bench-seed", type=int, default=0, help="seed of the bench drawing")


def add_work_root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work-root", type=Path, default=RUNS_DIR,
                   help="folder for the run's storage, artifacts and caches (default runs/benchmarks, git-ignored)")


def size_arg(text: str) -> tuple[int, int]:
    from search.benches.synth.build import size_arg as parse

    return parse(text)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and retries are marked experimental; the warning repeats on every study opened
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="`warn_independent_sampling`", category=FutureWarning)


# benches ------------------------------------------------------------------------------------
def bench_dir(people: int, size: tuple[int, int], seed: int) -> Path:
    if (people, tuple(size), seed) == (FULL_PEOPLE, FULL_SIZE, 0):
        return DATA_DIR / "bench_full"
    return DATA_DIR / f"bench_{size[0]}x{size[1]}_p{people}_s{seed}"


def ensure_bench(root: Path | None, people: int, size: tuple[int, int], seed: int) -> Path:
    """The bench at ``root`` (default :func:`bench_dir`), drawn when missing.

    An existing bench drawn with other parameters is refused, so figures never silently come
    from a bench other than the one the command line names.
    """
    from search.benches.synth import generate

    root = Path(root) if root is not None else bench_dir(people, size, seed)
    meta = root / "bench.json"
    if (root / "train" / "train.csv").is_file() and meta.is_file():
        params = json.loads(meta.read_text()).get("params", {})
        found = (params.get("people"), tuple(params.get("size", ())), params.get("seed"))
        if found != (people, tuple(size), seed):
            raise ValueError(
                f"{meta} says the bench was drawn with people={found[0]}, size={found[1]}, seed={found[2]}, "
                f"but this run asks for people={people}, size={tuple(size)}, seed={seed}; pass matching "
                "--people/--size/--bench-seed, or another --bench folder."
            )
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(
            f"{root} exists but is not a finished bench (no train/train.csv or bench.json); delete it or pass "
            "another --bench folder."
        )
    log.info("drawing the bench: %d people at %dx%d into %s (once; reused later)", people, *size, root)
    return generate(root, people=people, size=tuple(size), seed=seed, progress=True, overwrite=root.exists())


# study files --------------------------------------------------------------------------------
def write_toml(path: Path, doc: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a study file: top-level tables of scalars, lists and inline tables (what study files use)."""
    lines: list[str] = []
    for section, values in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in values.items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to a study file")


# timing -------------------------------------------------------------------------------------
def synchronize(device: Any) -> None:
    """Wait for queued CUDA work before reading a clock (no-op on CPU)."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def people_sd(score: Callable[[np.ndarray], float], people: np.ndarray, draws: int = 200) -> float:
    """Standard deviation of ``score(rows)`` over bootstrap draws of whole people (``people``: the
    person of each row): how much a figure measured on these few people is a draw of them."""
    rng = np.random.default_rng(0)
    ids = np.unique(people)
    rows_of = [np.flatnonzero(people == p) for p in ids]
    return float(np.std([score(np.concatenate([rows_of[i] for i in rng.integers(0, len(ids), len(ids))]))
                         for _ in range(draws)]))


def ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def study_ema_decay(study: str = "age_cutoff") -> float:
    """The weights' moving-average decay a shipped study trains with, so benchmarks train the same way."""
    return load_study_spec(study).base_config().ema_decay


def study_pruning_signal(study: str = "age_cutoff") -> str:
    """What a shipped study's pruner compares (macro_f1 or val_loss), so benchmarks prune the same way."""
    return load_study_spec(study).pruner.signal
