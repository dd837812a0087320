"""The fixed benchmark set behind a calibration: which videos, what they are, how a model scores them.

A scaled score is only as stable as the set it is a percentile of. So the set is identified by
content, not by paths: the SHA-256 of every video file, combined order-independently
(`calibration.fingerprint`). Moving or renaming the files keeps the fingerprint; re-encoding
or dropping one video changes it. Two model files whose calibrations carry the same
fingerprint are percentiles of the same videos, and their scaled scores can be compared.

A benchmark is given as any mix of video files, folders (searched recursively), list files
(`.txt`/`.lst`/`.list`, one path a line, relative to the list file, `#` comments) and dataset
specs (`konvid1k:/data/KoNViD_1k`, see `vqscope.data.datasets`).
"""

from __future__ import annotations


import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .calibration import Calibration, GradeScale, fingerprint
from .errors import ConfigError, InputNotFoundError, VQScopeError
from .hashing import file_sha256

LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Benchmark:
    """The videos of a benchmark set, in a stable order, and the name it is recorded under."""

    name: str
    videos: tuple[str, ...]
    missing: tuple[str, ...] = ()  # listed by a dataset's labels but not on disk


def resolve_benchmark(specs: Sequence[str], name: str | None = None) -> Benchmark:
    """Every video named by `specs`, de-duplicated, in order (see the module docstring)."""
    from .output import expand_inputs

    videos: list[str] = []
    missing: list[str] = []
    for spec in specs:
        if os.path.isdir(spec):
            videos += expand_inputs([spec])
        elif os.path.isfile(spec) and Path(spec).suffix.lower() in LIST_SUFFIXES:
            videos += _read_list(Path(spec))
        elif os.path.isfile(spec):
            videos.append(spec)
        elif _is_dataset_spec(spec):
            from .data.datasets import load_dataset

            dataset = load_dataset(spec)
            videos += [item.path for item in dataset.items]
            missing += [item.path for item in dataset.missing]
        else:
            raise InputNotFoundError(f"benchmark {spec!r}: no such file, folder or dataset spec", spec)
    seen: set[str] = set()
    unique = [v for v in (os.path.abspath(v) for v in videos) if not (v in seen or seen.add(v))]
    if len(unique) < 2:
        raise ConfigError(f"a benchmark set needs at least two videos, found {len(unique)} in {', '.join(specs)}")
    return Benchmark(name=name or ", ".join(specs), videos=tuple(unique), missing=tuple(missing))


def _read_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line if os.path.isabs(line) else str(path.parent / line))
    return out


def _is_dataset_spec(text: str) -> bool:
    from .data.datasets import list_adapters

    head, sep, _ = text.partition(":")
    normal = head.strip().lower().replace("-", "").replace("_", "")
    return bool(sep) and normal in list_adapters()


@dataclass
class CalibrationRun:
    """What `calibrate` did: the fitted table, each scored video, and each failure."""

    calibration: Calibration
    scores: list[tuple[str, float]] = field(default_factory=list)  # (path, raw score)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (path, error kind, message)


def calibrate(
    model,
    benchmark: Benchmark,
    *,
    grades: GradeScale | None = None,
    points: int = 101,
    strict: bool = False,
    on_video: Callable[[str, float | None, Exception | None], None] | None = None,
    on_clip: Callable[[int, int], None] | None = None,
) -> CalibrationRun:
    """Score every benchmark video with `model` and fit its percentile table.

    A video that cannot be scored is left out of the set (and of its fingerprint and size),
    unless `strict`, where it stops the run: a fixed set should not silently shrink when the
    same files are meant to be used for every model version.
    """
    scores: list[tuple[str, float]] = []
    hashes: list[str] = []
    failures: list[tuple[str, str, str]] = []
    for path in benchmark.videos:
        try:
            result = model.score(path, on_clip=on_clip)
            digest = file_sha256(path)
        except VQScopeError as exc:
            if strict:
                raise
            failures.append((path, exc.kind, exc.message))
            if on_video is not None:
                on_video(path, None, exc)
            continue
        except OSError as exc:  # vanished or unreadable between scoring and hashing
            if strict:
                raise InputNotFoundError(f"{path}: {exc.strerror}", path) from None
            failures.append((path, "io_error", str(exc)))
            continue
        scores.append((path, result.score))
        hashes.append(digest)
        if on_video is not None:
            on_video(path, result.score, None)
    if len(scores) < 2:
        raise ConfigError(f"only {len(scores)} of {len(benchmark.videos)} benchmark videos could be scored")
    try:
        table = Calibration.fit(
            [s for _, s in scores],
            benchmark=benchmark.name,
            fingerprint=fingerprint(hashes),
            grades=grades or model.grades,
            points=points,
        )
    except ValueError as exc:
        raise ConfigError(f"cannot calibrate on this set: {exc}") from None
    return CalibrationRun(table, scores, failures)
