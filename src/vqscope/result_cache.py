"""Scored results kept on disk, so `ask`, `describe` and `score` of one file score it once.

A question about a video used to cost a full scoring each time, although the answer only
reads the result. Results are now cached per video *content*, model *file* and scoring
setting, which is everything a result depends on:

- the SHA-256 of the video file's content (a renamed or copied file is found again; an
  edited one is not). Hashing a large file costs a read of it, so the hash is remembered per
  (real path, size, modification time, inode): an unchanged file is not read again;
- the model's id and the SHA-256 of its file (a recalibrated model with a reused id is a
  different model), and the runtime running it (torch, onnx, tensorrt: scores agree only to
  about 0.02 points);
- the decoder back-end, and the effective clip plan (clip length, clip limit, window, and
  which of them the caller asked for, which decides the plan's warnings);
- vqscope's own code (a fingerprint of its Python sources), so a changed description or
  grading rule is never served from an older run, released or not.

Invalidation is by key only: nothing is ever updated in place, an entry whose key no longer
comes up is simply not read. Entries are small JSON files (one per result, a few kB to some
tens of kB); delete the folder to reclaim the space.

Where: $VQSCOPE_RESULT_CACHE, else $XDG_CACHE_HOME/vqscope/results (~/.cache/vqscope/results),
beside the feature cache. Concurrent writers are safe: an entry is written to a temporary file
in its own folder and renamed into place, so a reader sees a whole entry or none. A cache that
cannot be read or written (a read-only home, a damaged entry) costs a scoring, never a failure.
Models that were never saved to a file (built in memory) have no file to identify them and
are not cached.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from .hashing import file_sha256
from .result import ClipResult, DimensionScore, Result

ENV = "VQSCOPE_RESULT_CACHE"
FORMAT = 1  # of an entry; part of every key


def default_result_cache_dir() -> Path:
    """$VQSCOPE_RESULT_CACHE, else the XDG cache folder's vqscope/results."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqscope" / "results"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over vqscope's Python sources (names and contents), once per process: about
    100 small files, a few tens of milliseconds."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _model_file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


class ResultCache:
    """A folder of results keyed as the module docstring says."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root is not None else default_result_cache_dir()

    # -- keys ----------------------------------------------------------------------------
    def key(self, video: str | os.PathLike[str], model: Any, options: Mapping[str, Any], decoder: str = "pyav") -> str | None:
        """The entry key of scoring `video` with `model` under `options` (max_clips,
        clip_seconds), or None where the result cannot be identified (a model without a file,
        a video that cannot be read: scoring then says why)."""
        if not getattr(model, "path", None):
            return None
        try:
            st = os.stat(model.path)
            model_hash = _model_file_sha256(os.fspath(model.path), st.st_size, st.st_mtime_ns)
            video_hash = self.video_hash(video)
            plan = model.features.clip_plan.with_options(options.get("clip_seconds"), options.get("max_clips"))
        except (OSError, ValueError):
            return None
        parts = {
            "format": FORMAT, "video": video_hash, "model": model.id, "model_sha256": model_hash,
            "runtime": getattr(model, "runtime", "torch"), "decoder": decoder,
            "plan": {**plan.to_dict(), "requested": sorted(plan.requested)}, "code": code_fingerprint(),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def video_hash(self, video: str | os.PathLike[str]) -> str:
        """The content hash of a video, remembered per (real path, size, mtime, inode)."""
        real = os.path.realpath(video)
        st = os.stat(real)
        if not os.path.isfile(real):
            raise OSError(f"{real} is not a file")
        stamp = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()).hexdigest()
        memo = self.root / "hashes" / stamp[:2] / stamp
        try:
            known = memo.read_text().strip()
            if len(known) == 64:
                return known
        except OSError:
            pass
        digest = file_sha256(real)
        self._write(memo, digest)
        return digest

    # -- entries -------------------------------------------------------------------------
    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, video: str | os.PathLike[str]) -> Result | None:
        """The cached result (reported under `video`, the path asked about now), or None."""
        try:
            data = json.loads(self._entry(key).read_text())
            result = result_from_record(data)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # absent, or damaged: scored again and rewritten
        result.video = os.fspath(video)
        return result

    def put(self, key: str, result: Result) -> None:
        self._write(self._entry(key), json.dumps(result_record(result)))

    def _write(self, path: Path, text: str) -> None:
        """Whole-or-nothing write (temporary file in the same folder, then rename); a cache
        that cannot be written is skipped."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass


def result_record(result: Result) -> dict[str, Any]:
    """A lossless record of a Result (`Result.to_dict` rounds, and an answer read from rounded
    probabilities could differ from the first one at the threshold)."""
    return dataclasses.asdict(result)


def result_from_record(data: Mapping[str, Any]) -> Result:
    fields = dict(data)
    fields["dimensions"] = {k: DimensionScore(**v) for k, v in data["dimensions"].items()}
    fields["clips"] = [
        ClipResult(**{**c, "dimensions": {k: DimensionScore(**v) for k, v in c["dimensions"].items()}})
        for c in data["clips"]
    ]
    return Result(**fields)


def cached_score(
    cache: ResultCache | None,
    model: Any,
    video: str,
    options: Mapping[str, Any],
    score: Callable[[], Result],
    decoder: str = "pyav",
) -> Result:
    """`score()`'s result for `video`, from the cache where it holds one (then stored)."""
    key = cache.key(video, model, options, decoder) if cache is not None else None
    if key is not None:
        found = cache.get(key, video)  # type: ignore[union-attr]
        if found is not None:
            return found
    result = score()
    if key is not None:
        cache.put(key, result)  # type: ignore[union-attr]
    return result
