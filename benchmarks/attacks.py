"""The hostile and careless user, replayed: attack cases against the verbs, each held or failed.

    python -m benchmarks.attacks                    # every case (about 3 minutes on 2 cores)
    python -m benchmarks.attacks --only bundle      # the cases of one group (or a name's part)

Each case is a small function given a fresh folder and the shared world (one tiny bench, one
tiny finished study and its exported bundle, built once under ``--work-root``); it runs a verb's
``main`` in this process (a subprocess only where a signal is the attack) and checks the expected
outcome: a refusal ends with a non-zero exit and one line naming the file, flag or value (no
traceback, no password), and nothing is deleted, replaced or half written; an input that is
fine gets the correct result. A case that does not hold raises ``Failed`` with what happened.

Groups: study files, data, storage URLs, bundles, outputs, signals, disk full, flags. The table
is printed and ``benchmarks/results/attacks.json`` keeps every case's outcome.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    RUNS_DIR,
    FullDiskFile,
    base_parser,
    describe_machine,
    machine,
    save_result,
    table,
)

log = logging.getLogger("benchmarks.attacks")

SECRET = "Sup3rSecretPw"


class Failed(Exception):
    """The case did not hold; the message says what happened instead."""


@dataclass(frozen=True)
class World:
    """What the cases share: built once, never modified by a case (cases copy what they change)."""

    root: Path
    bench: Path  # a synthetic data set (train/ and eval/)
    study_file: Path  # a one-epoch copy of studies/smoke.toml
    storage: str  # the finished study's SQLite URL
    workdir: Path  # its work folder (trials, artifacts)
    name: str  # the stored study's name
    bundle: Path  # its exported bundle


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    run: Callable[[World, Path], None]


CASES: list[Case] = []


def case(group: str, name: str) -> Callable[[Callable[[World, Path], None]], Callable[[World, Path], None]]:
    def register(fn: Callable[[World, Path], None]) -> Callable[[World, Path], None]:
        CASES.append(Case(group, name, fn))
        return fn

    return register


def add(group: str, name: str, fn: Callable[[World, Path], None]) -> None:
    CASES.append(Case(group, name, fn))


# ------------------------------------------------------------------------------------------------
# running a verb in this process and judging what it did


@dataclass
class Result:
    rc: int | None
    out: str
    err: str
    records: list[logging.LogRecord] = field(default_factory=list)
    exc: str | None = None  # the traceback of an exception that escaped main

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    @property
    def text(self) -> str:
        return "\n".join([self.out, self.err, *self.messages, self.exc or ""])

    def error_lines(self) -> list[str]:
        """What the user is told went wrong: ERROR log records, and ``error:`` lines on stderr."""
        lines = [m for r, m in zip(self.records, self.messages, strict=True) if r.levelno >= logging.ERROR]
        lines += [line for line in self.err.splitlines() if "error:" in line]
        return lines


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def call(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> Result:
    """Run ``main(argv)`` with stdout, stderr and every log record captured."""
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    out, err = io.StringIO(), io.StringIO()
    rc: int | None = None
    exc = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    except SystemExit as stop:  # argparse
        rc = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 (a traceback is the finding)
        exc = traceback.format_exc()
    finally:
        root.removeHandler(capture)
    return Result(rc, out.getvalue(), err.getvalue(), capture.records, exc)


def refused(r: Result, *tokens: str, secret: str | None = SECRET, code: int | None = None,
            listing: bool = False) -> None:
    """A refusal: non-zero exit, no traceback, one error line holding every token, no secret.
    ``listing``: the data layer's error names the file on its first line and then lists every
    problem found, one per line (all at once, so one round of fixes suffices)."""
    if r.exc:
        raise Failed("traceback: " + r.exc.strip().splitlines()[-1][:200])
    if not r.rc:
        raise Failed(f"exit {r.rc} (expected a refusal)")
    if code is not None and r.rc != code:
        raise Failed(f"exit {r.rc}, expected {code}")
    lines = r.error_lines()
    if listing and len(lines) == 1:
        lines = [lines[0].replace("\n", " ")]
    if len(lines) != 1 or "\n" in lines[0]:
        raise Failed(f"{len(lines)} error lines: {' | '.join(lines)[:200]}")
    missing = [t for t in tokens if t.lower() not in lines[0].lower()]
    if missing:
        raise Failed(f"the line lacks {missing}: {lines[0][:200]}")
    if "Traceback" in r.text:
        raise Failed("a traceback was printed")
    if secret and secret in r.text:
        raise Failed("the secret was printed")


def succeeded(r: Result) -> None:
    if r.exc:
        raise Failed("traceback: " + r.exc.strip().splitlines()[-1][:200])
    if r.rc != 0:
        raise Failed(f"exit {r.rc}: {' | '.join(r.error_lines())[:200]}")


def same_tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or the file itself) with its bytes, to prove nothing changed."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def unchanged(path: Path, before: dict[str, bytes]) -> None:
    if not path.exists() or same_tree(path) != before:
        raise Failed(f"{path} was changed or removed")


def no_leftovers(folder: Path, *allowed: str) -> None:
    extra = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    if extra:
        raise Failed(f"left behind in {folder}: {extra}")


# the verbs, imported on first use so --help stays quick
def run_main(argv: Sequence[str]) -> int:
    from search.run import main

    return main(argv)


def export_main(argv: Sequence[str]) -> int:
    from search.export import main

    return main(argv)


def predict_main(argv: Sequence[str]) -> int:
    from search.predict import main

    return main(argv)


def report_main(argv: Sequence[str]) -> int:
    from search.report import main

    return main(argv)


def ensemble_main(argv: Sequence[str]) -> int:
    from search.ensemble import main

    return main(argv)


def clean_main(argv: Sequence[str]) -> int:
    from search.clean import main

    return main(argv)


def synth_main(argv: Sequence[str]) -> int:
    from search.synth import main

    return main(argv)


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    missing = object()
    old = obj.__dict__.get(name, missing) if hasattr(obj, "__dict__") else getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if old is missing:
            delattr(obj, name)
        else:
            setattr(obj, name, old)


def enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device", str(args[-1]) if args else None)


def interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------------
# study files: run with a bad --study, refused before any data is read


def _run_study(world: World, tmp: Path, study: str | Path, *extra: str) -> Result:
    return call(run_main, ["--study", str(study), "--data", str(world.bench), "--workdir", str(tmp / "runs"),
                           "--device", "cpu", *extra])


BASE = """[study]
n_trials = 2
[fixed]
epochs = 1
height = 32
width = 24
[params]
lr = [0.01]
"""


def _study_text(world: World, tmp: Path, text: bytes | str, *tokens: str, name: str = "attack.toml") -> None:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(_run_study(world, tmp, path), *tokens)
    if (tmp / "runs").exists() and any((tmp / "runs").rglob("*.db")):
        raise Failed("a storage was created for a refused study file")


STUDY_FILES: dict[str, tuple[bytes | str, tuple[str, ...]]] = {
    "binary file": (b"\xff\xd8\xff\xe0JFIF\x00" + bytes(range(256)), ("attack.toml", "not a text study file")),
    "Latin-1 text": ("[study]\ndescription = 'caf\xe9'\n".encode("latin-1"), ("attack.toml", "UTF-8")),
    "empty file": ("", ("attack.toml", "empty")),
    "comments only": ("# nothing\n\n", ("attack.toml", "empty")),
    "broken TOML": ("[study\nn_trials = 2\n", ("attack.toml", "not valid TOML")),
    "NUL byte": ("[study]\nn_trials = 2\x00\n", ("attack.toml",)),
    "unknown table": (BASE + "[trainer]\nx = 1\n", ("attack.toml", "trainer")),
    "unknown study key": (BASE.replace("n_trials = 2", "n_trials = 2\ntrials = 3"), ("attack.toml", "study.trials")),
    "n_trials 0": (BASE.replace("n_trials = 2", "n_trials = 0"), ("attack.toml", "n_trials")),
    "n_trials negative": (BASE.replace("n_trials = 2", "n_trials = -3"), ("attack.toml", "n_trials")),
    "n_trials quoted": (BASE.replace("n_trials = 2", 'n_trials = "5"'), ("attack.toml", "n_trials")),
    "n_trials a float": (BASE.replace("n_trials = 2", "n_trials = 2.5"), ("attack.toml", "n_trials")),
    "timeout_s 0": (BASE.replace("n_trials = 2", "n_trials = 2\ntimeout_s = 0"), ("attack.toml", "timeout_s")),
    "timeout_s negative": (BASE.replace("n_trials = 2", "n_trials = 2\ntimeout_s = -5"), ("attack.toml", "timeout_s")),
    "keep_top 0": (BASE.replace("n_trials = 2", "n_trials = 2\nkeep_top = 0"), ("attack.toml", "keep_top")),
    "unknown space": (BASE.replace("n_trials = 2", "n_trials = 2\nspace = 'huge'"), ("attack.toml", "space")),
    "unknown sampler": (BASE + "[sampler]\nname = 'grid'\n", ("attack.toml", "sampler.name")),
    "negative sampler seed": (BASE + "[sampler]\nseed = -1\n", ("attack.toml", "sampler.seed")),
    "unknown pruner": (BASE + "[pruner]\nname = 'magic'\n", ("attack.toml", "magic")),
    "pruner reduction_factor 1": (BASE + "[pruner]\nname = 'successive_halving'\nreduction_factor = 1\n",
                                  ("attack.toml", "reduction_factor")),
    "val_fraction 0": (BASE + "[split]\nval_fraction = 0.0\n", ("attack.toml", "val_fraction")),
    "val_fraction 1.5": (BASE + "[split]\nval_fraction = 1.5\n", ("attack.toml", "val_fraction")),
    "one fold": (BASE + "[split]\nfolds = 1\n", ("attack.toml", "folds")),
    "unknown backbone": (BASE.replace("epochs = 1", "epochs = 1\nbackbone = 'resnet9000'"), ("attack.toml", "backbone")),
    "lr quoted": (BASE.replace("epochs = 1", "epochs = 1\nlr = '0.1'"), ("attack.toml", "lr")),
    "lr negative": (BASE.replace("[params]\nlr = [0.01]", "[params]\nlr = [-0.1]"), ("attack.toml", "lr")),
    "epochs 0": (BASE.replace("epochs = 1", "epochs = 0"), ("attack.toml", "epochs")),
    "head_hidden 1e13": (BASE.replace("epochs = 1", "epochs = 1\nhead_hidden = 10000000000000"),
                         ("attack.toml", "head_hidden")),
    "unknown crop": (BASE.replace("epochs = 1", "epochs = 1\ncrop = 'nose'"), ("attack.toml", "crop")),
    "unknown augmentation": (BASE.replace("epochs = 1", "epochs = 1\naugment = 'zzz'"), ("attack.toml", "augment")),
    "age cutoff 90": (BASE.replace("epochs = 1", "epochs = 1\nage_cutoff = 90"), ("attack.toml", "age_cutoff")),
    "label smoothing 1": (BASE.replace("epochs = 1", "epochs = 1\nlabel_smoothing = 1.0"),
                          ("attack.toml", "label_smoothing")),
    "unknown TrialConfig key": (BASE.replace("epochs = 1", "epochs = 1\nlayers = 3"), ("attack.toml", "fixed.layers")),
    "empty categorical": (BASE.replace("lr = [0.01]", "lr = [0.01]\nbackbone = []"), ("attack.toml", "backbone")),
    "range low above high": (BASE.replace("lr = [0.01]", "lr = { low = 0.1, high = 0.01 }"), ("attack.toml", "lr")),
    "fixed and searched backbone": (
        BASE.replace("epochs = 1", "epochs = 1\nbackbone = 'test_resnet'").replace(
            "lr = [0.01]", "lr = [0.01]\nbackbone = ['test_efficientnet']"),
        ("attack.toml", "backbone", "both"),
    ),
    "fixed and searched in one profile": (
        BASE + "[profiles.cpu.fixed]\nseed = 1\n[profiles.cpu.params]\nseed = [1, 2]\n",
        ("attack.toml", "seed", "both"),
    ),
    "unknown profile": (BASE + "[profiles.tpu]\nn_trials = 3\n", ("attack.toml", "tpu")),
}
for _name, (_text, _tokens) in STUDY_FILES.items():
    add("study files", _name, lambda w, t, text=_text, tokens=_tokens: _study_text(w, t, text, *tokens))


@case("study files", "--study nope.toml is named as given")
def _missing_toml(world: World, tmp: Path) -> None:
    r = _run_study(world, tmp, tmp / "nope.toml")
    refused(r, "nope.toml")
    if "nope.toml.toml" in r.text:
        raise Failed("reported as nope.toml.toml")


@case("study files", "--study names an unknown study")
def _unknown_name(world: World, tmp: Path) -> None:
    refused(_run_study(world, tmp, "no_such_study"), "no_such_study", "Available studies")


@case("study files", "--study names a folder")
def _folder_study(world: World, tmp: Path) -> None:
    refused(_run_study(world, tmp, tmp), str(tmp), "folder")


@case("study files", "--study names a folder called x.toml")
def _folder_toml(world: World, tmp: Path) -> None:
    (tmp / "x.toml").mkdir()
    refused(_run_study(world, tmp, tmp / "x.toml"), "x.toml", "folder")


@case("study files", "--study a symlink to /dev/null")
def _devnull(world: World, tmp: Path) -> None:
    (tmp / "null.toml").symlink_to("/dev/null")
    refused(_run_study(world, tmp, tmp / "null.toml"), "null.toml", "empty")


@case("study files", "--study an unreadable file")
def _unreadable(world: World, tmp: Path) -> None:
    path = tmp / "locked.toml"
    path.write_text(BASE)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: the refusal cannot happen here
            return
        refused(_run_study(world, tmp, path), "locked.toml")
    finally:
        path.chmod(0o600)


# ------------------------------------------------------------------------------------------------
# data: a copy of the bench, broken one way


def _bench_copy(world: World, tmp: Path) -> Path:
    root = tmp / "data"
    shutil.copytree(world.bench, root)
    return root


def _people(root: Path) -> list[str]:
    return (root / "train" / "train.csv").read_text().splitlines()


def _edit_train_csv(root: Path, change: Callable[[list[str]], list[str]], encoding: str = "utf-8") -> None:
    path = root / "train" / "train.csv"
    path.write_bytes("\n".join(change(path.read_text().splitlines())).encode(encoding) + b"\n")


def _field(line: str, index: int, value: str) -> str:
    cells = line.split(",")
    cells[index] = value
    return ",".join(cells)


def _train_column(root: Path, name: str) -> int:
    return _people(root)[0].split(",").index(name)


def _data_case(change: Callable[[Path], Any], *tokens: str) -> Callable[[World, Path], None]:
    def run(world: World, tmp: Path) -> None:
        root = _bench_copy(world, tmp)
        change(root)
        refused(_run_study(world, tmp, world.study_file, "--data", str(root)), *tokens, listing=True)

    return run


def _first_folder(root: Path) -> Path:
    return sorted(p for p in (root / "train" / "images").iterdir() if p.is_dir() and not p.name.startswith("."))[0]


def _first_photo(root: Path, stem: str = "mask1") -> Path:
    return next(_first_folder(root).glob(f"{stem}.*"))


def _set_cell(column: str, value: str, row: int = 1) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        i = _train_column(root, column)
        _edit_train_csv(root, lambda lines: [*lines[:row], _field(lines[row], i, value), *lines[row + 1:]])

    return change


DATA: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    "train.csv missing": (lambda r: (r / "train" / "train.csv").unlink(), ("train",)),
    "train.csv empty": (lambda r: (r / "train" / "train.csv").write_text(""), ("train.csv", "empty")),
    "train.csv header only": (lambda r: _edit_train_csv(r, lambda lines: lines[:1]), ("train.csv", "no people")),
    "train.csv without the age column": (
        lambda r: _edit_train_csv(r, lambda lines: [line.rsplit(",", 1)[0] if False else ",".join(
            c for i, c in enumerate(line.split(",")) if i != _train_column(r, "age")) for line in lines]),
        ("train.csv", "age"),
    ),
    "age not a number": (_set_cell("age", "abc"), ("train.csv", "line 2", "age")),
    "age 200": (_set_cell("age", "200"), ("train.csv", "line 2", "age")),
    "unknown gender": (_set_cell("gender", "x"), ("train.csv", "line 2", "gender")),
    "empty id": (_set_cell("id", ""), ("train.csv", "line 2", "id")),
    "path leaving images/": (_set_cell("path", "../../etc"), ("train.csv", "line 2", "path")),
    "path repeated": (
        lambda r: _edit_train_csv(r, lambda lines: [*lines, lines[1]]), ("train.csv", "repeats"),
    ),
    "person folder missing": (lambda r: shutil.rmtree(_first_folder(r)), ("train",)),
    "photo missing": (lambda r: _first_photo(r, "mask3").unlink(), ("mask3",)),
    "photo truncated": (lambda r: _first_photo(r).write_bytes(_first_photo(r).read_bytes()[:60]), ("mask1",)),
    "photo empty": (lambda r: _first_photo(r).write_bytes(b""), ("mask1",)),
    "photo is text": (lambda r: _first_photo(r).write_text("not an image"), ("mask1",)),
    "train.csv in Latin-1": (
        lambda r: _set_cell("race", "Asi\xe9n")(r) or _edit_train_csv(r, lambda lines: lines, "latin-1"),
        ("train.csv", "UTF-8"),
    ),
    "--data missing": (lambda r: shutil.rmtree(r), ("data",)),
    "--data a file": (lambda r: shutil.rmtree(r) or r.write_text("x"), ("data",)),
}
for _name, (_change, _tokens) in DATA.items():
    add("data", _name, _data_case(_change, *_tokens))


@case("data", "train.csv in Latin-1 is read with its fix named")
def _latin1_train(world: World, tmp: Path) -> None:
    root = _bench_copy(world, tmp)
    text = (root / "train" / "train.csv").read_text().replace("Asian", "Asi\xe9n", 1)
    (root / "train" / "train.csv").write_bytes(text.encode("latin-1"))
    refused(_run_study(world, tmp, world.study_file, "--data", str(root)), "save it as UTF-8")


@case("data", "repeated person ids are named in a warning")
def _repeated_ids(world: World, tmp: Path) -> None:
    from search.data import load_train

    root = _bench_copy(world, tmp)
    i = _train_column(root, "id")
    pid = _people(root)[1].split(",")[i]
    _edit_train_csv(root, lambda lines: [lines[0], lines[1], _field(lines[2], i, pid), *lines[3:]])
    capture = _Capture()
    logging.getLogger().addHandler(capture)
    try:
        load_train(root)
    finally:
        logging.getLogger().removeHandler(capture)
    if not any(r.levelno == logging.WARNING and pid in r.getMessage() for r in capture.records):
        raise Failed("no warning names the repeated id")


@case("data", "macOS ._ files are ignored")
def _dot_underscore(world: World, tmp: Path) -> None:
    from search.data import load_train

    root = _bench_copy(world, tmp)
    (_first_folder(root) / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07")
    load_train(root)


@case("data", "a UTF-8 BOM in train.csv is read")
def _bom(world: World, tmp: Path) -> None:
    from search.data import load_train

    root = _bench_copy(world, tmp)
    path = root / "train" / "train.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    load_train(root)


def _predict_on(world: World, tmp: Path, eval_dir: Path, *extra: str) -> Result:
    return call(predict_main, ["--bundle", str(world.bundle), "--data", str(eval_dir), "--out",
                               str(tmp / "out" / "submission.csv"), "--device", "cpu", *extra])


def _eval_case(change: Callable[[Path], Any], *tokens: str) -> Callable[[World, Path], None]:
    def run(world: World, tmp: Path) -> None:
        root = _bench_copy(world, tmp)
        change(root / "eval")
        (tmp / "out").mkdir()
        refused(_predict_on(world, tmp, root / "eval"), *tokens, listing=True)
        no_leftovers(tmp / "out")

    return run


def _edit_info(change: Callable[[list[str]], list[str]], encoding: str = "utf-8") -> Callable[[Path], None]:
    def run(eval_dir: Path) -> None:
        path = eval_dir / "info.csv"
        path.write_bytes("\n".join(change(path.read_text().splitlines())).encode(encoding) + b"\n")

    return run


EVAL: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    "info.csv missing": (lambda e: (e / "info.csv").unlink(), ("info.csv",)),
    "info.csv empty": (lambda e: (e / "info.csv").write_text(""), ("info.csv", "empty")),
    "info.csv header only": (_edit_info(lambda lines: lines[:1]), ("info.csv", "no rows")),
    "info.csv without ImageID": (_edit_info(lambda lines: ["Image,ans", *lines[1:]]), ("info.csv", "ImageID")),
    "info.csv row without image": (_edit_info(lambda lines: [*lines, "nothere.jpg,0"]), ("info.csv", "nothere")),
    "info.csv ImageID repeated": (_edit_info(lambda lines: [*lines, lines[1]]), ("info.csv", "repeats")),
    "info.csv in Latin-1": (_edit_info(lambda lines: [*lines, "caf\xe9.jpg,0"], "latin-1"), ("info.csv", "UTF-8")),
    "eval images folder missing": (lambda e: shutil.rmtree(e / "images"), ("images",)),
    "eval photo truncated": (
        lambda e: next((e / "images").iterdir()).write_bytes(b"\xff\xd8\xff"), ("images",)),
}
for _name, (_change, _tokens) in EVAL.items():
    add("data", f"predict: {_name}", _eval_case(_change, *_tokens))


# ------------------------------------------------------------------------------------------------
# storage URLs: never printed with their password, always one line


URLS = {  # none may reach a server or a file that exists: every one is refused
    "one slash after the scheme": f"postgresql:/user:{SECRET}@127.0.0.1/db",
    "unescaped @ in the password": f"postgresql://user:{SECRET}@x@127.0.0.1:1/db",
    "password in a sqlite query": f"sqlite:////nonexistent-attacks/x.db?password={SECRET}",
    "unknown scheme": f"mysqlx://user:{SECRET}@127.0.0.1/db",
    "refused connection": f"postgresql://user:{SECRET}@127.0.0.1:1/db",
    "port not a number": f"postgresql://user:{SECRET}@127.0.0.1:port/db",
    "no host": f"postgresql://user:{SECRET}@/db",
    "spaces": f"postgresql://user:{SECRET}@127.0.0.1:1/my db",
    "malformed IPv6 host": f"postgresql://user:{SECRET}@[::1:5432/db",
}
for _name, _url in URLS.items():
    if not _url.startswith("sqlite"):  # search.run creates a SQLite file: that one is for the readers only
        add("storage URLs", f"run: {_name}",
            lambda w, t, url=_url: refused(_run_study(w, t, w.study_file, "--storage", url)))
    add("storage URLs", f"report: {_name}",
        lambda w, t, url=_url: refused(call(report_main, ["--name", "x", "--storage", url, "--workdir", str(t)])))
    add("storage URLs", f"export: {_name}",
        lambda w, t, url=_url: refused(call(export_main, ["--name", "x", "--storage", url, "--out", str(t / "b")])))


@case("storage URLs", "report: a SQLite file in a missing folder is not created")
def _sqlite_missing(world: World, tmp: Path) -> None:
    refused(call(report_main, ["--name", "x", "--storage", f"sqlite:///{tmp}/no/such.db", "--workdir", str(tmp)]),
            "such.db")
    if (tmp / "no").exists():
        raise Failed("the folder was created")


@case("storage URLs", "report: a study that the storage does not hold")
def _no_study(world: World, tmp: Path) -> None:
    refused(call(report_main, ["--name", "nope", "--storage", world.storage, "--workdir", str(tmp)]), "nope")


# ------------------------------------------------------------------------------------------------
# bundles: a copy of the shared bundle, tampered with, then predicted with


def _bundle_copy(world: World, tmp: Path) -> Path:
    dst = tmp / "bundle"
    shutil.copytree(world.bundle, dst)
    return dst


def _edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _rehash(bundle: Path, rel: str) -> None:
    import hashlib

    digest = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    _edit_manifest(bundle, lambda m: m["files"].__setitem__(rel, digest))


def _predict_bundle(world: World, tmp: Path, bundle: Path, backend: str) -> Result:
    (tmp / "out").mkdir(exist_ok=True)
    return call(predict_main, ["--bundle", str(bundle), "--data", str(world.bench / "eval"), "--out",
                               str(tmp / "out" / "s.csv"), "--backend", backend, "--device", "cpu"])


def _bundle_case(change: Callable[[Path], Any], *tokens: str, backend: str = "torch") -> Callable[[World, Path], None]:
    def run(world: World, tmp: Path) -> None:
        bundle = _bundle_copy(world, tmp)
        change(bundle)
        refused(_predict_bundle(world, tmp, bundle, backend), *tokens)
        no_leftovers(tmp / "out")

    return run


def _manifest(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return lambda bundle: _edit_manifest(bundle, change)


def _member(key: str, value: Any) -> Callable[[Path], None]:
    return _manifest(lambda m: m["members"][0].__setitem__(key, value))


def _config(key: str, value: Any) -> Callable[[Path], None]:
    return _manifest(lambda m: m["members"][0]["config"].__setitem__(key, value))


def _offsets(values: list[Any]) -> Callable[[Path], None]:
    return _manifest(lambda m: (m["vote"].__setitem__("kind", "soft"),
                                m.__setitem__("decision_rule", {"offsets": values})))


def _swap(rel: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], None]:
    def run(bundle: Path) -> None:
        (bundle / rel).write_bytes(data(bundle) if callable(data) else data)
        _rehash(bundle, rel)

    return run


def _scaled_bias(bundle: Path) -> bytes:
    import numpy as np
    from safetensors.numpy import load_file, save

    tensors = load_file(str(bundle / "members" / "0.safetensors"))
    name = next(k for k, v in tensors.items() if k.endswith("bias") and v.shape == (18,))
    tensors[name] = tensors[name] + np.linspace(-5, 5, 18, dtype=np.float32)
    return save(tensors)


def _nul_path(m: dict[str, Any]) -> None:
    m["files"]["members/0\x00.safetensors"] = m["files"]["members/0.safetensors"]
    m["members"][0]["checkpoints"] = ["members/0\x00.safetensors"]


BUNDLES: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    "member weight 1.7e308": (_member("weight", 1.7e308), ("manifest.json", "members[0].weight")),
    "member weight negative": (_member("weight", -1.0), ("manifest.json", "members[0].weight")),
    "member weight a string": (_member("weight", "1"), ("manifest.json", "members[0].weight")),
    "every weight 0": (_manifest(lambda m: [x.__setitem__("weight", 0.0) for x in m["members"]]),
                       ("manifest.json", "weight")),
    "decision offset +1e300": (_offsets([1e300] + [0.0] * 17), ("manifest.json", "decision_rule.offsets[0]")),
    "decision offset -1e300": (_offsets([0.0] * 17 + [-1e300]), ("manifest.json", "decision_rule.offsets[17]")),
    "decision offsets 17": (_offsets([0.0] * 17), ("manifest.json", "decision_rule.offsets")),
    "decision offset a string": (_offsets(["0"] * 18), ("manifest.json", "decision_rule.offsets[0]")),
    "config head_hidden 1e13": (_config("head_hidden", 10**13), ("manifest.json", "head_hidden")),
    "config head_hidden 1e13 float": (_config("head_hidden", 1e13), ("manifest.json", "head_hidden")),
    "config backbone a number": (_config("backbone", 7), ("manifest.json", "backbone")),
    "config backbone unknown": (_config("backbone", "resnet9000"), ("manifest.json", "resnet9000")),
    "config unknown key": (_config("layers", 3), ("manifest.json", "layers")),
    "config a list": (_member("config", [1, 2]), ("manifest.json", "members[0].config")),
    "config of another size": (_config("height", 64), ("manifest.json", "config.height")),
    "input height 0": (_manifest(lambda m: m["preprocessing"].__setitem__("height", 0)),
                       ("manifest.json", "preprocessing.height")),
    "input height 100000": (_manifest(lambda m: m["preprocessing"].__setitem__("height", 100000)),
                            ("manifest.json", "preprocessing.height")),
    "input crop unknown": (_manifest(lambda m: m["preprocessing"].__setitem__("crop", "nose")),
                           ("manifest.json", "crop")),
    "member std 0": (_manifest(lambda m: m["members"][0]["preprocessing"].__setitem__("std", [0, 0, 0])),
                     ("manifest.json", "std")),
    "member mean too short": (_manifest(lambda m: m["members"][0]["preprocessing"].__setitem__("mean", [0.5])),
                              ("manifest.json", "mean")),
    "unknown vote": (_manifest(lambda m: m["vote"].__setitem__("kind", "plurality")), ("manifest.json", "vote.kind")),
    "files a list": (_manifest(lambda m: m.__setitem__("files", list(m["files"]))), ("manifest.json", "files")),
    "digest not sha256": (_manifest(lambda m: m["files"].__setitem__("ensemble.onnx", "abc")),
                          ("manifest.json", "ensemble.onnx")),
    "classes cut short": (_manifest(lambda m: m.__setitem__("classes", m["classes"][:3])), ("manifest.json", "classes")),
    "probe missing": (_manifest(lambda m: m.pop("probe")), ("manifest.json", "probe")),
    "probe NaN": (_manifest(lambda m: m["probe"]["probs"][0].__setitem__(0, float("nan"))), ("manifest.json", "probe")),
    "format version 1": (_manifest(lambda m: m.__setitem__("format_version", 1)), ("manifest.json", "format_version")),
    "manifest not JSON": (lambda b: (b / "manifest.json").write_text("{not json"), ("manifest.json", "JSON")),
    "manifest a list": (lambda b: (b / "manifest.json").write_text("[]"), ("manifest.json", "JSON object")),
    "manifest empty": (lambda b: (b / "manifest.json").write_text(""), ("manifest.json",)),
    "manifest missing": (lambda b: (b / "manifest.json").unlink(), ("manifest.json",)),
    "NUL byte in a file path": (_manifest(_nul_path), ("manifest.json",)),
    "absolute file path": (_manifest(lambda m: m["files"].__setitem__("/etc/passwd", "0" * 64)),
                           ("manifest.json", "/etc/passwd")),
    "file path with ..": (_manifest(lambda m: (m["files"].__setitem__("../x.safetensors", m["files"]["members/0.safetensors"]),
                                               m["members"][0].__setitem__("checkpoints", ["../x.safetensors"]))),
                          ("manifest.json", "../x.safetensors")),
    "member file missing": (lambda b: (b / "members" / "0.safetensors").unlink(), ("0.safetensors",)),
    "member file altered": (lambda b: (b / "members" / "0.safetensors").open("ab").write(b"\0"), ("checksum",)),
    "member symlink outside": (
        lambda b: (shutil.move(b / "members" / "0.safetensors", b.parent / "x.safetensors"),
                   (b / "members" / "0.safetensors").symlink_to(b.parent / "x.safetensors")),
        ("0.safetensors", "outside"),
    ),
    "member weights swapped, checksum updated": (_swap("members/0.safetensors", _scaled_bias),
                                                 ("torch ensemble", "recorded at export")),
    "member not safetensors, checksum updated": (_swap("members/0.safetensors", b"\x00" * 64), ("0.safetensors",)),
}
for _name, (_change, _tokens) in BUNDLES.items():
    add("bundles", _name, _bundle_case(_change, *_tokens))

ONNX_BUNDLES: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    "garbage graph, checksum updated": (_swap("ensemble.onnx", b"\x08\x07garbage" * 40), ("onnxruntime cannot load",)),
    "empty graph, checksum updated": (_swap("ensemble.onnx", b""), ("ensemble.onnx",)),
    "graph altered": (lambda b: (b / "ensemble.onnx").open("ab").write(b"\0"), ("checksum", "ensemble.onnx")),
    "graph missing": (lambda b: (b / "ensemble.onnx").unlink(), ("ensemble.onnx",)),
    "graph unlisted": (_manifest(lambda m: m["files"].pop("ensemble.onnx")), ("ensemble.onnx",)),
}
for _name, (_change, _tokens) in ONNX_BUNDLES.items():
    add("bundles", f"onnx: {_name}", _bundle_case(_change, *_tokens, backend="onnx"))


@case("bundles", "onnx: another bundle's graph of another size, checksum updated")
def _other_size_graph(world: World, tmp: Path) -> None:
    other = _other_bundle(world, tmp, height=40, width=24)
    bundle = _bundle_copy(world, tmp)
    _swap("ensemble.onnx", (other / "ensemble.onnx").read_bytes())(bundle)
    refused(_predict_bundle(world, tmp, bundle, "onnx"), "not this bundle's graph")


@case("bundles", "onnx: another bundle's graph of the same size, checksum updated")
def _same_size_graph(world: World, tmp: Path) -> None:
    from search.deploy import Bundle

    spec = Bundle.load(world.bundle).manifest.input
    other = _other_bundle(world, tmp, height=spec.height, width=spec.width, crop=spec.crop)
    bundle = _bundle_copy(world, tmp)
    _swap("ensemble.onnx", (other / "ensemble.onnx").read_bytes())(bundle)
    refused(_predict_bundle(world, tmp, bundle, "onnx"), "recorded at export")


def _other_bundle(world: World | None, tmp: Path, height: int, width: int, crop: str = "full", seed: int = 1) -> Path:
    """A one-member bundle of an untrained test model (timm, pretrained=False) at this size."""
    import torch
    from safetensors.torch import save_file

    from runners.config import TrialConfig
    from runners.models import build_model
    from search.deploy.writer import MemberSource, write_bundle

    torch.manual_seed(seed)
    config = TrialConfig(backbone="test_resnet", height=height, width=width, crop=crop)
    weights = tmp / "other.safetensors"
    save_file({k: v.contiguous() for k, v in build_model(config).state_dict().items()}, str(weights))
    write_bundle([MemberSource("other#0", config.to_dict(), (weights,), 1.0)], tmp / "other")
    return tmp / "other"


@case("bundles", "--bundle a file")
def _bundle_file(world: World, tmp: Path) -> None:
    (tmp / "b").write_text("x")
    refused(_predict_bundle(world, tmp, tmp / "b", "torch"), str(tmp / "b"))


@case("bundles", "--bundle an empty folder")
def _bundle_empty(world: World, tmp: Path) -> None:
    (tmp / "b").mkdir()
    refused(_predict_bundle(world, tmp, tmp / "b", "torch"), "manifest.json")


@case("bundles", "torch and ONNX agree on the untouched bundle")
def _agree(world: World, tmp: Path) -> None:
    import numpy as np

    from search.deploy import Bundle

    bundle = Bundle.load(world.bundle)
    images = np.random.default_rng(0).integers(0, 256, (5, bundle.height, bundle.width, 3), dtype=np.uint8)
    diff = np.abs(bundle.predict_proba(images, "torch", device="cpu") - bundle.predict_proba(images, "onnx", device="cpu"))
    if diff.max() > 1e-4:
        raise Failed(f"torch and ONNX differ by {diff.max():.2e}")


@case("bundles", "loading stays fast (checksums only)")
def _fast_load(world: World, tmp: Path) -> None:
    from search.deploy import Bundle

    start = time.perf_counter()
    for _ in range(5):
        Bundle.load(world.bundle)
    per = (time.perf_counter() - start) / 5
    if per > 0.5:
        raise Failed(f"Bundle.load takes {per:.2f} s")


# ------------------------------------------------------------------------------------------------
# outputs: nothing deleted or replaced that the verb did not write


def _notes(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine, not the tool's")
    return same_tree(folder)


@case("outputs", "predict --out naming the bundle's manifest")
def _out_manifest(world: World, tmp: Path) -> None:
    bundle = _bundle_copy(world, tmp)
    before = same_tree(bundle)
    r = call(predict_main, ["--bundle", str(bundle), "--data", str(world.bench / "eval"), "--out",
                            str(bundle / "manifest.json"), "--device", "cpu"])
    refused(r, "manifest.json")
    unchanged(bundle, before)


@case("outputs", "predict --out inside the bundle")
def _out_in_bundle(world: World, tmp: Path) -> None:
    bundle = _bundle_copy(world, tmp)
    before = same_tree(bundle)
    r = call(predict_main, ["--bundle", str(bundle), "--data", str(world.bench / "eval"), "--out", str(bundle),
                            "--device", "cpu"])
    refused(r, str(bundle))
    unchanged(bundle, before)


@case("outputs", "predict --out an existing folder gets submission.csv inside")
def _out_folder(world: World, tmp: Path) -> None:
    before = _notes(tmp / "subs")
    succeeded(call(predict_main, ["--bundle", str(world.bundle), "--data", str(world.bench / "eval"), "--out",
                                  str(tmp / "subs"), "--device", "cpu"]))
    if not (tmp / "subs" / "submission.csv").is_file() or (tmp / "subs" / "notes.txt").read_bytes() != before["notes.txt"]:
        raise Failed("submission.csv missing or notes changed")


@case("outputs", "predict --out under a file")
def _out_under_file(world: World, tmp: Path) -> None:
    (tmp / "f").write_text("x")
    refused(call(predict_main, ["--bundle", str(world.bundle), "--data", str(world.bench / "eval"), "--out",
                                str(tmp / "f" / "s.csv"), "--device", "cpu"]), "f")


@case("outputs", "report --out an existing file")
def _report_over_file(world: World, tmp: Path) -> None:
    readme = tmp / "README.md"
    readme.write_text("# my notes\n")
    refused(call(report_main, ["--name", world.name, "--storage", world.storage, "--out", str(readme)]), "README.md")
    if readme.read_text() != "# my notes\n":
        raise Failed("the file was replaced")


@case("outputs", "report --out a folder")
def _report_folder(world: World, tmp: Path) -> None:
    before = _notes(tmp / "reports")
    refused(call(report_main, ["--name", world.name, "--storage", world.storage, "--out", str(tmp / "reports")]),
            "reports", "folder")
    unchanged(tmp / "reports", before)


@case("outputs", "report --out a new file is written")
def _report_new(world: World, tmp: Path) -> None:
    succeeded(call(report_main, ["--name", world.name, "--storage", world.storage, "--out", str(tmp / "r.html")]))
    if "<html" not in (tmp / "r.html").read_text()[:200]:
        raise Failed("no HTML written")


def _export(world: World, out: Path, *extra: str) -> Result:
    return call(export_main, ["--name", world.name, "--storage", world.storage, "--workdir", str(world.workdir),
                              "--out", str(out), "--max-members", "1", *extra])


@case("outputs", "export --out a folder of notes")
def _export_notes(world: World, tmp: Path) -> None:
    before = _notes(tmp / "notes")
    refused(_export(world, tmp / "notes"), "notes", "Choose another --out")  # --overwrite would not help
    unchanged(tmp / "notes", before)


@case("outputs", "export --out a folder of notes with --overwrite")
def _export_notes_overwrite(world: World, tmp: Path) -> None:
    before = _notes(tmp / "notes")
    refused(_export(world, tmp / "notes", "--overwrite"), "notes")
    unchanged(tmp / "notes", before)


@case("outputs", "export --out a file with --overwrite")
def _export_file(world: World, tmp: Path) -> None:
    (tmp / "f.txt").write_text("mine")
    refused(_export(world, tmp / "f.txt", "--overwrite"), "f.txt")
    if (tmp / "f.txt").read_text() != "mine":
        raise Failed("the file was replaced")


@case("outputs", "export --overwrite of a bundle holding a submission")
def _export_bundle_with_extra(world: World, tmp: Path) -> None:
    bundle = _bundle_copy(world, tmp)
    (bundle / "submission.csv").write_text("ImageID,ans\n")
    before = same_tree(bundle)
    refused(_export(world, bundle, "--overwrite"), "submission.csv")
    unchanged(bundle, before)


@case("outputs", "export --overwrite replaces its own bundle")
def _export_overwrite_own(world: World, tmp: Path) -> None:
    bundle = _bundle_copy(world, tmp)
    succeeded(_export(world, bundle, "--overwrite"))
    from search.deploy import Bundle

    Bundle.load(bundle)
    no_leftovers(tmp, "bundle")


@case("outputs", "synth --overwrite of a folder of notes")
def _synth_notes(world: World, tmp: Path) -> None:
    before = _notes(tmp / "notes")
    refused(call(synth_main, ["--out", str(tmp / "notes"), "--people", "12", "--overwrite"]), "notes")
    unchanged(tmp / "notes", before)


@case("outputs", "synth --overwrite of a plain file")
def _synth_file(world: World, tmp: Path) -> None:
    (tmp / "f.txt").write_text("mine")
    refused(call(synth_main, ["--out", str(tmp / "f.txt"), "--people", "12", "--overwrite"]), "f.txt")
    if (tmp / "f.txt").read_text() != "mine":
        raise Failed("the file was replaced")


@case("outputs", "synth --overwrite of a git checkout")
def _synth_git(world: World, tmp: Path) -> None:
    repo = tmp / "checkout"
    before = _notes(repo)
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = same_tree(repo)
    refused(call(synth_main, ["--out", str(repo), "--people", "12", "--overwrite"]), "checkout")
    unchanged(repo, before)


def _clean_study(tmp: Path) -> tuple[str, Path]:
    import numpy as np
    import optuna

    from search.storage.trialstore import TrialStore

    url = f"sqlite:///{tmp / 'c.db'}"
    study = optuna.create_study(study_name="c", storage=url, direction="maximize")
    store = TrialStore(tmp, "c")
    for score in (0.9, 0.5):
        trial = study.ask()
        store.trial_dir(trial.number).mkdir(parents=True)
        np.save(store.trial_dir(trial.number) / "val_probs.npy", np.zeros((2, 18), np.float32))
        study.tell(trial, score)
    return url, store.root


@case("outputs", "clean --yes leaves a hand-made trial_0099")
def _clean_handmade(world: World, tmp: Path) -> None:
    url, root = _clean_study(tmp)
    before = _notes(root / "trial_0099")
    r = call(clean_main, ["--name", "c", "--storage", url, "--workdir", str(tmp), "--keep-top", "1", "--yes"])
    succeeded(r)
    unchanged(root / "trial_0099", before)
    if "trial_0099" in r.out or "trial_00099" in r.out:
        raise Failed("the hand-made folder was listed as a removal")


@case("outputs", "clean without --yes deletes nothing")
def _clean_dry(world: World, tmp: Path) -> None:
    url, root = _clean_study(tmp)
    before = same_tree(root)
    succeeded(call(clean_main, ["--name", "c", "--storage", url, "--workdir", str(tmp), "--keep-top", "0"]))
    unchanged(root, before)


# ------------------------------------------------------------------------------------------------
# signals and disk full, during export, predict and report


def _export_patched(world: World, tmp: Path, obj: Any, name: str, value: Any, code: int | None, *tokens: str) -> None:
    with patched(obj, name, value):
        r = _export(world, tmp / "bundle")
    if code == 130:
        if r.exc or r.rc != 130:
            raise Failed(f"exit {r.rc}" + (f", traceback {r.exc.strip().splitlines()[-1]}" if r.exc else ""))
    else:
        refused(r, *tokens)
    no_leftovers(tmp)


def _writer() -> Any:
    import search.deploy.writer as writer

    return writer


def _atomic() -> Any:
    import search.common.atomic as atomic

    return atomic


add("signals", "Ctrl-C while the weights are copied",
    lambda w, t: _export_patched(w, t, _writer().shutil, "copyfile", interrupt, 130))
add("signals", "Ctrl-C during the ONNX step",
    lambda w, t: _export_patched(w, t, _writer(), "export_onnx", interrupt, 130))
add("signals", "Ctrl-C during the ONNX check",
    lambda w, t: _export_patched(w, t, _writer(), "check_onnx", interrupt, 130))
add("signals", "Ctrl-C while the manifest is written",
    lambda w, t: _export_patched(w, t, _atomic(), "open", lambda *a, **k: interrupt(), 130))
add("signals", "Ctrl-C at the final rename",
    lambda w, t: _export_patched(w, t, _writer(), "swap_dir", interrupt, 130))
add("disk full", "export: while the weights are copied",
    lambda w, t: _export_patched(w, t, _writer().shutil, "copyfile", enospc, 1, "No space left on device"))
add("disk full", "export: while the graph is written",
    lambda w, t: _export_patched(w, t, _writer(), "export_onnx", enospc, 1, "No space left on device"))
add("disk full", "export: while the manifest is written",
    lambda w, t: _export_patched(w, t, _atomic(), "open", FullDiskFile, 1, "No space left on device"))


@case("disk full", "predict: while the submission is written")
def _predict_full(world: World, tmp: Path) -> None:
    (tmp / "out").mkdir()
    with patched(_atomic(), "open", FullDiskFile):
        r = _predict_on(world, tmp, world.bench / "eval")
    refused(r, "No space left on device")
    no_leftovers(tmp / "out")


@case("disk full", "report: while the page is written")
def _report_full(world: World, tmp: Path) -> None:
    with patched(_atomic(), "open", FullDiskFile):
        r = call(report_main, ["--name", world.name, "--storage", world.storage, "--out", str(tmp / "r.html")])
    refused(r, "No space left on device")
    no_leftovers(tmp)


@case("signals", "SIGTERM to a predict process: no half-written submission")
def _sigterm_predict(world: World, tmp: Path) -> None:
    _signal_subprocess(world, tmp, signal.SIGTERM)


@case("signals", "SIGINT to a predict process: no half-written submission")
def _sigint_predict(world: World, tmp: Path) -> None:
    _signal_subprocess(world, tmp, signal.SIGINT)


def _signal_subprocess(world: World, tmp: Path, sig: int) -> None:
    """The signal arrives while it predicts (its progress bar is on stderr), after start-up: a
    Python killed while importing prints the interpreter's own traceback, whatever the program."""
    out = tmp / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(tmp / "stderr", "wb") as err_file:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "search.predict", "--bundle", str(world.bundle), "--data",
             str(world.bench / "eval"), "--out", str(out / "s.csv"), "--device", "cpu", "--batch-size", "1"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err_file,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and b"predicting" not in (tmp / "stderr").read_bytes():
            if time.monotonic() > deadline:
                proc.kill()
                raise Failed("no progress within 120 s")
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    err = (tmp / "stderr").read_bytes()
    if proc.returncode == 0:
        if not (out / "s.csv").is_file():
            raise Failed("exit 0 without a submission")
        return  # it finished before the signal: a whole file, which is fine
    if [p.name for p in out.iterdir()]:
        raise Failed(f"left in the output folder: {[p.name for p in out.iterdir()]}")
    if b"Traceback" in err:
        raise Failed("a traceback on the signal")


