"""Fitting the shipped model's head on cached clip features (scripts/train_vqscope_lite.py).

Backbones are frozen and their features cached (see data/corpus.py), so training is a small
regression problem: clip feature vectors -> clip targets. Model selection watches the Spearman
correlation of *video* scores (means of clip predictions) on validation sources, because video
ranking is what the model is for. Multi-dataset training with gradient descent, per-dataset
heads and balanced batches lives in experiment/ (`vqscope train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .heads import HeadConfig, PredictionNetwork
from .metrics import srocc


@dataclass
class FitResult:
    network: PredictionNetwork
    val_srocc: float  # video SROCC on validation sources at the chosen strength
    ridge_lambda: float  # the chosen strength
    history: list[dict[str, float]] = field(default_factory=list)  # every strength tried


def video_means(values: np.ndarray, owner: np.ndarray, n_videos: int) -> np.ndarray:
    """Mean of clip values per video (owner[i] is the video of clip i)."""
    sums = np.bincount(owner, weights=values, minlength=n_videos)
    counts = np.bincount(owner, minlength=n_videos)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


@torch.no_grad()
def predict_clips(network: PredictionNetwork, features: np.ndarray, head: str | None = None) -> np.ndarray:
    network.eval()
    head = head or network.config.primary
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return network(x, heads=[head])[head].numpy().astype(np.float64)


def _reindex(owner: np.ndarray) -> np.ndarray:
    """Map video indices to 0..k-1 in sorted order (so means line up with sorted targets)."""
    _, inverse = np.unique(owner, return_inverse=True)
    return inverse


def fit_ridge(
    features: np.ndarray,
    targets: np.ndarray,
    owner: np.ndarray,
    video_targets: np.ndarray,
    train_videos: np.ndarray,
    val_videos: np.ndarray,
    lambdas: tuple[float, ...] = (300.0, 1000.0, 3000.0, 10000.0, 30000.0),
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """A linear head fitted in closed form (ridge), its strength chosen on validation video SROCC.

    With a few dozen sources and thousands of feature dimensions, gradient training of the
    MLP memorises sources within a few epochs; ridge regression on the same standardised
    (and clamped) features generalises better to unseen sources and has one knob, chosen on
    validation sources. The result is an ordinary PredictionNetwork with no hidden layer.
    """
    train_clip = np.isin(owner, train_videos)
    val_clip = np.isin(owner, val_videos)
    network = PredictionNetwork(HeadConfig(in_dim=features.shape[1], hidden=(), dropout=0.0))
    x = torch.from_numpy(features[train_clip].astype(np.float32))
    network.set_normalisation(x.mean(dim=0), x.std(dim=0))
    with torch.no_grad():
        z = network.standardise(torch.from_numpy(features.astype(np.float32))).double().numpy()
    a = z[train_clip]
    y = targets[train_clip].astype(np.float64) / 100.0
    y_mean = float(y.mean())
    gram, rhs = a.T @ a, a.T @ (y - y_mean)
    best: tuple[float, float, np.ndarray] | None = None
    history: list[dict[str, float]] = []
    for lam in lambdas:
        w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), rhs)
        clip_pred = (z[val_clip] @ w + y_mean) * 100.0
        val = srocc(video_means(clip_pred, _reindex(owner[val_clip]), len(val_videos)), video_targets[np.sort(val_videos)])
        history.append({"lambda": lam, "val_srocc": val})
        if log is not None:
            log(f"ridge lambda {lam:g}: val SROCC {val:.4f}")
        if best is None or val > best[0] + 1e-4:
            best = (val, lam, w)
    assert best is not None
    head = network.heads[network.config.primary]
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(best[2]).float().unsqueeze(0))
        head.bias.fill_(y_mean)
    network.eval()
    return FitResult(network, val_srocc=best[0], ridge_lambda=best[1], history=history)
