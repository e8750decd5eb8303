"""Storage URLs: which forms are accepted, and the same URL without its password.

    sqlite:///path/to/studies.db        a file (not ``sqlite:///`` or ``:memory:``: nothing would be saved)
    journal:///path/to/study.journal    Optuna's journal file
    postgresql://user@host[:port]/db    PostgreSQL (``postgresql+psycopg://`` etc. too)

libpq takes a password in the user part (``user:pw@``, ``:pw@``) and as a query parameter
(``?password=pw``, among others, its key or value percent-encoded). :func:`redact` leaves it
out entirely, so a printed URL still works when the password comes from ``~/.pgpass`` or
``PGPASSWORD``; :func:`url_secrets` lists it as written and decoded, for scrubbing free text.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ACCEPTED = (
    "sqlite:///path/to/studies.db, journal:///path/to/study.journal or "
    "postgresql://user@host[:port]/database (password in ~/.pgpass or PGPASSWORD)"
)
PASSWORD_NOTE = "the password is left out of printed URLs: put it in ~/.pgpass or export PGPASSWORD"
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_POSTGRES = re.compile(r"^postgresql(\+[a-z0-9_]+)?$")


class StorageUrlError(ValueError):
    """A storage URL that cannot be used; the message names it (redacted) and the accepted forms."""


def _split(url: str) -> tuple[str, str, str, str, str] | None:
    """``(scheme, userinfo, hostpath, query, fragment)`` of a ``scheme://`` URL, else None."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = match["rest"]
    rest, hash_, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    return match["scheme"], userinfo if at else "", host + slash + path, query, hash_ + fragment


def _is_password_key(item: str) -> bool:
    return unquote(item.partition("=")[0]).strip() == "password"


def url_secrets(url: str) -> list[str]:
    """Every password in ``url``, as written and URL-decoded, longest first (empty when none)."""
    parts = _split(url)
    if parts is None:
        return []
    _, userinfo, _, query, _ = parts
    found = []
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [item.partition("=")[2] for item in query.split("&") if _is_password_key(item)]
    secrets = {s for raw in found if raw for s in (raw, unquote(raw))}
    return sorted(secrets, key=len, reverse=True)


def redact(url: str) -> str:
    """``url`` with any password left out (user part and query), safe to print and still usable."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, userinfo, hostpath, query, fragment = parts
    user = userinfo.partition(":")[0]
    kept = [item for item in query.split("&") if item and not _is_password_key(item)]
    return (f"{scheme}://{user + '@' if user else ''}{hostpath}"
            f"{'?' + '&'.join(kept) if kept else ''}{fragment}")


def has_password(url: str) -> bool:
    return bool(url_secrets(url))


def check_storage_url(url: str) -> None:
    """Raise StorageUrlError for a URL the harness cannot store a study in."""
    problem = _problem(url)
    if problem:
        raise StorageUrlError(f"storage {redact(url)!r} {problem}; use {ACCEPTED}.")


def _problem(url: str) -> str | None:
    parts = _split(url)
    if parts is None:
        return "is not a URL"
    scheme = parts[0].lower()
    rest = url[len(parts[0]) + 3:]
    if scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        if not rest.startswith("/"):
            return "needs three slashes and a file path (sqlite:///path)"
        return _file_problem(rest[1:], "an SQLite")
    if scheme == "journal":  # journal:///absolute.journal, journal://relative.journal (as open_storage reads it)
        return _file_problem(rest, "a journal")
    if _POSTGRES.match(scheme):
        return _port_problem(parts[2].partition("/")[0])
    return f"has the scheme {parts[0]}://, which this harness does not use"


def _file_problem(path: str, what: str) -> str | None:
    if what == "an SQLite" and (not path or path.startswith(":memory:")):
        return f"is an in-memory database: nothing would be saved; name {what} file"
    if not path or path == "/":
        return f"names no file; name {what} file"
    if Path(path).is_dir():
        return f"names the folder {path}; name {what} file inside it"
    return None


def _port_problem(host: str) -> str | None:
    port = host.rpartition("]")[2] if host.startswith("[") else host
    if ":" not in port:
        return None
    text = port.rpartition(":")[2]
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        return f"has the port {text!r}; a port is a number from 1 to 65535"
    return None
