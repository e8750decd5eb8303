"""Storage URLs: refused with one line naming them and the accepted forms; passwords never printed."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.engine.options import RunOptions, plan_run
from search.run import main
from search.storage.backends import dashboard_command, open_storage, redact, url_secrets
from search.storage.forms import check_storage_url
from search.storage.secretfilter import scrub
from search.storage.urls import NOT_SHOWN, StorageUrlError

ACCEPTED = "sqlite:///path/to/studies.db, journal:///path/to/study.journal, postgresql://"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
        ("mysql://automl:PW@db/automl", "scheme mysql://"),
        ("http://db.example/studies", "scheme http://"),
        ("postgresql://automl@db:54x2/automl", "port '54x2'"),
        ("postgresql://automl@db:70000/automl", "port '70000'"),
    ],
)
def test_unusable_storage_urls_are_refused_naming_the_accepted_forms(url: str, problem: str) -> None:
    with pytest.raises(StorageUrlError) as info:
        open_storage(url)
    message = str(info.value)
    assert problem in message and ACCEPTED in message and "\n" not in message
    assert "PW" not in message


def test_a_journal_url_naming_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageUrlError, match=f"names the folder {tmp_path}; name a journal file"):
        open_storage(f"journal://{tmp_path}")


@pytest.mark.parametrize(
    "storage", ["sqlite:///", "mysql://automl@db/automl", "postgresql://automl@db:port/automl"]
)
def test_search_run_refuses_a_bad_storage_in_one_line_before_anything_runs(
    tmp_path: Path, storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    code = main(["--study", "smoke", "--storage", storage, "--workdir", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and ACCEPTED in errors[0].getMessage() and not errors[0].exc_info
    assert not (tmp_path / "runs").exists(), "nothing was read or written"


def test_a_workdir_that_is_a_file_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "runs"
    file.write_text("not a folder")
    assert main(["--study", "smoke", "--workdir", str(file), "--device", "cpu"]) == 2
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "--workdir is a file, not a folder; pass a folder" in error.getMessage() and not error.exc_info


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("postgresql://automl:s3cr%40t@db:5432/studies", "postgresql://automl@db:5432/studies", ["s3cr%40t", "s3cr@t"]),
        ("postgresql://:Secret1@db/studies", "postgresql://db/studies", ["Secret1"]),
        ("postgresql://automl@db/studies?password=Secret1", "postgresql://automl@db/studies", ["Secret1"]),
        ("postgresql://automl@db/studies?sslmode=require&password=Secret%31&connect_timeout=5",
         "postgresql://automl@db/studies?sslmode=require&connect_timeout=5", ["Secret%31", "Secret1"]),
        ("postgresql://automl@db/studies?%70assword=Secret1", "postgresql://automl@db/studies", ["Secret1"]),
    ],
)
def test_every_libpq_password_form_is_left_out(url: str, shown: str, secrets: list[str]) -> None:
    assert redact(url) == shown
    assert url_secrets(url) == secrets
    assert "***" not in redact(url), "the printed URL still works, with the password from ~/.pgpass"
    for secret in secrets:
        assert secret not in scrub(f"could not connect to {url} (oops)", [])


def test_next_commands_are_quoted_and_work_without_the_password(tmp_path: Path) -> None:
    from search.engine.runstudy import next_commands

    workdir = tmp_path / "my runs"
    url = "postgresql://automl@db/studies?password=Secret1"
    lines = next_commands(plan_run(RunOptions(study="smoke", name="my study", storage=url, workdir=workdir)))
    text = "\n".join(lines)
    assert "Secret1" not in text and "***" not in text
    assert "~/.pgpass" in text and "PGPASSWORD" in text
    report = next(line for line in lines if "search.report" in line).split(":", 1)[1]
    assert shlex.split(report)[3:] == ["--name", "my study", "--storage", "postgresql://automl@db/studies",
                                       "--workdir", str(workdir)]
    export = next(line for line in lines if "search.export" in line)
    assert shlex.split(export.split(":", 1)[1])[-1] == "exports/my study"
    dashboard = shlex.split(dashboard_command(f"sqlite:///{workdir}/studies.db", workdir))
    assert dashboard[1] == f"sqlite:///{workdir}/studies.db" and dashboard[3] == f"{workdir}/artifacts"


def test_a_url_without_a_password_gets_no_note(tmp_path: Path) -> None:
    from search.engine.runstudy import next_commands

    lines = next_commands(plan_run(RunOptions(study="smoke", storage=f"sqlite:///{tmp_path}/s.db", workdir=tmp_path)))
    assert not any("PGPASSWORD" in line for line in lines)
    check_storage_url(f"sqlite:///{tmp_path}/s.db")  # accepted


# --- one redaction that cannot leak: generated URLs, well-formed or not, the secret in every place a
# password can go; it holds a head and a tail no other part can, around any character a user types
HEAD, TAIL = "S3cR", "tX9Z"
LOWER = "abcdefghijklmnopqrstuvwxyz"
POSITIONS = {
    "user:pw@": lambda u, s, h: (f"{u}:{s}@{h}", ""),
    ":pw@": lambda u, s, h: (f":{s}@{h}", ""),
    # (with an @ in it, what follows is the host: the URL reads one way, and is printed so)
    "user:pw, no @host": lambda u, s, h: (f"{u}:{s.replace('@', '')}", ""),
    "?password=": lambda u, s, h: (f"{u}@{h}", f"password={s}"),
    "?%70assword=": lambda u, s, h: (f"{u}@{h}", f"%70assword={s}"),
    "&password=&": lambda u, s, h: (h, f"sslmode=require&password={s}&connect_timeout=5"),
}
SCHEMES = ["postgresql", "postgresql+psycopg", "postgres", "sqlite", "journal", "mysql", "grpc", "Postgresql",
           "pg"]
SEPARATORS = ["://", ":/", ":", ":///", "//", ""]
HOSTS = ["db", "db:5432", "[::1]:5432", "[::1", "::1", "[::1]x", "db:port"]


def _url(draw: st.DrawFn, secret_chars: str, schemes: list[str] = SCHEMES) -> tuple[str, str]:
    secret = HEAD + draw(st.text(alphabet=secret_chars, max_size=6)) + TAIL
    user = draw(st.text(alphabet=LOWER, min_size=1, max_size=5))
    place = POSITIONS[draw(st.sampled_from(sorted(POSITIONS)))]
    authority, query = place(user, secret, draw(st.sampled_from(HOSTS)))
    path = "/" + draw(st.text(alphabet=LOWER, max_size=5))
    url = draw(st.sampled_from(schemes)) + draw(st.sampled_from(SEPARATORS)) + authority + path
    return url + (f"?{query}" if query else ""), secret


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    return _url(draw, LOWER + "ABC0123456789@/?#&:%[]= !$'\"<>")


@st.composite
def planted_in_free_text(draw: st.DrawFn) -> tuple[str, str]:
    # in free text a URL ends at a space or quote, and "pg:a:pw/" is no URL to tell from "12:30:05/"
    return _url(draw, LOWER + "ABC0123456789@/?#&:%[]=!$", [s for s in SCHEMES if s != "pg"])


def _shows_no_part(text: str) -> bool:
    return HEAD not in text and TAIL not in text


@settings(max_examples=400, deadline=None)
@given(planted())
def test_no_message_shows_a_password_wherever_it_is_planted(case: tuple[str, str]) -> None:
    from search.storage.backends import storage_error

    url, _ = case
    shown = [redact(url), scrub(f"could not connect to {url} (oops)", url_secrets(url)),
             storage_error(url, RuntimeError(f"driver: cannot parse '{url}'"))]
    try:
        check_storage_url(url)
    except StorageUrlError as exc:
        shown.append(str(exc))
    for text in shown:
        assert _shows_no_part(text), (url, text)


@settings(max_examples=300, deadline=None)
@given(planted_in_free_text())
def test_a_library_message_naming_an_unknown_url_shows_no_password(case: tuple[str, str]) -> None:
    url, _ = case
    assert _shows_no_part(scrub(f"sqlalchemy: could not parse URL from string {url}, giving up", []))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_url_that_does_not_parse_is_never_printed(url: str) -> None:
    """Whatever the text, redact prints it read one way (scheme://...), or only a fixed scheme."""
    shown = redact(url)
    assert shown.startswith(tuple(f"{s}://" for s in ("",))) or "://" in shown or shown.endswith(NOT_SHOWN)
    if shown.endswith(NOT_SHOWN):
        assert shown.removesuffix(NOT_SHOWN).rstrip(":").lower() in {"", *(s.lower() for s in SCHEMES)}, shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql:/automl:Hunter2pw@db/studies", "one slash after the scheme postgresql"),
        ("postgresql://automl:Hun@ter2pw@db/studies", "more than one @"),
        ("postgresql://automl:Hun/ter2pw@db/studies", "an @ after a /"),
        ("postgresql://automl:Hunter2pw@[::1/studies", "IPv6 host without its closing ]"),
        ("postgresql://automl@db/studies?password=Hun&ter2pw", "not key=value"),
        ("sqlite:////tmp/studies.db?password=Hunter2pw", "an SQLite file has none"),
        ("journal:////tmp/study.journal?password=Hunter2pw", "a journal is a plain file"),
    ],
)
def test_a_url_that_reads_two_ways_is_refused_naming_the_fix_not_the_password(url: str, problem: str) -> None:
    with pytest.raises(StorageUrlError) as info:
        check_storage_url(url)
    message = str(info.value)
    assert problem in message and "\n" not in message
    assert "Hunter" not in message and "ter2pw" not in message


def test_an_sqlite_password_query_names_no_file_on_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/studies.db?password=Hunter2pw"
    with pytest.raises(StorageUrlError):
        open_storage(url)
    assert not any("Hunter" in p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("verb", ["run", "report"])
def test_run_and_report_refuse_a_two_way_url_in_one_line_without_the_password(
    verb: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from search import report

    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)
    url = "postgresql:/automl:Hunter2pw@db/studies"
    try:
        if verb == "run":
            code = main(["--study", "smoke", "--storage", url, "--workdir", str(tmp_path), "--device", "cpu",
                         "-v"])
        else:
            code = report.main(["--name", "smoke", "--storage", url, "--workdir", str(tmp_path)])
    finally:
        logging.captureWarnings(False)  # run's hide_secrets turned it on
    shown = caplog.text + "".join(capsys.readouterr())
    assert code == 2 and "one slash after the scheme postgresql" in shown
    assert "Hunter" not in shown and "2pw" not in shown