@case("signals", "kill -9 during export: the next export leaves no temporary folder")
def _kill_export(world: World, tmp: Path) -> None:
    out = tmp / "bundle"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "search.export", "--name", world.name, "--storage", world.storage, "--workdir",
         str(world.workdir), "--out", str(out), "--max-members", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not list(tmp.glob(".bundle.tmp-*/members/*")):
        if time.monotonic() > deadline:
            proc.kill()
            raise Failed("no temporary folder within 120 s")
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    if out.exists():
        return  # it finished first: nothing to clean
    succeeded(_export(world, out))
    no_leftovers(tmp, "bundle")


# ------------------------------------------------------------------------------------------------
# flags


FLAGS: dict[str, tuple[Callable[[World, Path], Result], tuple[str, ...]]] = {
    "export --weights 0=1e308,1=1e308": (
        lambda w, t: _export(w, t / "b", "--weights", "0=1e308,1=1e308"), ("--weights", "1e308")),
    "export --weights 0=-1": (lambda w, t: _export(w, t / "b", "--weights", "0=-1"), ("--weights", "0=-1")),
    "export --weights 0=nan": (lambda w, t: _export(w, t / "b", "--weights", "0=nan"), ("--weights", "0=nan")),
    "export --weights 0=x": (lambda w, t: _export(w, t / "b", "--weights", "0=x"), ("--weights", "0=x")),
    "export --weights naming no trial": (lambda w, t: _export(w, t / "b", "--weights", "99=1"), ("99",)),
    "export --weights empty": (lambda w, t: _export(w, t / "b", "--weights", ","), ("--weights",)),
    "export --opset 3": (lambda w, t: _export(w, t / "b", "--opset", "3"), ("opset",)),
    "export --vote plurality": (lambda w, t: _export(w, t / "b", "--vote", "plurality"), ("--vote",)),
    "export --decision-rule on with a hard vote": (
        lambda w, t: _export(w, t / "b", "--vote", "hard", "--decision-rule", "on"), ("--decision-rule",)),
    "predict --batch-size 0": (lambda w, t: _predict_on(w, t, w.bench / "eval", "--batch-size", "0"), ("batch",)),
    "predict --device tpu": (lambda w, t: _predict_on(w, t, w.bench / "eval", "--device", "tpu"), ("tpu",)),
    "predict --backend tensorrt": (lambda w, t: _predict_on(w, t, w.bench / "eval", "--backend", "tensorrt"),
                                   ("--backend",)),
    "run --n-trials 0": (lambda w, t: _run_study(w, t, w.study_file, "--n-trials", "0"), ("--n-trials",)),
    "run --workers 0": (lambda w, t: _run_study(w, t, w.study_file, "--workers", "0"), ("--workers",)),
    "run --timeout -1": (lambda w, t: _run_study(w, t, w.study_file, "--timeout", "-1"), ("--timeout",)),
    "clean --keep-top -1": (
        lambda w, t: call(clean_main, ["--name", w.name, "--storage", w.storage, "--keep-top", "-1"]),
        ("--keep-top",)),
    "ensemble --max-members 0": (
        lambda w, t: call(ensemble_main, ["--name", w.name, "--storage", w.storage, "--max-members", "0"]),
        ("--max-members",)),
    "synth --people 0": (lambda w, t: call(synth_main, ["--out", str(t / "s"), "--people", "0"]), ("people",)),
    "synth --size 0x0": (lambda w, t: call(synth_main, ["--out", str(t / "s"), "--size", "0x0"]), ("size",)),
}
for _name, (_run, _tokens) in FLAGS.items():
    add("flags", _name, lambda w, t, run=_run, tokens=_tokens: refused(run(w, t), *tokens))


