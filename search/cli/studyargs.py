"""The arguments that name a stored study, shared by report, ensemble, export and clean.

``--study`` means one thing in every verb, as in ``python -m search.run``: the study FILE (a
name in studies/ such as ``age_cutoff``, or a .toml path). ``--name`` is the study's name in
the storage and defaults to the study file's name, so ``--study age_cutoff`` finds the study
that ``python -m search.run --study age_cutoff`` wrote, and ``--name custom`` finds one run
with ``--name custom`` without naming its file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna

from search.storage.backends import DEFAULT_WORKDIR, resolve_storage
from search.storage.studies import open_stored_study
from search.studyfile.parse import study_path


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
    try:
        path = study_path(study)
    except ValueError as exc:
        raise ValueError(
            f"{exc} --study names a study file; to read a stored study by its name, pass --name {study}."
        ) from None
    return StudyRef(str(name) if name else path.stem, path)


def study_flags(name: str, study_arg: str | None = None) -> list[str]:
    """The arguments that name stored study ``name`` in report, ensemble, export and clean:
    ``--study`` as the user gave it to search.run when the stored name is that file's name,
    else ``--name``."""
    if study_arg and Path(study_arg).stem == name:
        return ["--study", study_arg]
    return ["--name", name]


def storage_url(args: argparse.Namespace, workdir: Path | None = None) -> str:
    """``--storage``, else the SQLite file in ``workdir`` (``--workdir``, else runs/)."""
    return resolve_storage(args.storage and str(args.storage), workdir if workdir is not None else args.workdir)


def open_study_arg(args: argparse.Namespace) -> tuple[StudyRef, optuna.Study] | None:
    """The stored study that ``--study``/``--name`` and ``--storage`` name, for the verbs that read
    one; None after one error line on stderr (no study named, no such study, a storage that
    cannot be reached)."""
    try:
        ref = study_ref(args)
        return ref, open_stored_study(ref.name, storage_url(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
