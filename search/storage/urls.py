"""Storage URLs: their parts, and the same URL without its password (the forms a study may live
in, and what each accepts, are the registry search.storage.forms).

libpq takes a password in the user part (``user:pw@``, ``:pw@``) and as a query parameter
(``?password=pw``, among others, its key or value percent-encoded). :func:`redact` leaves it
out entirely, so a printed URL still works when the password comes from ``~/.pgpass`` or
``PGPASSWORD``; :func:`url_secrets` lists it as written and decoded, for scrubbing free text.

A URL is read one way only: one that could be read two ways (an unescaped ``@``, ``/``, ``?``,
``#`` or ``&`` in a password, one slash after the scheme, an IPv6 host without its ``]``) is
never printed, not even in part: :func:`redact` then shows at most a scheme from a fixed list,
and ``search.storage.forms.check_storage_url`` refuses it naming what to percent-encode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

PASSWORD_NOTE = "the password is left out of printed URLs: put it in ~/.pgpass or export PGPASSWORD"
NOT_SHOWN = "<URL not shown>"
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
# the only text an unreadable URL may show: a scheme from this fixed list, never a user's text
_KNOWN_SCHEME = re.compile(
    r"^(sqlite|journal|grpc|postgres(?:ql)?(?:\+(?:psycopg2?|asyncpg|pg8000))?"
    r"|mysql(?:\+(?:pymysql|mysqldb))?)(?=:)",
    re.IGNORECASE,
)
_FILE_SCHEMES = ("sqlite", "journal")  # a file path follows the scheme, not user@host
_QUERY_KEY = re.compile(r"^[A-Za-z0-9_.%-]+$")
_PASSWORD_KEYS = ("password", "sslpassword")
_ENCODE = "percent-encode it (@ as %40, / as %2F, ? as %3F, # as %23, & as %26, : as %3A)"


class StorageUrlError(ValueError):
    """A storage URL that cannot be used; the message names it (redacted) and the accepted forms."""


@dataclass(frozen=True)
class UrlParts:
    scheme: str
    userinfo: str  # "" when none
    host: str  # host[:port], as written
    path: str  # from the first "/" on, without the query
    query: str


def split_url(url: str) -> UrlParts | str:
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
    if port and not at and not is_port(port):
        return (f"has a port that is not a number from 1 to 65535 and no @ (is it user:password "
                f"without @host?); {_ENCODE}")
    path, _, query = tail.partition("?")
    if "?" in query:
        return f"has more than one ? (is it a password holding one?); {_ENCODE}"
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        if item and not (eq and _QUERY_KEY.match(key)):
            return f"has a query item that is not key=value (is it a password holding an &?); {_ENCODE}"
    return UrlParts(scheme, userinfo, host, path, query)


def is_password_key(item: str) -> bool:
    return unquote(item.partition("=")[0]).strip().lower() in _PASSWORD_KEYS


def is_port(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,5}", text) is not None and 1 <= int(text) <= 65535


def port_text(host: str) -> str:
    return host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else host.partition(":")[2]


def url_secrets(url: str) -> list[str]:
    """Every password in ``url``, as written and URL-decoded, longest first (empty when none).

    Of a URL that reads two ways, every piece that could be the password counts (the text
    from the first : to the last @, each piece after a : or =, before an @, or in the query).
    """
    parts = split_url(url)
    if isinstance(parts, str):
        found = _loose_secrets(url)
    else:
        found = [parts.userinfo.partition(":")[2]] if ":" in parts.userinfo else []
        found += [item.partition("=")[2] for item in parts.query.split("&") if is_password_key(item)]
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
    parts = split_url(url)
    if isinstance(parts, str):
        known = _KNOWN_SCHEME.match(url)
        return f"{known[1]}:{NOT_SHOWN}" if known else NOT_SHOWN
    user = parts.userinfo.partition(":")[0]
    kept = [item for item in parts.query.split("&") if item and not is_password_key(item)]
    return (f"{parts.scheme}://{user + '@' if user else ''}{parts.host}{parts.path}"
            f"{'?' + '&'.join(kept) if kept else ''}")


def has_password(url: str) -> bool:
    return bool(url_secrets(url))


def file_path(url: str) -> str:
    """The file of a ``sqlite:///`` or ``journal://`` URL, without its query."""
    rest = url.partition("://")[2]
    return rest.partition("?")[0] if url.lower().startswith("sqlite") else rest
