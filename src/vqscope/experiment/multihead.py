"""Fitting one prediction network to several datasets at once, BILIVQA style.

Why one head per dataset: MOS from different subjective studies are not on one scale. Raters
of one study are harsher, another study used a 1-5 scale whose ends nobody touches, a third
was run on phones. Mapping every MOS to 0-100 linearly does not make them agree, and a single
head trained on the mix has to split the difference, which costs correlation on every
dataset. A shared trunk with one small linear head per dataset lets each study keep its own
scale and bias while all of them teach the trunk what quality looks like.

Why balanced batches: each batch holds the same number of videos from every dataset, so a
28,000-video LSVQ does not drown a 1,200-video KoNViD. An epoch is as many batches as it
takes to see the largest dataset once; smaller datasets are cycled (reshuffled each pass).

Why video-level loss: the video score is the mean of its clip scores, so the loss compares
that mean with the video's MOS (there is no per-clip MOS). The regression loss (L1 or MSE on
the 0-1 scale) fixes the scale; the correlation loss (1 - PLCC, or a pairwise ranking
hinge) is computed within each dataset's part of the batch -- ranking a KoNViD video against
an LSVQ one would compare two different scales. Early stopping watches the mean validation
SROCC over datasets, each scored by its own head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..heads import HeadConfig, PredictionNetwork
from ..metrics import srocc
from ..train import video_means
from .config import TrainSection
from .data import VideoSet, clip_rows

SHARED_HEAD = "overall"


@dataclass
class MultiHeadResult:
    network: PredictionNetwork
    best_epoch: int
    best_val_srocc: float  # mean over datasets, at the best epoch
    val_srocc: dict[str, float]  # per dataset, at the best epoch
    history: list[dict[str, float]] = field(default_factory=list)


def head_of(dataset: str, config: TrainSection) -> str:
    return SHARED_HEAD if config.shared_head else dataset


@torch.no_grad()
def predict_videos(
    network: PredictionNetwork, videos: VideoSet, head: str, chunk: int = 16384, clip_scores: bool = False
) -> np.ndarray:
    """Video scores (mean of clip scores) of every video in `videos` from one head.

    `clip_scores` limits each clip score to 0-100 before the mean, as `Model.score` does, so
    an evaluation measures exactly what users are shown; training leaves them unclipped.
    """
    network.eval()
    if len(videos) == 0:
        return np.zeros(0)
    out = np.empty(videos.features.shape[0], dtype=np.float64)
    for start in range(0, videos.features.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(videos.features[start : start + chunk], dtype=np.float32))
        out[start : start + chunk] = network(x, heads=[head])[head].numpy()
    if clip_scores:
        np.clip(out, 0.0, 100.0, out=out)
    return video_means(out, videos.owner, len(videos))


def plcc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = pred - pred.mean()
    t = target - target.mean()
    return 1.0 - (p * t).sum() / (p.norm() * t.norm() + 1e-8)


def rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean hinge over ordered pairs: penalise every pair the prediction puts the wrong way."""
    dp = pred[:, None] - pred[None, :]
    sign = torch.sign(target[:, None] - target[None, :])
    pairs = sign != 0
    if not bool(pairs.any()):
        return pred.sum() * 0.0
    return torch.relu(-dp * sign)[pairs].mean()


#: Std given to features that never change over the training clips: they are switched off.
CONSTANT_FEATURE_STD = 1e6


