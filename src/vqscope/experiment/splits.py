"""Train / validation / test indices of one dataset: official splits, k-fold, or all.

Assignments depend only on the video keys and the seed, never on file order or on which
other videos happen to be on disk, so a fold means the same videos on every machine. The
validation set (for early stopping) is taken out of the training videos unless the dataset
ships a validation split; the test set is never looked at during training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .config import DatasetEntry
from .data import VideoSet


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def counts(self) -> dict[str, int]:
        return {"train": int(len(self.train)), "val": int(len(self.val)), "test": int(len(self.test))}


def _order(keys: list[str], seed: int, salt: str) -> np.ndarray:
    """A seeded permutation of positions, stable under reordering of `keys`."""
    digests = [hashlib.sha256(f"{salt}:{seed}:{k}".encode()).hexdigest() for k in keys]
    return np.array(sorted(range(len(keys)), key=lambda i: digests[i]), dtype=np.int64)


def _carve(videos: np.ndarray, keys: list[str], fraction: float, seed: int, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """Split `videos` into (rest, held) with round(fraction * n) held, at least 1 when fraction > 0."""
    if fraction <= 0 or len(videos) == 0:
        return videos, videos[:0]
    ranked = videos[_order([keys[i] for i in videos], seed, salt)]
    n_held = min(len(videos) - 1, max(1, int(round(fraction * len(videos)))))
    return np.sort(ranked[n_held:]), np.sort(ranked[:n_held])


def make_split(entry: DatasetEntry, videos: VideoSet, seed: int, fold: int | None = None) -> Split:
    """Indices into `videos` for one dataset entry (`fold` overrides `entry.fold`)."""
    keys = [item.key for item in videos.items]
    everything = np.arange(len(keys), dtype=np.int64)
    if entry.split == "official":
        present = sorted({s for s in videos.splits if s is not None})
        if not present:
            raise ConfigError(f"dataset {entry.name!r} ({entry.spec}) has no official splits; "
                              f"use split = \"kfold\" or split = \"all\"")

        def pick(name: str) -> np.ndarray:
            if name not in present:
                raise ConfigError(f"dataset {entry.name!r} has no split {name!r} among its videos "
                                  f"(splits: {', '.join(present)})")
            return np.array([i for i, s in enumerate(videos.splits) if s == name], dtype=np.int64)

        train = pick(entry.train_split)
        test = pick(entry.test_split) if entry.test_split else everything[:0]
        if entry.val_split:
            val = pick(entry.val_split)
        else:
            train, val = _carve(train, keys, entry.val_fraction, seed, "val")
    elif entry.split == "kfold":
        k = entry.fold if fold is None else fold
        ranked = _order(keys, seed, "fold")
        fold_of = np.empty(len(keys), dtype=np.int64)
        fold_of[ranked] = np.arange(len(keys)) % entry.folds
        test = np.flatnonzero(fold_of == k)
        train, val = _carve(np.flatnonzero(fold_of != k), keys, entry.val_fraction, seed, f"val{k}")
    else:  # all: train on everything but a validation share
        train, val = _carve(everything, keys, entry.val_fraction, seed, "val")
        test = everything[:0]
    if len(train) < 2:
        raise ConfigError(f"dataset {entry.name!r} has {len(train)} training videos after splitting; need at least 2")
    return Split(np.sort(train), np.sort(val), np.sort(test))
