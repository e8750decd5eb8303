"""Storage URLs: which forms are accepted, and the same URL without its password.

    sqlite:///path/to/studies.db        a file (not ``sqlite:///`` or ``:memory:``: nothing would be saved)
    journal:///path/to/study.journal    Optuna's journal file
    postgresql://user@host[:port]/db    PostgreSQL (``postgresql+psycopg://`` etc. too)

libpq takes a password in the user part (``user:pw@``, ``:pw@``) and as a query parameter
(``?password=pw``, among others, its key or value percent-encoded). :func:`redact` leaves it
out entirely, so a printed URL still works when the password comes from ``~/.pgpass`` or
``PGPASSWORD``; :func:`url_secrets` lists it as written and decoded, for scrubbing free text.

A URL is read one way only: one that could be read two ways (an unescaped ``@``, ``/``, ``?``,
``#`` or ``&`` in a password, one slash after the scheme, an IPv6 host without its ``]``) is
never printed, not even in part: :func:`redact` then shows at most a scheme from a fixed list,
and :func:`check_storage_url` refuses it naming what to percent-encode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

ACCEPTED = (
    "sqlite:///path/to/studies.db, journal:///path/to/study.journal or "
    "postgresql://user@host:port/database (password in ~/.pgpass or PGPASSWORD)"
)
PASSWORD_NOTE = "the password is left out of printed URLs: put it in ~/.pgpass or export PGPASSWORD"
NOT_SHOWN = "<URL not shown>"
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_POSTGRES = re.compile(r"^postgresql(\+[a-z0-9_]+)?$")
# the only text an unreadable URL may show: a scheme from this fixed list, never a user's text
_KNOWN_SCHEME = re.compile(
    r"^(sqlite|journal|postgres(?:ql)?(?:\+(?:psycopg2?|asyncpg|pg8000))?|mysql(?:\+(?:pymysql|mysqldb))?)"
    r"(?=:)",
    re.IGNORECASE,
)
_FILE_SCHEMES = ("sqlite", "journal")
_QUERY_KEY = re.compile(r"^[A-Za-z0-9_.%-]+$")
_PASSWORD_KEYS = ("password", "sslpassword")
_ENCODE = "percent-encode it (@ as %40, / as %2F, ? as %3F, # as %23, & as %26, : as %3A)"


class StorageUrlError(ValueError):
    """A storage URL that cannot be used; the message names it (redacted) and the accepted forms."""


@dataclass(frozen=True)
class _Parts:
    scheme: str
    userinfo: str  # "" when none
    host: str  # host[:port], as written
    path: str  # from the first "/" on, without the query
    query: str


def _split(url: str) -> _Parts | str:
    """The parts of ``url`` when it reads one way only, else why not (a fixed sentence, no user text)."""
    match = _SCHEME.match(url)
    if match is None:
        known = _KNOWN_SCHEME.match(url)
        if known and url[known.end():].startswith(":/"):
            return f"has one slash after the scheme {known[1]}, where {known[1]}:// is needed"
        if known:
            return f"has no // after the scheme {known[1]}, where {known[1]}:// is needed"
        return "is not a URL of the form scheme://..."
    scheme, rest = match["scheme"], match["rest"]
    file_scheme = scheme.lower() in _FILE_SCHEMES
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "#" in tail and not file_scheme:
        return f"has a # in its user, password or path; {_ENCODE}"
    if "@" in tail and not (file_scheme and authority == ""):
        return f"has an @ after a /, ? or # (is it a password holding one of those?); {_ENCODE}"
    if ":" in tail.partition("?")[0] and not tail.startswith("/:memory:"):
        if file_scheme:
            return "has a : in its file path (user:password?), but an SQLite or journal file has no password"
        return f"has a : in its database path (is it user:password after a / too many?); {_ENCODE}"
    if authority.count("@") > 1:
        return f"has more than one @ (is it a password holding one?); {_ENCODE}"
    userinfo, at, host = authority.rpartition("@")
    if host.startswith("["):
        close = host.find("]")
        if close < 0:
            return "has an IPv6 host without its closing ]: write [address]:port"
        port = host[close + 1:]
        if port and not port.startswith(":"):
            return "has text after its IPv6 host's ]: write [address]:port"
        port = port[1:]
    elif "[" in host or "]" in host or host.count(":") > 1:
        return "has a host with several : or a stray [ or ]: write host:port, or [address]:port for IPv6"
    else:
        port = host.partition(":")[2]
    if port and not at and not _is_port(port):
        return (f"has a port that is not a number from 1 to 65535 and no @ (is it user:password "
                f"without @host?); {_ENCODE}")
    path, _, query = tail.partition("?")
    if "?" in query:
        return f"has more than one ? (is it a password holding one?); {_ENCODE}"
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        if item and not (eq and _QUERY_KEY.match(key)):
            return f"has a query item that is not key=value (is it a password holding an &?); {_ENCODE}"
    return _Parts(scheme, userinfo, host, path, query)


def _is_password_key(item: str) -> bool:
    return unquote(item.partition("=")[0]).strip().lower() in _PASSWORD_KEYS


def _is_port(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,5}", text) is not None and 1 <= int(text) <= 65535


def _port_text(host: str) -> str:
    return host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else host.partition(":")[2]


def url_secrets(url: str) -> list[str]:
    """Every password in ``url``, as written and URL-decoded, longest first (empty when none).

    Of a URL that reads two ways, every piece that could be the password counts (the text
    from the first : to the last @, each piece after a : or =, before an @, or in the query).
    """
    parts = _split(url)
    if isinstance(parts, str):
        found = _loose_secrets(url)
    else:
        found = [parts.userinfo.partition(":")[2]] if ":" in parts.userinfo else []
        found += [item.partition("=")[2] for item in parts.query.split("&") if _is_password_key(item)]
    secrets = {s for raw in found if raw for s in (raw, unquote(raw))}
    return sorted(secrets, key=len, reverse=True)


def _loose_secrets(url: str) -> list[str]:
    """What could be a password in a URL that reads two ways: the text from the first : after the
    scheme to the last @, every piece after a : or =, before an @, or in the query."""
    known = _KNOWN_SCHEME.match(url)
    rest = (url[known.end() + 1:] if known else url).lstrip("/")
    found = [rest]
    if "@" in rest and ":" in rest[:rest.rindex("@")]:
        found.append(rest[rest.index(":") + 1:rest.rindex("@")])
    tokens = re.split(r"([:/@?&=#\[\]]+)", rest)
    in_query = False
    for i in range(0, len(tokens), 2):
        before, after = tokens[i - 1] if i else "", tokens[i + 1] if i + 1 < len(tokens) else ""
        in_query = in_query or "?" in before
        if in_query or before.endswith((":", "=")) or after.startswith("@"):
            found.append(tokens[i])
    return found


def redact(url: str) -> str:
    """``url`` with any password left out (user part and query), safe to print and still usable.

    A URL that reads two ways is not shown at all: only a scheme from a fixed list, then
    ``<URL not shown>``.
    """
    parts = _split(url)
    if isinstance(parts, str):
        known = _KNOWN_SCHEME.match(url)
        return f"{known[1]}:{NOT_SHOWN}" if known else NOT_SHOWN
    user = parts.userinfo.partition(":")[0]
    kept = [item for item in parts.query.split("&") if item and not _is_password_key(item)]
    return (f"{parts.scheme}://{user + '@' if user else ''}{parts.host}{parts.path}"
            f"{'?' + '&'.join(kept) if kept else ''}")


def has_password(url: str) -> bool:
    return bool(url_secrets(url))


def check_storage_url(url: str) -> None:
    """Raise StorageUrlError for a URL the harness cannot store a study in."""
    problem = _problem(url)
    if problem:
        raise StorageUrlError(f"storage {redact(url)!r} {problem}; use {ACCEPTED}.")


def file_path(url: str) -> str:
    """The file of a ``sqlite:///`` or ``journal://`` URL, without its query."""
    rest = url.partition("://")[2]
    return rest.partition("?")[0] if url.lower().startswith("sqlite") else rest


