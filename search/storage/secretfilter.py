"""Keeping a storage URL's password out of everything a process writes: log lines (its own and
those of SQLAlchemy or psycopg), warnings and uncaught tracebacks."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType

from search.storage.urls import url_secrets

# a URL's password in free text (log lines, tracebacks), where a URL ends at whitespace:
# user:pw@ or :pw@ (left out, as redact does), and password=pw among query parameters
_PASSWORD_IN_TEXT = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_QUERY_PASSWORD_IN_TEXT = re.compile(r"(?P<sep>[?&])(?:password|%70assword)=[^&\s'\"]*&?", re.IGNORECASE)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and blanks the given secrets in everything it writes,
    including tracebacks and messages from libraries (SQLAlchemy, psycopg2)."""

    def __init__(self, inner: logging.Formatter | None, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record), self.secrets)


MIN_SCRUBBED = 4  # shorter passwords are only hidden inside URLs: blanking every "ab" helps nobody


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with URL passwords redacted, and the given secrets blanked wherever they appear."""
    text = _PASSWORD_IN_TEXT.sub(_without_password, text)
    text = _QUERY_PASSWORD_IN_TEXT.sub(lambda m: m["sep"] if m[0].endswith("&") else "", text)
    for secret in secrets:
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, "***")
    return text


def _without_password(match: re.Match[str]) -> str:
    return f"{match['head']}{match['user'] + '@' if match['user'] else ''}"


def hide_secrets(url: str) -> None:
    """Keep the password of ``url`` out of this process's logs, warnings and uncaught tracebacks.

    Call after logging is configured. Idempotent; a URL without a password changes nothing.
    """
    secrets = url_secrets(url)
    if not secrets:
        return
    logging.captureWarnings(True)  # warnings then pass through the redacting handlers
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            current = handler.formatter
            if isinstance(current, RedactingFormatter):
                current.secrets = sorted(set(current.secrets) | set(secrets), key=len, reverse=True)
            else:
                handler.setFormatter(RedactingFormatter(current, secrets))

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(scrub("".join(traceback.format_exception(kind, exc, tb)), secrets))

    sys.excepthook = excepthook
