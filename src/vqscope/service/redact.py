"""Secrets stay on the server: what responses and log lines show of URLs and storage paths.

A source URL often carries its credentials: `user:password@` before the host, or a signature
in the query (`?X-Amz-Signature=...`). Everything a client can read (job views, lists,
dashboards, error messages) shows such a URL with the scheme, host, port and path kept, and
the userinfo, query and fragment replaced by a marker, so that it still says where a video
came from. Webhook URLs hide their path too: a Slack or Teams hook's secret *is* its path.
The log filter applies the same rule to every line the service writes.

Uploaded videos are stored under the job's id in the data folder; a decoder error names that
file. What a client reads names the file it uploaded instead.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MARK = "redacted"
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s'\"<>`]+")
_TRAILING = ".,:;!?)]}"


def _host_port(parts: Any) -> str:
    """host[:port] of a split URL (IPv6 hosts bracketed), without any userinfo."""
    host = parts.netloc.rpartition("@")[2]
    try:
        name, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number: keep what follows the userinfo
        return host
    if name is None:
        return host
    name = f"[{name}]" if ":" in name else name
    return f"{name}:{port}" if port is not None else name


def redact_url(url: str) -> str:
    """The URL with userinfo, query and fragment replaced by the marker (scheme, host, port, path kept).

    Text that is not a URL (a server path, a video name) comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"<{MARK} URL>"
    if not parts.scheme or not parts.netloc:
        return url
    netloc = _host_port(parts)
    if "@" in parts.netloc:
        netloc = f"{MARK}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, MARK if parts.query else "",
                       MARK if parts.fragment else ""))


def redact_webhook(url: str | None) -> str | None:
    """A webhook as responses show it: scheme://host[:port], then the marker for anything secret."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"<{MARK} URL>"
    base = f"{parts.scheme}://{_host_port(parts)}"
    hidden = parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    return f"{base}/{MARK}" if hidden else base


def webhook_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def redact_text(text: str | None) -> str | None:
    """Every URL inside free text (an error message, a log line) redacted as by `redact_url`."""
    if not text or "://" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        found = m.group(0)
        core = found.rstrip(_TRAILING)
        return redact_url(core) + found[len(core):]

    return _URL.sub(one, text)


def without_storage_path(message: str | None, job_id: str, stored_at: str | None, name: str) -> str | None:
    """An error message with the server's copy of an upload or download named as the client knows it.

    `stored_at` is the file the worker read (an upload's path; None for downloads, whose name
    is not recorded); any path ending in the job's id (the service names its files after the
    job) is replaced too, so the data folder's location never shows.
    """
    if not message:
        return message
    if stored_at:
        for form in {stored_at, os.path.realpath(stored_at)}:
            message = message.replace(form, name)
    pattern = re.compile(r"(?:[^\s'\":]*/)?" + re.escape(job_id) + r"[A-Za-z0-9._-]*")
    return pattern.sub(lambda _m: name, message)


class RedactingFilter(logging.Filter):
    """Redacts URLs in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_FILTER = RedactingFilter()
LOGGERS = ("vqscope", "vqscope.service", "uvicorn", "uvicorn.error", "uvicorn.access")


def install_log_redaction() -> None:
    """Attach the filter to the service's loggers (and uvicorn's) once per process.

    A logger's filters see only the records created on that logger, so every existing
    `vqscope.*` logger gets it as well as the names above.
    """
    names = set(LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith("vqscope.")}
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