def _normalisation(train: Mapping[str, VideoSet]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over all training clips, accumulated in float64 without a joint copy.

    A feature that is constant over the training clips (a frozen-frame share that is 0 in
    every training video, say) gets a huge std, which switches it off: no weight for it is
    ever trained, and with the usual tiny std floor the first test video where it moves
    would be scaled up a million times and send the score anywhere.
    """
    total = sum(v.features.shape[0] for v in train.values())
    dim = next(iter(train.values())).features.shape[1]
    s = np.zeros(dim)
    for v in train.values():
        s += v.features.sum(axis=0, dtype=np.float64)
    mean = s / total
    ss = np.zeros(dim)
    for v in train.values():
        for start in range(0, v.features.shape[0], 65536):
            block = v.features[start : start + 65536].astype(np.float64) - mean
            ss += (block * block).sum(axis=0)
    std = np.sqrt(ss / max(total - 1, 1))
    std[std <= 1e-6 * (1.0 + np.abs(mean))] = CONSTANT_FEATURE_STD
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))


class _Cycler:
    """Endless reshuffled passes over 0..n-1, `take(k)` at a time."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng = n, rng
        self.order = rng.permutation(n)
        self.pos = 0

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if self.pos >= self.n:
                self.order, self.pos = self.rng.permutation(self.n), 0
            step = min(k, self.n - self.pos)
            out.append(self.order[self.pos : self.pos + step])
            self.pos += step
            k -= step
        return np.concatenate(out)


def fit_multihead(
    train: Mapping[str, VideoSet],
    val: Mapping[str, VideoSet],
    config: TrainSection,
    primary: str | None = None,
    log: Callable[[str], None] | None = None,
) -> MultiHeadResult:
    """Train a trunk with one head per dataset (or one shared head) on balanced batches."""
    if not train:
        raise ConfigError("nothing to train on: no dataset has training videos")
    dims = {v.features.shape[1] for v in train.values()} | {v.features.shape[1] for v in val.values()}
    if len(dims) != 1:
        raise ConfigError(f"datasets have different feature widths {sorted(dims)}: extract them with one feature setting")
    names = list(train)
    heads = (SHARED_HEAD,) if config.shared_head else tuple(names)
    primary = SHARED_HEAD if config.shared_head else (primary or names[0])
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = PredictionNetwork(HeadConfig(in_dim=dims.pop(), hidden=config.hidden, dropout=config.dropout,
                                           heads=heads, primary=primary))
    network.set_normalisation(*_normalisation(train))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    tensors = {n: torch.from_numpy(np.ascontiguousarray(v.features, dtype=np.float32)) for n, v in train.items()}
    targets = {n: torch.from_numpy((v.target / 100.0).astype(np.float32)) for n, v in train.items()}
    cyclers = {n: _Cycler(len(v), rng) for n, v in train.items()}
    per_batch = {n: min(config.videos_per_dataset, len(v)) for n, v in train.items()}
    steps = max(1, math.ceil(max(len(v) for v in train.values()) / config.videos_per_dataset))
    base_loss = nn.functional.l1_loss if config.loss == "l1" else nn.functional.mse_loss
    corr_loss = {"plcc": plcc_loss, "rank": rank_loss}.get(config.correlation_loss)
    watched = {n: v for n, v in val.items() if len(v) >= 3}
    if not watched:
        raise ConfigError("early stopping needs at least 3 validation videos in some dataset (raise val_fraction)")

    best_state = {k: v.clone() for k, v in network.state_dict().items()}
    best = (-2.0, 0, {})
    history: list[dict[str, float]] = []
    for epoch in range(config.epochs):
        network.train()
        losses = []
        for _ in range(steps):
            parts, owners, counts, ys, sizes = [], [], [], [], []
            for n in names:
                idx = cyclers[n].take(per_batch[n])
                v = train[n]
                parts.append(tensors[n][torch.from_numpy(clip_rows(v.start, v.count, idx))])
                owners.append(torch.from_numpy(np.repeat(np.arange(len(idx)), v.count[idx])))
                counts.append(torch.from_numpy(v.count[idx].astype(np.float32)))
                ys.append(targets[n][torch.from_numpy(idx)])
                sizes.append(parts[-1].shape[0])
            z = network.embed(torch.cat(parts))
            video_preds = []
            for n, zpart, owner, count in zip(names, torch.split(z, sizes), owners, counts):
                clip = network.heads[head_of(n, config)](zpart).squeeze(-1)  # 0-1 scale
                video_preds.append(torch.zeros(len(count)).index_add_(0, owner, clip) / count)
            loss = base_loss(torch.cat(video_preds), torch.cat(ys))
            if corr_loss is not None and config.correlation_weight > 0:
                corr = torch.stack([corr_loss(p, y) for p, y in zip(video_preds, ys) if len(y) >= 2]).mean()
                loss = loss + config.correlation_weight * corr
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        per_dataset = {n: srocc(predict_videos(network, v, head_of(n, config)), v.target) for n, v in watched.items()}
        finite = [s for s in per_dataset.values() if np.isfinite(s)]
        score = float(np.mean(finite)) if finite else float("nan")
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_srocc": score,
                        **{f"val_srocc_{n}": float(s) for n, s in per_dataset.items()}})
        if log is not None and (epoch % 10 == 0 or epoch == config.epochs - 1):
            shown = ", ".join(f"{n} {s:.3f}" for n, s in per_dataset.items())
            log(f"epoch {epoch:3d} loss {np.mean(losses):.4f} val SROCC {score:.4f} ({shown})")
        if np.isfinite(score) and score > best[0] + 1e-4:
            best = (score, epoch, per_dataset)
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
        elif epoch - best[1] >= config.patience:
            if log is not None:
                log(f"early stop at epoch {epoch}: no better validation SROCC for {config.patience} epochs")
            break
    network.load_state_dict(best_state)
    network.eval()
    return MultiHeadResult(network, best[1], best[0], {k: float(v) for k, v in best[2].items()}, history)
