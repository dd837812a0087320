"""Feature cache: per-clip features of each video, extracted once.

Entries are keyed by the SHA-256 of the video file's content and by the feature settings
(backbones, weights, clip plan), so a renamed file is not extracted twice and a changed
backbone never reads stale features. Extraction of missing entries runs in worker processes
(each with its own backbones and one torch thread), which keeps every core busy with decoding
and inference; results are written by the parent only, one small .npz per video, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import VQScopeError
from ..backbones import get_backbone_spec
from ..hashing import file_sha256
from .extractor import FeatureConfig, FeatureExtractor, VideoFeatures
from .pipeline import dead_worker_error


@dataclass
class CachedFeatures:
    """What training and evaluation need of a video: clip features and clip spans."""

    features: np.ndarray  # [clips, dim]
    spans: np.ndarray  # [clips, 3]: start_s, end_s, key_time_s
    info: dict = field(default_factory=dict)

    @classmethod
    def from_video(cls, vf: VideoFeatures) -> "CachedFeatures":
        spans = np.array([[c.spec.start_s, c.spec.end_s, c.key_time_s] for c in vf.clips], dtype=np.float64)
        info = {"width": vf.info.width, "height": vf.info.height, "fps": vf.info.fps,
                "duration_s": vf.info.duration_s, "padded": vf.padded, "warnings": vf.warnings}
        return cls(vf.matrix, spans, info)


def config_key(config: FeatureConfig) -> str:
    """Settings, backbone code versions (those past 1 only) and the pictures each backbone
    reads: a backbone given a new crop, resolution or colour space computes new features
    even where its code, and so its version, stays the same."""
    data = config.to_dict()
    specs = {n: get_backbone_spec(n) for n in config.spatial + config.temporal}
    versions = {n: spec.version for n, spec in specs.items()}
    if any(v > 1 for v in versions.values()):
        data["backbone_versions"] = versions
    data["frame_inputs"] = {n: dataclasses.asdict(spec.frame_input) for n, spec in specs.items()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


content_hash = file_sha256  # a video's cache identity is its content


class FeatureCache:
    """A folder of cached features for one feature configuration."""

    def __init__(self, root: str | os.PathLike[str], config: FeatureConfig):
        self.config = config
        self.dir = Path(root) / config_key(config)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        self._hashes: dict[tuple[str, float, int], str] = {}

    def _entry(self, path: str | os.PathLike[str]) -> Path:
        st = os.stat(path)
        memo = (os.fspath(path), st.st_mtime, st.st_size)
        if memo not in self._hashes:
            self._hashes[memo] = content_hash(path)
        digest = self._hashes[memo]
        return self.dir / digest[:2] / f"{digest}.npz"

    def get(self, path: str | os.PathLike[str]) -> CachedFeatures | None:
        entry = self._entry(path)
        if not entry.is_file():
            return None
        try:
            with np.load(entry, allow_pickle=False) as data:
                return CachedFeatures(data["features"], data["spans"], json.loads(str(data["info"])))
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is extracted again

    def put(self, path: str | os.PathLike[str], features: CachedFeatures) -> None:
        entry = self._entry(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(entry.name + ".tmp.npz")
        np.savez(tmp, features=features.features, spans=features.spans, info=json.dumps(features.info))
        os.replace(tmp, entry)


@dataclass
class ExtractionReport:
    extracted: int = 0
    cached: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> one-line error
    seconds: float = 0.0


# -- worker processes -------------------------------------------------------------------------
# An error in a worker travels back typed: a video's own failure as its one-line reason, a
# failure to build the backbones (weights that cannot be fetched, an unknown backbone) as the
# exception itself, raised in the parent exactly as `workers=1` raises it. An initializer that
# raised instead would kill every worker and leave only a BrokenProcessPool and tracebacks.
_WORKER: FeatureExtractor | None = None
_SETUP_ERROR: Exception | None = None


def _init_worker(config: dict) -> None:
    import torch

    global _WORKER, _SETUP_ERROR
    torch.set_num_threads(1)
    try:
        _WORKER = FeatureExtractor(FeatureConfig.from_dict(config))
    except Exception as exc:  # raised by the first task, in the parent, as itself
        _SETUP_ERROR = exc


def _extract_in_worker(path: str) -> tuple[str, CachedFeatures | None, str | None]:
    if _SETUP_ERROR is not None:
        raise _SETUP_ERROR
    assert _WORKER is not None
    try:
        return path, CachedFeatures.from_video(_WORKER.extract(path)), None
    except VQScopeError as exc:
        return path, None, f"{exc.kind}: {exc.message}"


def fill_cache(
    paths: Iterable[str],
    cache: FeatureCache,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExtractionReport:
    """Extract features of every path not yet cached; failures are reported, not raised."""
    started = time.perf_counter()
    report = ExtractionReport()
    todo = []
    for p in paths:
        try:
            if cache.get(p) is not None:
                report.cached += 1
            else:
                todo.append(p)
        except OSError as exc:
            report.failed[p] = f"unreadable: {exc.strerror}"
    total = len(todo)
    for done, (path, features, error) in enumerate(_run(todo, cache.config, workers), start=1):
        if features is not None:
            cache.put(path, features)
            report.extracted += 1
        else:
            report.failed[path] = error or "failed"
        if on_progress is not None:
            on_progress(done, total)
    report.seconds = time.perf_counter() - started
    return report


def _run(todo: list[str], config: FeatureConfig, workers: int) -> Iterator[tuple[str, CachedFeatures | None, str | None]]:
    if not todo:
        return
    if workers <= 1:
        extractor = FeatureExtractor(config)
        for path in todo:
            try:
                yield path, CachedFeatures.from_video(extractor.extract(path)), None
            except VQScopeError as exc:
                yield path, None, f"{exc.kind}: {exc.message}"
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config.to_dict(),))
    try:
        futures = [pool.submit(_extract_in_worker, p) for p in todo]
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                raise dead_worker_error(pool, "a feature extraction worker",
                                        "features extracted so far are cached, a re-run resumes "
                                        "(fewer --workers need less memory)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an error stops the others, not waits for them
