"""``python -m search.clean --study FILE`` (or ``--name NAME``): list, and with ``--yes`` remove, what a
study no longer needs.

    python -m search.clean --study age_cutoff          # dry run: what would go, and the bytes
    python -m search.clean --study age_cutoff --yes    # remove it

What goes:
- trial folders (``<workdir>/trials/<study>/trial_*``) of trials outside the study's kept ones:
  its ``keep_top`` best complete trials (the ones an ensemble can use) and unfinished trials;
- the dashboard artifacts (validation probabilities, confusion PNG) of the same trials;
- image caches (``<workdir>/cache/images-*``) at a size and crop that no trial of any study in
  the storage used and that the study file cannot ask for, and temporary files of killed builds;
- temporary folders (``.<name>.tmp-<pid>-<hex>.tmp``) that a killed export, refit, synth or
  trial save left in the work folder, ``exports/`` or ``data/``: only those no live process holds.
Nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from search.common.atomic import stale_temp_dirs
from search.cli import setup_logging
from search.cli.studyargs import add_study_args, open_study_arg
from search.data.cache import remove_stale_temps
from search.common.optuna_compat import stored_study_id, study_storage
from search.studyfile.parse import StudyFileError, StudySpec, cache_sizes, load_study_spec
from search.storage.study_attrs import StudyAttrs
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore, not_a_trial_folder

SUMMARY = "list, and with --yes remove, what a study no longer needs"

log = logging.getLogger(__name__)

CacheSize = tuple[int, int, str]  # (height, width, crop)


@dataclass(frozen=True)
class Removal:
    path: Path
    size: int  # bytes
    why: str
    # checked again before deleting (search/common/outputs.py)
    not_own: Callable[[Path], str | None] | None = None


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def kept_trials(study: optuna.Study, keep_top: int) -> set[int]:
    """The trials whose files stay: the ``keep_top`` best complete ones and every unfinished one
    (the same rule as ``search.engine.objective.retain_top``)."""
    trials = study.get_trials(deepcopy=False)
    scored = sorted(((t.value, t.number) for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                    reverse=True)
    return {n for _, n in scored[:keep_top]} | {t.number for t in trials if not t.state.is_finished()}


def trial_folders(store: TrialStore, keep: set[int], trials: set[int] | None = None) -> list[Removal]:
    """The folders of the study's trials outside ``keep``. A folder the store did not name (a
    hand-made ``trial_0099`` beside ``trial_00099``) or of no trial in ``trials`` was not written
    for this study: it is left alone, and logged as such."""
    found = []
    ours = {store.trial_dir(n).name for n in store.trial_numbers() if trials is None or n in trials}
    for path in sorted(store.root.glob("trial_*")) if store.root.is_dir() else []:
        if path.name not in ours:
            log.info("left alone: %s is not the folder of a trial of this study", path)
    for n in store.trial_numbers():
        path = store.trial_dir(n)
        if path.name in ours and path.is_dir() and n not in keep:
            found.append(Removal(path, disk_size(path), f"trial {n} is not kept", not_a_trial_folder))
    return found


def trial_artifacts(study: optuna.Study, workdir: Path, keep: set[int]) -> list[Removal]:
    found = []
    for trial in study.get_trials(deepcopy=False):
        if trial.number in keep:
            continue
        for meta in get_all_artifact_meta(trial, storage=study_storage(study)):
            path = workdir / "artifacts" / meta.artifact_id
            if path.is_file():
                found.append(Removal(path, disk_size(path), f"{meta.filename} of trial {trial.number}, not kept"))
    return found


def used_cache_sizes(storage: optuna.storages.BaseStorage, spec: StudySpec | None) -> set[CacheSize]:
    """(height, width, crop) of every trial of every study in the storage, and what ``spec`` can ask for."""
    used: set[CacheSize] = set()
    for summary in storage.get_all_studies():
        for trial in storage.get_all_trials(stored_study_id(summary), deepcopy=False):
            config = TrialAttrs.read(trial).config
            if isinstance(config, dict) and {"height", "width", "crop"} <= set(config):
                used.add((int(config["height"]), int(config["width"]), str(config["crop"])))
    if spec is not None:
        used |= set(cache_sizes(spec))
    return used


def unused_caches(cache_dir: Path, used: set[CacheSize]) -> list[Removal]:
    found = []
    for meta in sorted(cache_dir.glob("images-*.json")):
        try:
            info = json.loads(meta.read_text())
            size: CacheSize = (int(info["height"]), int(info["width"]), str(info["crop"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a finished cache this version wrote: leave it
        if size in used:
            continue
        for path in (meta.with_suffix(".npy"), meta):
            if path.is_file():
                why = f"cache {size[0]}x{size[1]} {size[2]} is used by no trial"
                found.append(Removal(path, disk_size(path), why))
    return found


def study_spec(study: optuna.Study, profile: str | None, study_file: Path | None = None) -> StudySpec | None:
    """The study file (``study_file``, else the one the study was created from), when it still loads."""
    attrs = StudyAttrs.find(study)
    path = study_file or (attrs.study_file if attrs is not None else None)
    if not path:
        return None
    try:
        return load_study_spec(path, profile=profile or (attrs.profile if attrs is not None else "cpu"))
    except StudyFileError as exc:
        log.warning("%s; keeping every cache a trial used", exc)
        return None


TEMP_ROOTS = (Path("exports"), Path("data"))  # where export and synth write by default
_WALK_DEPTH = 4  # <workdir>/trials/<study>/refit_<n>/folds-<k>: where the deepest temporary folder sits


def stale_temps(workdir: Path, also: Sequence[Path] = ()) -> list[Removal]:
    """Temporary folders of killed builds in ``workdir`` (to a depth of 4, not inside the image
    cache or the artifacts) and directly in each folder of ``also``."""
    folders = [p for p in also if p.is_dir()]
    for root, dirs, _ in os.walk(workdir):
        depth = len(Path(root).relative_to(workdir).parts)
        folders.append(Path(root))
        dirs[:] = [] if depth >= _WALK_DEPTH else [
            d for d in dirs if d not in ("cache", "artifacts") and not d.startswith(".")
        ]
    found: dict[Path, Removal] = {}
    for folder in folders:
        for path in stale_temp_dirs(folder):
            why = "left by a killed build; no process holds it"
            found.setdefault(path.resolve(), Removal(path, disk_size(path), why))
    return list(found.values())


def plan(
    study: optuna.Study, workdir: Path, keep_top: int | None = None, study_file: Path | None = None,
    temp_roots: Sequence[Path] = (),
) -> list[Removal]:
    spec = study_spec(study, None, study_file)
    default = spec.keep_top if spec else StudySpec.__dataclass_fields__["keep_top"].default
    keep = kept_trials(study, default if keep_top is None else keep_top)
    trials = {t.number for t in study.get_trials(deepcopy=False)}
    return (trial_folders(TrialStore(workdir, study.study_name), keep, trials)
            + trial_artifacts(study, workdir, keep)
            + unused_caches(workdir / "cache", used_cache_sizes(study_storage(study), spec))
            + stale_temps(workdir, temp_roots))


def remove(removals: Sequence[Removal]) -> int:
    """Delete what ``plan`` listed; returns the bytes freed."""
    freed = 0
    for item in removals:
        reason = item.not_own(item.path) if item.not_own is not None else None
        if reason is not None:
            log.warning("kept %s: it is not what this harness wrote there (%s)", item.path, reason)
            continue
        if item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)
        freed += item.size
    return freed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.clean", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_args(p)
    p.add_argument("--keep-top", type=int, help="trials to keep (default: the study file's keep_top)")
    p.add_argument("--yes", action="store_true", help="remove; without it nothing is deleted")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    setup_logging(quiet_level=logging.INFO)
    if args.keep_top is not None and args.keep_top < 0:
        p.error(f"--keep-top must be >= 0 but got {args.keep_top}")
    opened = open_study_arg(args)
    if opened is None:
        return 2
    ref, study = opened
    removals = plan(study, args.workdir, args.keep_top, ref.study_file, TEMP_ROOTS)
    for item in removals:
        print(f"{'remove' if args.yes else 'would remove'} {item.path} ({item.size:,} bytes): {item.why}")
    total = sum(item.size for item in removals)
    if not args.yes:
        print(f"{total:,} bytes would be freed; nothing was deleted (dry run). Pass --yes to remove.")
        return 0
    freed = remove(removals)
    stale = remove_stale_temps(args.workdir / "cache") if (args.workdir / "cache").is_dir() else []
    print(f"freed {freed:,} bytes ({len(removals)} items, {len(stale)} stale temporary cache files).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
