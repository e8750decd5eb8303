"""What a verb may write over: only its own earlier output, and nothing a user made.

One rule for every writer (synth, realfaces, export, report, predict, refit): before writing to
a path that exists, the verb calls :func:`claim` with an :class:`Output` saying what it writes
and how to recognise it (a marker or manifest the verb itself writes). Anything else there - a
folder of notes, a git checkout, a README, a bundle's manifest - is refused in one line and
left alone, whatever the flags. The verb's own earlier output is replaced only with ``flag``
(``--overwrite``) where losing it costs work (a data bench, a bundle); a file the verb
regenerates (a report, a submission, a refit's model folder) is replaced without one. An empty
folder holds nothing to lose and is taken.

Folders are built in a temporary folder beside the target (:func:`search.common.atomic.temp_dir`),
which the next run of the verb removes if a kill left it behind; ``search.clean`` lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class OutputExistsError(FileExistsError):
    """The path a verb would write holds something it may not replace; the message says why and what to do."""


@dataclass(frozen=True)
class Output:
    """What a verb writes, for :func:`claim`."""

    what: str  # "a synthetic bench"
    verb: str  # "python -m search.synth"
    not_own: Callable[[Path], str | None]  # why a path is not this verb's output; None when it is
    flag: str | None = "--overwrite"  # needed to replace its own output; None: replaced freely
    option: str = "--out"  # the option that names the path, for the message
    folder: bool = True  # a folder output takes an empty folder; a file output never writes over one


def claim(target: Path | str, output: Output, overwrite: bool = False) -> None:
    """Raise OutputExistsError unless ``output``'s verb may write ``target``: it is missing, an
    empty folder, or recognisably the verb's own output (with ``overwrite`` where ``flag`` asks)."""
    target = Path(target)
    if not (target.exists() or target.is_symlink()):
        return
    if output.folder and target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        return
    reason = output.not_own(target)
    if reason is not None:
        raise OutputExistsError(
            f"{output.option} {target} is not {output.what} written by {output.verb} ({reason}), so "
            f"nothing was deleted or overwritten. Choose another {output.option}."
        )
    if output.flag is not None and not overwrite:
        raise OutputExistsError(
            f"{output.option} {target} already exists ({output.what} written by {output.verb}); pass "
            f"{output.flag} to replace it, or choose another {output.option}."
        )


def marked_folder(
    folder: Path, marker: str | None, is_ours: Callable[[Any], bool], entries: Collection[str]
) -> str | None:
    """Why ``folder`` is not a folder a verb wrote, or None: it must hold the JSON ``marker`` the
    verb writes (``is_ours`` of its contents is true; no marker: nothing to check) and nothing at
    its top but ``entries``."""
    if folder.is_symlink() or not folder.is_dir():
        return "it is a symbolic link" if folder.is_symlink() else "it is not a folder"
    if marker is None:
        return _only(folder, entries)
    try:
        contents = json.loads((folder / marker).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it has no {marker}"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"its {marker} cannot be read ({type(exc).__name__})"
    if not is_ours(contents):
        return f"its {marker} was not written by this verb"
    return _only(folder, entries)


def _only(folder: Path, entries: Collection[str]) -> str | None:
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in entries)
    return f"it holds {foreign[0]}, which this verb does not write" if foreign else None


def marked_file(path: Path, is_ours: Callable[[bytes], bool], limit: int = 1 << 26) -> str | None:
    """Why ``path`` is not a file a verb wrote, or None: a plain file (not a link, not a folder)
    of at most ``limit`` bytes whose contents ``is_ours`` recognises."""
    if path.is_symlink() or not path.is_file():
        return "it is a symbolic link" if path.is_symlink() else "it is a folder, not a file"
    if path.stat().st_size > limit:
        return f"it is larger than anything this verb writes ({path.stat().st_size:,} bytes)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    return None if is_ours(data) else "its contents are not this verb's"
