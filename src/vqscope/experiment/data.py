"""Labelled videos with their cached clip features, packed for training and evaluation.

Training and evaluation never run a backbone themselves: they ask the feature cache
(features/cache.py) for every video, extracting the missing ones first, and then work on one
contiguous clip matrix per dataset. Targets are put on the model's 0-100 scale with the
dataset's own `to_unit`, so a 1-5 KoNViD MOS of 3 and a 0-100 LSVQ MOS of 50 both mean 50.
Videos that cannot be decoded are dropped and reported, never silently scored as zero.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..data.datasets import Dataset, VideoItem
from ..errors import ConfigError
from ..features import FeatureConfig
from ..features.cache import ExtractionReport, FeatureCache, fill_cache

Progress = Callable[[int, int], None]


@dataclass
class VideoSet:
    """Videos of one dataset: clip features packed in one matrix, targets on 0-100."""

    name: str
    scale: tuple[float, float]
    items: list[VideoItem]
    features: np.ndarray  # [clips, dim] float32, videos one after another
    start: np.ndarray  # [videos] first clip row of each video
    count: np.ndarray  # [videos] clips of each video
    target: np.ndarray  # [videos] MOS mapped to 0-100
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason, videos left out

    def __len__(self) -> int:
        return len(self.items)

    @property
    def mos(self) -> np.ndarray:
        return np.array([item.mos for item in self.items], dtype=np.float64)

    @property
    def splits(self) -> list[str | None]:
        return [item.split for item in self.items]

    @property
    def owner(self) -> np.ndarray:
        """Video index of every clip row."""
        return np.repeat(np.arange(len(self.items)), self.count)

    def subset(self, index: Sequence[int] | np.ndarray) -> "VideoSet":
        index = np.asarray(index, dtype=np.int64)
        rows = clip_rows(self.start, self.count, index)
        count = self.count[index]
        start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64) if len(index) else count
        return VideoSet(self.name, self.scale, [self.items[i] for i in index], self.features[rows], start, count,
                        self.target[index], dict(self.failed))


def clip_rows(start: np.ndarray, count: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Row indices of all clips of `videos`, video after video."""
    if len(videos) == 0:
        return np.zeros(0, dtype=np.int64)
    counts = count[videos]
    offsets = np.repeat(start[videos] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(int(counts.sum()), dtype=np.int64) + offsets


def unit_targets(dataset: Dataset, items: Sequence[VideoItem]) -> np.ndarray:
    return 100.0 * np.asarray(dataset.to_unit([item.mos for item in items]), dtype=np.float64)


def ensure_features(
    datasets: Sequence[tuple[str, Dataset]],
    cache: FeatureCache,
    workers: int = 1,
    progress: Progress | None = None,
) -> ExtractionReport:
    """Extract (once) the features of every video of every dataset that the cache lacks."""
    paths: list[str] = []
    seen: set[str] = set()
    for _name, dataset in datasets:
        for item in dataset.items:
            if item.path not in seen:
                seen.add(item.path)
                paths.append(item.path)
    report = fill_cache(paths, cache, workers=workers, on_progress=progress)
    if isinstance(cache, FeatureStore):
        cache.save_hashes()
    return report


def load_video_set(name: str, dataset: Dataset, cache: FeatureCache, items: Sequence[VideoItem] | None = None) -> VideoSet:
    """Read the cached features of `items` (default: every video on disk) into one `VideoSet`."""
    items = list(dataset.items if items is None else items)
    kept: list[VideoItem] = []
    blocks: list[np.ndarray] = []
    failed: dict[str, str] = {}
    for item in items:
        try:
            cached = cache.get(item.path)
        except OSError as exc:
            failed[item.path] = f"unreadable: {exc.strerror or exc}"
            continue
        if cached is None:
            failed[item.path] = "no features in the cache (extraction failed)"
            continue
        if cached.features.ndim != 2 or cached.features.shape[1] != cache.config.dim or not len(cached.features):
            failed[item.path] = f"cached features have shape {cached.features.shape}, expected [clips, {cache.config.dim}]"
            continue
        kept.append(item)
        blocks.append(np.asarray(cached.features, dtype=np.float32))
    count = np.array([len(b) for b in blocks], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64) if len(count) else count
    features = np.concatenate(blocks) if blocks else np.zeros((0, cache.config.dim), dtype=np.float32)
    return VideoSet(name, dataset.scale, kept, features, start, count, unit_targets(dataset, kept), failed)


class FeatureStore(FeatureCache):
    """A `FeatureCache` that remembers content hashes between runs.

    Entries are keyed by the SHA-256 of each video file, so finding them means reading every
    file once per process: minutes for LSVQ's 39,000 videos, at every `train` and `eval`.
    The (path, mtime, size) -> hash memo is kept in `content-hashes.json` at the cache root
    (shared by all feature settings; a changed file has a new mtime or size and is hashed
    again). Losing the file, or two runs overwriting each other's, only costs re-hashing.
    """

    MEMO = "content-hashes.json"

    def __init__(self, root: str | os.PathLike[str], config: FeatureConfig):
        super().__init__(root, config)
        self._memo_path = Path(root) / self.MEMO
        try:
            rows = json.loads(self._memo_path.read_text())
            self._hashes.update({(str(p), float(t), int(n)): str(h) for p, t, n, h in rows})
        except (OSError, ValueError, TypeError):
            pass  # no memo yet, or unreadable: hash again

    def save_hashes(self) -> None:
        rows = [[p, t, n, h] for (p, t, n), h in self._hashes.items()]
        tmp = self._memo_path.with_name(f".{self.MEMO}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(rows))
            os.replace(tmp, self._memo_path)
        except OSError:
            pass  # a memo is a convenience, never a reason to fail


def open_cache(root: str | os.PathLike[str], config: FeatureConfig) -> FeatureStore:
    try:
        return FeatureStore(root, config)
    except OSError as exc:
        raise ConfigError(f"cannot use feature cache folder {root}: {exc.strerror or exc}", path=str(root)) from None


class ProgressBar:
    """A rich progress bar over videos on a terminal, a few log lines elsewhere, or nothing."""

    def __init__(self, label: str, enabled: bool = True, log: Callable[[str], None] | None = None):
        self.label = label
        self.enabled = enabled
        self.log = log
        self._bar = None
        self._task = None
        self._last_logged = -1

    def __enter__(self) -> "ProgressBar":
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
        elif self.enabled and self.log is not None and total:
            step = max(1, total // 10)
            if done == total or done // step != self._last_logged:
                self._last_logged = done // step
                self.log(f"{self.label}: {done}/{total} videos")


def describe_report(report: ExtractionReport, where: Path | str) -> str:
    took = f"{report.seconds:.0f} s" if report.seconds < 120 else f"{report.seconds / 60:.1f} min"
    return f"{report.extracted} extracted, {report.cached} already cached, {len(report.failed)} failed ({took}) in {where}"