@case("flags", "a run whose budget is full starts no trial")
def _full_budget(world: World, tmp: Path) -> None:
    import optuna

    db = tmp / "studies.db"
    shutil.copyfile(Path(world.storage.removeprefix("sqlite:///")), db)
    url = f"sqlite:///{db}"
    study = optuna.load_study(study_name=world.name, storage=url)
    finished = sum(t.state.is_finished() and t.state.name != "FAIL" for t in study.trials)
    study.ask()  # another worker's trial
    before = len(study.trials)
    r = call(run_main, ["--study", str(world.study_file), "--name", world.name, "--data", str(world.bench),
                        "--storage", url, "--workdir", str(world.workdir), "--device", "cpu",
                        "--n-trials", str(finished + 1)])
    succeeded(r)
    if len(study.trials) != before:
        raise Failed(f"{len(study.trials) - before} trial(s) recorded: {study.trials[-1].state.name}")


# ------------------------------------------------------------------------------------------------
# the world, and the run


def build_world(root: Path) -> World:
    """The bench, the finished one-epoch study and its bundle under ``root`` (reused when there)."""
    from search.benches.synth import generate

    root.mkdir(parents=True, exist_ok=True)
    bench = root / "bench"
    if not (bench / "bench.json").is_file():
        shutil.rmtree(bench, ignore_errors=True)
        generate(bench, people=24, size=(48, 64), seed=0, n_eval_people=6, progress=False)
    study_file = root / "attacks.toml"
    text = (REPO / "studies" / "smoke.toml").read_text()
    for old, new in (("n_trials = 8", "n_trials = 2"), ("epochs = 3", "epochs = 1"), ("patience = 3", "patience = 1")):
        text = text.replace(old, new)
    study_file.write_text(text)
    workdir, bundle = root / "runs", root / "bundle"
    storage = f"sqlite:///{workdir / 'studies.db'}"
    if not (bundle / "manifest.json").is_file():
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
        r = call(run_main, ["--study", str(study_file), "--data", str(bench), "--workdir", str(workdir),
                            "--storage", storage, "--device", "cpu"])
        succeeded(r)
        succeeded(call(export_main, ["--name", "attacks", "--storage", storage, "--workdir", str(workdir),
                                     "--out", str(bundle), "--max-members", "2"]))
    return World(root, bench, study_file, storage, workdir, "attacks", bundle)


