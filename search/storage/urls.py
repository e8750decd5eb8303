"""Storage URLs: their parts, and the same URL without its password (the forms a study may live
in, and what each accepts, are the registry search.storage.forms).

libpq takes a password in the user part (``user:pw@``, ``:pw@``) and as a query parameter
(``?password=pw``, among others, its key or value percent-encoded). :func:`redact` leaves it
out entirely, so a printed URL still works when the password comes from ``~/.pgpass`` or
``PGPASSWORD``; :func:`url_secrets` lists it as written and decoded, for scrubbing free text.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

PASSWORD_NOTE = "the password is left out of printed URLs: put it in ~/.pgpass or export PGPASSWORD"
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)


class StorageUrlError(ValueError):
    """A storage URL that cannot be used; the message names it (redacted) and the accepted forms."""


def split_url(url: str) -> tuple[str, str, str, str, str] | None:
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
    parts = split_url(url)
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
    parts = split_url(url)
    if parts is None:
        return url
    scheme, userinfo, hostpath, query, fragment = parts
    user = userinfo.partition(":")[0]
    kept = [item for item in query.split("&") if item and not _is_password_key(item)]
    return (f"{scheme}://{user + '@' if user else ''}{hostpath}"
            f"{'?' + '&'.join(kept) if kept else ''}{fragment}")


def has_password(url: str) -> bool:
    return bool(url_secrets(url))
