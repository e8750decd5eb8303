"""``python -m search.run --study NAME``: create or resume a study and run its trials.

Without ``--data`` the synthetic bench is used (generated on first use under data/bench).
Running the same command again resumes the study up to its trial budget; ``--n-trials``
raises (or lowers) that budget, counted over all workers as finished (complete or pruned)
trials.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from runners import resolve_device
from search import records
from search.objective import Objective, TrialFailed
from search.prepare import open_study
from search.storage import DEFAULT_WORKDIR, dashboard_command, default_storage_url, redact
from search.study import StudySpec, load_study

log = logging.getLogger("search")
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class RunOptions:
    study: str
    name: str | None = None
    data: Path | None = None
    relabel: Path | None = None
    storage: str | None = None
    workdir: Path = DEFAULT_WORKDIR
    n_trials: int | None = None
    timeout_s: float | None = None
    device: str = "auto"
    seed: int | None = None
    profile: str | None = None
    worker_index: int = 0

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage_url(self.workdir)


def build_parser(prog: str = "python -m search.run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True, help="study file name in studies/ (e.g. age_cutoff) or a .toml path")
    p.add_argument("--name", help="study name in the storage (default: the study file's name)")
    p.add_argument("--data", type=Path, help="data root holding train/ (default: the synthetic bench)")
    p.add_argument("--relabel", type=Path, help="CSV of label fixes to apply (see studies/relabel_example.csv)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/studies.db)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="checkpoints, artifacts and caches")
    p.add_argument("--n-trials", type=int, help="finished trials the study should reach (default: the study file's)")
    p.add_argument("--timeout", type=float, dest="timeout_s", help="stop starting new trials after this many seconds")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, help="sampler seed (default: the study file's)")
    p.add_argument("--profile", choices=("cpu", "gpu"), help="study profile (default: from the device)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def options_from_args(args: argparse.Namespace) -> RunOptions:
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    return RunOptions(**{k: v for k, v in vars(args).items() if k in fields})


def resolve_spec(opts: RunOptions) -> StudySpec:
    device = resolve_device(opts.device)
    profile = opts.profile or ("gpu" if device.type == "cuda" else "cpu")
    spec = load_study(opts.study, profile=profile)
    if opts.seed is not None:
        spec = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, seed=opts.seed))
    if opts.n_trials is not None:
        spec = dataclasses.replace(spec, n_trials=opts.n_trials)
    return spec


def run_study(opts: RunOptions) -> optuna.Study:
    """Run trials until the study's budget of finished trials is reached (or the timeout)."""
    spec = resolve_spec(opts)
    study, study_data = open_study(
        spec, opts.storage_url, opts.workdir, opts.data, opts.relabel, opts.name, opts.worker_index
    )
    objective = Objective(spec, study_data, opts.workdir, device=opts.device)
    remaining = spec.n_trials - _count(study, BUDGET_STATES)
    if remaining <= 0:
        log.info("study %s already has %d finished trials (budget %d); pass --n-trials to run more",
                 study.study_name, _count(study, BUDGET_STATES), spec.n_trials)
        return study
    log.info("study %s (%s profile): running up to %d more trials", study.study_name, spec.profile, remaining)
    study.optimize(
        objective,
        timeout=opts.timeout_s or spec.timeout_s,
        callbacks=[_Budget(spec.n_trials), _note],
        catch=(TrialFailed,),
        gc_after_trial=True,
    )
    return study


class _Budget:
    """Stop when the study (all workers together) has enough finished trials, or too many failures."""

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials
        self.failures = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.failures += trial.state == TrialState.FAIL
        if _count(study, BUDGET_STATES) >= self.n_trials:
            study.stop()
        elif self.failures > max(3, self.n_trials):
            log.error("stopping: %d trials of this worker failed; see their failure_reason", self.failures)
            study.stop()


def _note(study: optuna.Study, trial: FrozenTrial) -> None:
    records.save_study_note(study)


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def print_summary(study: optuna.Study, opts: RunOptions) -> None:
    print()
    print(records.study_note(study, top=10))
    name = study.study_name
    storage = "" if opts.storage is None else f" --storage '{redact(opts.storage_url)}'"
    workdir = "" if opts.workdir == DEFAULT_WORKDIR else f" --workdir {opts.workdir}"
    print("Next:")
    print(f"  dashboard: {dashboard_command(opts.storage_url, opts.workdir)}")
    print(f"  report:    python -m search.report --study {name}{storage}{workdir}")
    print(f"  ensemble:  python -m search.ensemble --study {name}{storage}{workdir}")
    print(f"  export:    python -m search.export --study {name}{storage}{workdir} --out exports/{name}")


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: Optuna marks the running trial FAIL and the study can resume."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    install_signal_handlers()
    opts = options_from_args(args)
    try:
        study = run_study(opts)
    except KeyboardInterrupt:
        log.warning("interrupted: the running trial is marked failed; run the same command to resume")
        return 130
    print_summary(study, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
