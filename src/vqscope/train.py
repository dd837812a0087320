"""Training the prediction network on cached clip features.

Backbones are frozen and their features cached (see data/corpus.py), so training is a small
regression problem: clip feature vectors -> clip targets. The loss is mean squared error on
the 0-1 scale plus a PLCC term (one minus the batch's linear correlation), which keeps the
ranking sharp where the squared error alone would settle for the mean. Early stopping
watches the Spearman correlation of *video* scores (means of clip predictions) on validation
sources, because video ranking is what the model is for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .heads import CLAMP_Z, HeadConfig, PredictionNetwork
from .metrics import srocc


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 200
    batch_size: int = 128
    patience: int = 25
    plcc_weight: float = 0.5
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    network: PredictionNetwork
    best_epoch: int
    best_val_srocc: float
    history: list[dict[str, float]] = field(default_factory=list)


def video_means(values: np.ndarray, owner: np.ndarray, n_videos: int) -> np.ndarray:
    """Mean of clip values per video (owner[i] is the video of clip i)."""
    sums = np.bincount(owner, weights=values, minlength=n_videos)
    counts = np.bincount(owner, minlength=n_videos)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _plcc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = pred - pred.mean()
    t = target - target.mean()
    return 1.0 - (p * t).sum() / (p.norm() * t.norm() + 1e-8)


@torch.no_grad()
def predict_clips(network: PredictionNetwork, features: np.ndarray, head: str | None = None) -> np.ndarray:
    network.eval()
    head = head or network.config.primary
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return network(x, heads=[head])[head].numpy().astype(np.float64)


def fit(
    features: np.ndarray,
    targets: np.ndarray,
    owner: np.ndarray,
    video_targets: np.ndarray,
    train_videos: np.ndarray,
    val_videos: np.ndarray,
    config: TrainConfig = TrainConfig(),
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Train on clips of `train_videos`, stop early on video SROCC over `val_videos`.

    `features` [clips, dim], `targets` [clips] on 0-100, `owner` [clips] video index,
    `video_targets` [videos]; the video index arrays select videos.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_clip = np.isin(owner, train_videos)
    val_clip = np.isin(owner, val_videos)
    x = torch.from_numpy(features[train_clip].astype(np.float32))
    y = torch.from_numpy((targets[train_clip] / 100.0).astype(np.float32))
    network = PredictionNetwork(HeadConfig(in_dim=features.shape[1], hidden=config.hidden, dropout=config.dropout))
    network.set_normalisation(x.mean(dim=0), x.std(dim=0))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best = (-2.0, 0, {k: v.clone() for k, v in network.state_dict().items()})
    history: list[dict[str, float]] = []
    n = x.shape[0]
    for epoch in range(config.epochs):
        network.train()
        order = torch.from_numpy(rng.permutation(n))
        losses = []
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            if idx.numel() < 2:
                continue
            pred = network(x[idx])[network.config.primary] / 100.0
            loss = nn.functional.mse_loss(pred, y[idx]) + config.plcc_weight * _plcc_loss(pred, y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss))
        clip_pred = predict_clips(network, features[val_clip])
        val_pred = video_means(clip_pred, _reindex(owner[val_clip]), len(val_videos))
        val = srocc(val_pred, video_targets[np.sort(val_videos)])
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_srocc": val})
        if log is not None and epoch % 10 == 0:
            log(f"epoch {epoch:3d} loss {np.mean(losses):.4f} val SROCC {val:.4f}")
        if val > best[0] + 1e-4:
            best = (val, epoch, {k: v.clone() for k, v in network.state_dict().items()})
        elif epoch - best[1] >= config.patience:
            break
    network.load_state_dict(best[2])
    network.eval()
    return FitResult(network, best[1], best[0], history)


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
        z = torch.clamp((torch.from_numpy(features.astype(np.float32)) - network.feature_mean) / network.feature_std,
                        -CLAMP_Z, CLAMP_Z).double().numpy()
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
    result = FitResult(network, best_epoch=0, best_val_srocc=best[0], history=history)
    result.history.append({"chosen_lambda": best[1]})
    return result
