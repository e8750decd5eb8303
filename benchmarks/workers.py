"""Trial processes on a CPU: one process against one per core, at equal wall time.

Each arm runs the main command as a user does, in a fresh work folder with its own study, under
the same ``--timeout``: ``python -m search.run --study STUDY --data BENCH --device cpu --workers N
--timeout S --no-refit`` (``--refit`` keeps the study file's refit phase in it), one arm after the
other, so they never share the cores. For each arm it reports the wall time of the command,
finished trials per hour (complete + pruned), complete, pruned and budget-cut trials, the mean
seconds per epoch, the best trial's validation macro-F1, and the ensemble that
``search.ensemble`` would ship from the arm's candidates: its held-out macro-F1 and its macro-F1
on the bench's eval labels.

    python -m benchmarks.workers                       # age_cutoff's CPU profile, 8 minutes an arm
    python -m benchmarks.workers --timeout 120 --people 120 --study smoke    # a quick look

Run it on an otherwise idle machine: other processes take cores from the per-core arm first.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks import common
from search.engine.nearcopy import NOT_RUN
from search.engine.workercount import WORKERS_ENV, usable_cores
from search.storage.trial_attrs import TrialAttrs

log = logging.getLogger("benchmarks.workers")
NAME = "workers"
NOTES = (
    "each arm is one run of python -m search.run in a fresh work folder (its own bench cache, study and "
    "storage), one arm after the other; wall s includes process start, imports and the image cache",
    "trials per hour: finished (complete + pruned) trials / wall s x 3600; a budget-cut trial is complete "
    "with its best epoch (cut_by_budget) and counts",
    "ensemble: the method search.ensemble ships from the arm's candidates; held-out = chosen on one half of "
    "the validation people, scored on the other; eval = the bench's eval labels (people no trial saw)",
)


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=240, size=(96, 128))
    common.add_work_root_arg(p)
    p.add_argument("--study", default="age_cutoff", help="study file (default age_cutoff: its CPU profile)")
    p.add_argument("--timeout", type=float, default=480.0, help="each arm's --timeout in seconds (default 480)")
    p.add_argument("--workers", type=common.positive_int, nargs="+",
                   help="process counts to compare (default: 1 and one per usable core)")
    p.add_argument("--refit", action="store_true", help="keep the study file's refit phase in each arm")
    return p


def run_arm(study: str, bench: Path, workdir: Path, workers: int, timeout: float, refit: bool) -> dict[str, Any]:
    """One ``python -m search.run`` with ``workers`` processes; its figures, read back from its study."""
    cmd = [sys.executable, "-m", "search.run", "--study", study, "--data", str(bench), "--workdir", str(workdir),
           "--device", "cpu", "--workers", str(workers), "--timeout", str(timeout)]
    if not refit:
        cmd.append("--no-refit")
    env = {k: v for k, v in os.environ.items() if k not in (WORKERS_ENV, "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(common.REPO)
    log.info("arm of %d process(es): %s", workers, " ".join(cmd))
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=common.REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"search.run with --workers {workers} exited {done.returncode}:\n{done.stderr[-3000:]}")
    name = Path(study).stem
    storage = f"sqlite:///{(workdir / 'studies.db').as_posix()}"
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    attrs = {t.number: TrialAttrs.read(t) for t in trials}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    paces = [float(a.seconds_per_epoch) for a in attrs.values() if a.seconds_per_epoch is not None]
    arm: dict[str, Any] = {
        "workers": workers,
        "wall_s": round(wall, 1),
        "finished": len(complete) + len(pruned),
        "complete": len(complete),
        "pruned": len(pruned),
        "cut_by_budget": sum(1 for t in complete if attrs[t.number].cut_by_budget),
        # a trial a racing worker created past the trial budget ends FAIL at once, not run: not a failure
        "failed": sum(1 for t in failed if not (attrs[t.number].failure_reason or "").startswith(NOT_RUN)),
        "not_run_past_budget": sum(1 for t in failed if (attrs[t.number].failure_reason or "").startswith(NOT_RUN)),
        "trials_per_hour": round((len(complete) + len(pruned)) / wall * 3600, 1),
        "seconds_per_epoch": round(statistics.mean(paces), 2) if paces else None,
        "best_val_macro_f1": max((t.value for t in complete if t.value is not None), default=None),
    }
    return arm | ensemble_scores(name, storage, workdir, bench)


def ensemble_scores(name: str, storage: str, workdir: Path, bench: Path) -> dict[str, Any]:
    """The shipped ensemble's held-out and eval macro-F1 from the arm's candidates (None without any)."""
    from search.ensembling.candidates import load_candidates
    from search.ensembling.evalscore import find_eval_labels, score_on_eval
    from search.ensembling.procedure import run_procedure

    try:
        pool = load_candidates(name, storage, workdir)
    except ValueError:  # no complete trial with a checkpoint: the budget ended before one did
        return {"candidates": 0, "ensemble": None, "ensemble_heldout_macro_f1": None, "ensemble_eval_macro_f1": None}
    outcome = run_procedure(pool)
    method = outcome.shipped or outcome.choice().method
    evals = (score_on_eval(outcome.candidates, outcome.final, bench, workdir / "cache")
             if find_eval_labels(bench) is not None else {})
    return {
        "candidates": len(pool.candidates),
        "ensemble": method,
        "ensemble_heldout_macro_f1": round(outcome.estimate(method)[0], 4),
        "ensemble_eval_macro_f1": round(evals[method][0], 4) if method in evals else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    counts = args.workers or sorted({1, usable_cores()})
    root = Path(args.work_root) / f"workers-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # fresh: nothing reused
    info = common.machine("cpu")
    arms = [run_arm(args.study, bench, root / f"w{n}", n, args.timeout, args.refit) for n in counts]
    headers = ["processes", "wall s", "finished", "complete", "pruned", "cut", "trials/h", "s/epoch", "best val F1",
               "ensemble", "held-out F1", "eval F1"]
    rows = [[a["workers"], a["wall_s"], a["finished"], a["complete"], a["pruned"], a["cut_by_budget"],
             a["trials_per_hour"], a["seconds_per_epoch"], a["best_val_macro_f1"], a["ensemble"],
             a["ensemble_heldout_macro_f1"], a["ensemble_eval_macro_f1"]] for a in arms]
    print(common.table(headers, rows))
    print(f"machine: {common.describe_machine(info)}")
    figures = {"arms": arms}
    inputs = {"study": args.study, "bench": str(bench), "people": args.people, "size": list(args.size),
              "timeout_s": args.timeout, "workers": counts, "refit": args.refit, "work_root": str(root)}
    path = common.save_result(NAME, inputs=inputs, figures=figures, machine_info=info, notes=NOTES,
                              results_dir=args.results_dir)
    log.info("saved %s", path)
    return json.loads(path.read_text())["figures"]


if __name__ == "__main__":
    main()
