"""Where a job's video comes from: an upload, a path on the server, or a URL.

Paths are checked when a job is submitted (a typo gets an immediate, typed answer, not a
failed job later); URLs are fetched by the worker when the job runs, so that submitting stays
fast and a download that fails counts against the job, not the request. Uploads and downloads
are size-limited while they stream, never after, and written with fsync before a job refers
to them: an accepted upload survives a crash along with its job.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import InputIsDirectoryError, InputNotFoundError, InputPermissionError, VQScopeError

_CHUNK = 1 << 20
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class SourceError(VQScopeError):
    """A job's source is not acceptable (bad URL, path outside the allowed roots, ...)."""

    exit_code = 2
    kind = "bad_source"


class PathNotAllowedError(SourceError):
    kind = "path_not_allowed"


class TooLargeError(SourceError):
    kind = "too_large"


class DownloadError(SourceError):
    kind = "download_failed"


def check_path(path: str, roots: tuple[Path, ...] = ()) -> str:
    """A submitted server-side path: absolute, inside an allowed root, an existing readable file."""
    if not os.path.isabs(path):
        raise SourceError(f"{path}: give an absolute path (the server does not know your working folder)", path)
    real = Path(os.path.realpath(path))
    if roots and not any(real == root or root in real.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise PathNotAllowedError(f"{path}: outside the folders this server scores from ({allowed})", path)
    if not real.exists():
        raise InputNotFoundError(f"{path}: no such file on the server", path)
    if real.is_dir():
        raise InputIsDirectoryError(f"{path}: is a directory (submit a batch of its files instead)", path)
    if not os.access(real, os.R_OK):
        raise InputPermissionError(f"{path}: the server may not read this file", path)
    return str(real)


def check_url(url: str, allowed: bool = True) -> str:
    if not allowed:
        raise SourceError("this server does not fetch URLs (started with --no-urls)", url)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SourceError(f"{url}: only http:// and https:// URLs can be fetched", url)
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


def download(url: str, folder: Path, stem: str, limit: int, timeout: float = 60.0) -> Path:
    """Fetch a URL into `folder`; typed errors for HTTP failures, timeouts and size."""
    suffix = safe_suffix(unquote(urlparse(url).path))
    target = folder / f"{stem}{suffix}"
    request = urllib.request.Request(url, headers={"User-Agent": "vqscope"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https checked)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise TooLargeError(f"{url}: {declared} bytes is over this server's limit of {limit} bytes", url)
            store_stream(response, target, limit)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}", url) from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}", url) from None
    except TimeoutError:
        raise DownloadError(f"{url}: timed out after {timeout:.0f} s", url) from None
    except OSError as exc:
        raise DownloadError(f"{url}: {exc}", url) from None
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
