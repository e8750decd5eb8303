"""Keeping a storage URL's password out of everything a process writes: log lines (its own and
those of SQLAlchemy or psycopg), warnings and uncaught tracebacks."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType

from search.storage.urls import NOT_SHOWN, redact, url_secrets

# a URL in free text (log lines, tracebacks) ends at whitespace, a quote or an angle bracket; a
# token that looks like one (scheme:/..., user:...@..., a storage scheme and a colon, anything
# with password=) is printed the way redact prints it
_URL_IN_TEXT = re.compile(
    r"(?:[a-zA-Z][a-zA-Z0-9+.-]*:/|[^\s'\"<>]*:[^\s'\"<>]*@"
    r"|(?:postgres|sqlite|journal|mysql|grpc)[a-z0-9+]*[:/]"
    r"|[^\s'\"<>]*(?:password|%70assword)=)[^\s'\"<>]*",
    re.IGNORECASE,
)


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
    """``text`` with every URL in it as :func:`search.storage.urls.redact` prints it (no password; not
    shown at all when it reads two ways), and the given secrets blanked wherever they appear."""
    for secret in secrets:  # first: a URL token ends at a quote or space that a password may hold
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, "***")
    return _URL_IN_TEXT.sub(_redacted, text)


def _redacted(match: re.Match[str]) -> str:
    if match.string.startswith(NOT_SHOWN, match.end()):  # already redacted: "postgresql:<URL not shown>"
        return match[0]
    url = match[0].rstrip(".,;:)")  # the sentence's punctuation after a URL: "storage postgresql://...: reason"
    return redact(url) + match[0][len(url):]


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
