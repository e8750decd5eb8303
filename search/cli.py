"""Command-line pieces shared by the verbs that read a study: report, ensemble, export, clean.

``--study`` means one thing in every verb, as in ``python -m search.run``: the study FILE (a
name in studies/ such as ``age_cutoff``, or a .toml path). ``--name`` is the study's name in
the storage and defaults to the study file's name, so ``--study age_cutoff`` finds the study
that ``python -m search.run --study age_cutoff`` wrote, and ``--name custom`` finds one run
with ``--name custom`` without naming its file.

Only argparse and logging are imported here; the study file and storage modules load when a
command uses them.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path("runs")  # every command's work folder unless --workdir; search.storage re-exports it
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def add_study_args(p: argparse.ArgumentParser, workdir_default: Path | None = DEFAULT_WORKDIR) -> None:
    """``--study``, ``--name``, ``--storage`` and ``--workdir``.

    ``workdir_default`` None: the work folder the study recorded when it ran.
    """
    p.add_argument(
        "--study",
        help="study file: a name in studies/ (e.g. age_cutoff) or a .toml path; "
        "the stored study defaults to the file's name",
    )
    p.add_argument(
        "--name", help="the study's name in the storage (default: the study file's name); enough on its own"
    )
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<workdir>/studies.db)")
    shown = "the one the study recorded" if workdir_default is None else str(workdir_default)
    p.add_argument("--workdir", type=Path, default=workdir_default, help=f"work folder (default: {shown})")


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--verbose", action="store_true", help="more log lines, and a traceback with an error"
    )


@dataclass(frozen=True)
class StudyRef:
    """Which stored study a command reads: its storage name, and the study file when given."""

    name: str
    study_file: Path | None  # the resolved --study file, None with --name alone


def study_ref(args: argparse.Namespace) -> StudyRef:
    """The stored study of ``--study``/``--name``; a ValueError when neither is given or the study
    file does not exist."""
    study, name = getattr(args, "study", None), getattr(args, "name", None)
    if not study and not name:
        raise ValueError(
            "name the study: --study FILE (a name in studies/ such as age_cutoff, or a .toml path; the "
            "stored study of that name is read) or --name NAME (the study's name in the storage)."
        )
    if not study:
        return StudyRef(str(name), None)
    from search.study import study_path

    try:
        path = study_path(study)
    except ValueError as exc:
        raise ValueError(
            f"{exc} --study names a study file; to read a stored study by its name, pass --name {study}."
        ) from None
    return StudyRef(str(name) if name else path.stem, path)


def open_stored_study(args: argparse.Namespace) -> tuple[StudyRef, Any]:
    """The stored study the arguments name, and which one it is; a ValueError (one line) when no
    study is named, the storage cannot be reached, or it holds no such study. Nothing is created."""
    from search.ensemble.candidates import load_study

    ref = study_ref(args)
    return ref, load_study(ref.name, storage_url(args))


def storage_url(args: argparse.Namespace, workdir: Path | None = None) -> str:
    """``--storage``, else the SQLite file in ``workdir`` (``--workdir``, else runs/)."""
    if args.storage:
        return str(args.storage)
    from search.storage import default_storage_url

    folder = workdir if workdir is not None else args.workdir
    return default_storage_url(Path(folder) if folder is not None else DEFAULT_WORKDIR)


def study_flags(name: str, study_arg: str | None = None) -> list[str]:
    """The arguments that name stored study ``name`` in report, ensemble, export and clean:
    ``--study`` as the user gave it to search.run when the stored name is that file's name,
    else ``--name``."""
    if study_arg and Path(study_arg).stem == name:
        return ["--study", study_arg]
    return ["--name", name]


def setup_logging(verbose: bool = False, quiet_level: int = logging.WARNING) -> None:
    """INFO with ``--verbose``, else ``quiet_level``; one format for every verb."""
    logging.basicConfig(level=logging.INFO if verbose else quiet_level, format=LOG_FORMAT)


def report_error(log: logging.Logger, exc: BaseException, verbose: bool = False) -> int:
    """Log ``exc`` as one line (with its traceback under ``--verbose``) and return exit code 2."""
    log.error("%s", exc, exc_info=verbose)
    return 2