def _problem(url: str) -> str | None:
    parts = _split(url)
    if isinstance(parts, str):
        return parts
    scheme = parts.scheme.lower()
    rest = url[len(parts.scheme) + 3:]
    if scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        if not rest.startswith("/"):
            return "needs three slashes and a file path (sqlite:///path)"
        if any(_is_password_key(item) for item in parts.query.split("&")):
            return "has a ?password=, but an SQLite file has none: leave it out"
        return _file_problem(file_path(url)[1:], "an SQLite")
    if scheme == "journal":  # journal:///absolute.journal, journal://relative.journal (as open_storage reads it)
        if "?" in rest:
            return "has a ?query, but a journal is a plain file: leave it out"
        return _file_problem(rest, "a journal")
    if _POSTGRES.match(scheme):
        return _port_problem(parts.host)
    return f"has the scheme {parts.scheme}://, which this harness does not use"


def _file_problem(path: str, what: str) -> str | None:
    if what == "an SQLite" and (not path or path.startswith(":memory:")):
        return f"is an in-memory database: nothing would be saved; name {what} file"
    if not path or path == "/":
        return f"names no file; name {what} file"
    if Path(path).is_dir():
        return f"names the folder {path}; name {what} file inside it"
    return None


def _port_problem(host: str) -> str | None:
    text = _port_text(host)
    if text and not _is_port(text):
        return f"has the port {text!r}; a port is a number from 1 to 65535"
    return None