def run_cases(world: World, cases: Sequence[Case], scratch: Path) -> list[dict[str, Any]]:
    rows = []
    for i, c in enumerate(cases):
        tmp = scratch / f"case{i:03d}"
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        try:
            c.run(world, tmp)
            outcome, detail = "held", ""
        except Failed as exc:
            outcome, detail = "failed", str(exc)
        except BaseException as exc:  # noqa: BLE001 (a broken case is reported, the run goes on)
            outcome, detail = "failed", f"the case itself raised {type(exc).__name__}: {str(exc)[:200]}"
        rows.append({"group": c.group, "case": c.name, "outcome": outcome, "detail": detail,
                     "seconds": round(time.perf_counter() - start, 2)})
        log.info("%-6s %s: %s %s", outcome, c.group, c.name, detail)
    return rows


def select(cases: Sequence[Case], only: Sequence[str]) -> list[Case]:
    if not only:
        return list(cases)
    return [c for c in cases if any(o.lower() in c.group.lower() or o.lower() in c.name.lower() for o in only)]


def main(argv: Sequence[str] | None = None) -> int:
    p = base_parser("attacks", __doc__ or "")
    p.add_argument("--only", nargs="*", default=[], help="run the cases whose group or name holds one of these")
    p.add_argument("--work-root", type=Path, default=RUNS_DIR / "attacks",
                   help="where the shared bench, study and bundle live (reused), default runs/benchmarks/attacks")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cases = select(CASES, args.only)
    if args.list:
        for c in cases:
            print(f"{c.group}: {c.name}")
        return 0
    start = time.perf_counter()
    world = build_world(args.work_root)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="attacks-") as scratch:
        # the verbs configure logging for themselves; keep their lines out of the terminal
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.CRITICAL)
        try:
            rows = run_cases(world, cases, Path(scratch))
        finally:
            for handler in logging.getLogger().handlers:
                handler.setLevel(logging.NOTSET)
    held = sum(r["outcome"] == "held" for r in rows)
    groups = sorted({r["group"] for r in rows})
    summary = [[g, sum(r["group"] == g for r in rows), sum(r["group"] == g and r["outcome"] == "held" for r in rows)]
               for g in groups]
    print(table(["case", "group", "outcome", "detail"],
                [[r["case"], r["group"], r["outcome"], r["detail"][:90]] for r in rows]))
    print()
    print(table(["group", "cases", "held"], [*summary, ["all", len(rows), held]]))
    wall = time.perf_counter() - start
    print(f"\n{held} of {len(rows)} cases held; {wall:.0f} s ({built:.0f} s building the shared study and bundle)")
    info = machine("cpu")
    print(describe_machine(info))
    save_result(
        "attacks",
        inputs={"cases": len(rows), "only": args.only, "work_root": args.work_root},
        figures={"held": held, "failed": len(rows) - held, "seconds": round(wall, 1),
                 "groups": {g: {"cases": n, "held": h} for g, n, h in summary}, "cases": rows},
        machine_info=info,
        notes=["each case: one verb run in-process against a fresh copy of what it attacks; held = the expected "
               "refusal (non-zero exit, one line naming the file/flag/value, no traceback, no password, nothing "
               "deleted or half written) or the correct result"],
        results_dir=args.results_dir,
    )
    return 0 if held == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
