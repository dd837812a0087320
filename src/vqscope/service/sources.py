"""Where a job's video comes from: an upload, a path on the server, or a URL.

Paths are checked when a job is submitted (a typo gets an immediate, typed answer, not a
failed job later); URLs are fetched by the worker when the job runs, so that submitting stays
fast and a download that fails counts against the job, not the request. Uploads and downloads
are size-limited while they stream, never after, and written with fsync before a job refers
to them: an accepted upload survives a crash along with its job.

Both kinds reach things a client could not reach itself, so both are closed by default in the
service: server paths only under `--path-root` folders (or anywhere with `--any-path`), URLs
only to public addresses unless `--allow-fetch` says otherwise (outbound.py).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import InputIsDirectoryError, InputNotFoundError, InputPermissionError, VQScopeError
from .outbound import FetchPolicy, OutboundError, check_target, open_url, redact

_CHUNK = 1 << 20
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_PATH_MAX = 4096  # Linux PATH_MAX, in bytes with the final NUL; os.pathconf would ask one file system
_NAME_MAX = 255
DownloadError = OutboundError  # kind "download_failed"


class SourceError(VQScopeError):
    """A job's source is not acceptable (bad URL, path outside the allowed roots, ...)."""

    exit_code = 2
    kind = "bad_source"


class PathNotAllowedError(SourceError):
    kind = "path_not_allowed"


class BadPathError(SourceError):
    """A path no file system could hold: a NUL byte, too long, not encodable."""

    kind = "bad_path"


class NotARegularFileError(SourceError):
    """A FIFO, socket or device: opening one can block a worker forever or read without end."""

    kind = "not_a_regular_file"


class TooLargeError(SourceError):
    kind = "too_large"


def _shown(path: str) -> str:
    """A path as an error message quotes it: printable and short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in path[:200])
    return text + ("…" if len(path) > 200 else "")


def check_path(path: str, roots: tuple[Path, ...] | None = None) -> str:
    """A submitted server-side path: absolute, inside an allowed root, an existing readable regular file.

    `roots`: the folders paths must lie in; `()` refuses every path (the service's default: a
    path makes the server open a file as its own user); None accepts any path (`--any-path`,
    and the local `vqscope study` commands, whose user is the operator).
    """
    if roots is not None and not roots:
        raise PathNotAllowedError("this server does not accept server paths: upload the file or give a URL "
                                  "(an operator enables paths with --path-root DIR, or --any-path, unsafe)", None)
    if "\x00" in path:
        raise BadPathError(f"{_shown(path)}: a path may not contain a NUL byte", None)
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        raise BadPathError(f"{_shown(path)}: not a valid file name", None) from None
    if len(encoded) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in encoded.split(b"/")):
        raise BadPathError(f"{_shown(path)}: too long for a path ({len(encoded)} bytes)", None)
    if not os.path.isabs(path):
        raise SourceError(f"{_shown(path)}: give an absolute path (the server does not know your working folder)", None)
    shown = _shown(path)
    real = Path(os.path.realpath(path))
    if roots and not any(real == root or root in real.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise PathNotAllowedError(f"{shown}: outside the folders this server scores from ({allowed})", path)
    try:
        info = os.stat(real)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InputNotFoundError(f"{shown}: no such file on the server", path) from None
        if exc.errno == errno.EACCES:
            raise InputPermissionError(f"{shown}: the server may not read this file", path) from None
        raise BadPathError(f"{shown}: cannot be opened ({exc.strerror})", None) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputIsDirectoryError(f"{shown}: is a directory (submit a batch of its files instead)", path)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFileError(f"{shown}: not a regular file (a pipe, socket or device is not a video)", path)
    if not os.access(real, os.R_OK):
        raise InputPermissionError(f"{shown}: the server may not read this file", path)
    return str(real)


def check_url(url: str, allowed: bool = True, policy: FetchPolicy | None = None) -> str:
    """An http(s) URL with a host; with `policy`, an IP-literal or localhost host it does not
    allow is refused now (names are checked when fetched, on the addresses they resolve to)."""
    if not allowed:
        raise SourceError("this server does not fetch URLs (started with --no-urls)", None)
    if policy is None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SourceError(f"{redact(url)}: only http:// and https:// URLs can be fetched", None)
        policy = FetchPolicy.unrestricted()
    check_target(url, policy)
    return url


def safe_suffix(name: str) -> str:
    """The file's extension if it looks like one (kept so that the file stays recognisable)."""
    suffix = Path(name).suffix
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ""


def display_name(name: str | None, fallback: str) -> str:
    """What results call an uploaded video: its client-side file name, without folders."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    return base[:255] or fallback


def store_stream(stream: BinaryIO, target: Path, limit: int) -> int:
    """Copy a stream into `target` durably, refusing more than `limit` bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    written = 0
    try:
        with open(partial, "wb") as out:
            while block := stream.read(_CHUNK):
                written += len(block)
                if written > limit:
                    raise TooLargeError(f"the video is larger than this server's limit of {limit} bytes")
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return written


def download(url: str, folder: Path, stem: str, limit: int, timeout: float = 30.0, *,
             policy: FetchPolicy | None = None, deadline_s: float = 300.0) -> Path:
    """Fetch a URL into `folder`; typed errors for refused addresses, HTTP failures, time and size.

    `policy`: which addresses may be reached (default: public ones only). `timeout` bounds each
    network operation, `deadline_s` the whole transfer, redirects included.
    """
    suffix = safe_suffix(unquote(urlparse(url).path))
    target = folder / f"{stem}{suffix}"
    shown = redact(url)
    with open_url(url, policy or FetchPolicy(), deadline_s=deadline_s, idle_s=timeout, shown=shown) as response:
        if not 200 <= response.status < 300:
            raise DownloadError(f"{response.shown}: HTTP {response.status} {response.reason}".rstrip(), None)
        declared = response.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > limit:
            raise TooLargeError(f"{shown}: {int(declared)} bytes is over this server's limit of {limit} bytes", None)
        store_stream(response, target, limit)
    return target


def remove_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
