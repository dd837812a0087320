"""Fitting a fine-grained network on cached clip features of a synthetic corpus
(experiment/synthetic.py, the default model's recipe).

Backbones are frozen and their features cached (data/synth.py), so training is a small problem:
clip feature vectors -> six dimension targets and twelve distortion labels. Model selection
watches *video* figures (means of clip predictions) on validation sources, because video ranking
is what the model is for. Multi-dataset training on MOS, with per-dataset heads and balanced
batches, lives in experiment/multihead.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .heads import HeadConfig, Part, PredictionNetwork
from .metrics import srocc


def video_means(values: np.ndarray, owner: np.ndarray, n_videos: int) -> np.ndarray:
    """Mean of clip values per video (owner[i] is the video of clip i)."""
    sums = np.bincount(owner, weights=values, minlength=n_videos)
    counts = np.bincount(owner, minlength=n_videos)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _reindex(owner: np.ndarray) -> np.ndarray:
    """Map video indices to 0..k-1 in sorted order (so means line up with sorted targets)."""
    _, inverse = np.unique(owner, return_inverse=True)
    return inverse


@dataclass
class FineFit:
    network: PredictionNetwork
    val: dict[str, float]  # validation figures of the chosen setting
    setting: dict[str, float | tuple]  # the chosen hidden widths, weight decay, epochs
    history: list[dict] = field(default_factory=list)  # every setting tried


def fit_logit_calibration(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-type Platt scaling (`heads.PlattScaling.fitted`, a network part): the scale and
    shift that make sigmoid(scale * logit + shift) the probability of each type [clips, types].

    The logits must be out-of-fold, each predicted by a head that never saw the clip's source:
    on its own training clips a head is far surer than it has a right to be on new content. A
    type without both outcomes among the clips, or whose logits do not rank it at all, keeps
    the identity map.
    """
    from sklearn.linear_model import LogisticRegression

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels).astype(bool)
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be [clips, types]")
    scale, shift = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    for j in range(logits.shape[1]):
        ok = np.isfinite(logits[:, j])
        y = labels[ok, j]
        if y.all() or not y.any():
            continue
        fit = LogisticRegression(C=1e4).fit(logits[ok, j, None], y)
        if fit.coef_[0, 0] > 0:
            scale[j], shift[j] = fit.coef_[0, 0], fit.intercept_[0]
    return scale, shift


def pooled_probabilities(probs: np.ndarray, owner: np.ndarray, n_videos: int) -> np.ndarray:
    """Video-level probabilities [videos, types] from clip ones, pooled as the model pools them."""
    from .model import pool_clip_probabilities

    out = np.zeros((n_videos, probs.shape[1]))
    for v in range(n_videos):
        rows = probs[owner == v]
        if len(rows):
            out[v] = [pool_clip_probabilities(rows[:, j]) for j in range(probs.shape[1])]
    return out


@torch.no_grad()
def predict_fine(network: PredictionNetwork, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip dimension scores [clips, dims] (0-100) and distortion probabilities [clips, types]."""
    network.eval()
    out = network(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    dims = np.stack([out[d].numpy() for d in network.config.heads], axis=1).astype(np.float64)
    probs = np.stack([out["p:" + t].numpy() for t in network.config.distortions], axis=1).astype(np.float64)
    return dims, probs


def video_predictions(network, features, owner, n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """Video dimension scores [videos, dims] (the mean of their clips') and video probabilities
    [videos, types] (pooled as the model pools them), from clip features and their owners."""
    dims, probs = predict_fine(network, features)
    vd = np.stack([video_means(dims[:, k], owner, n_videos) for k in range(dims.shape[1])], axis=1)
    return vd, pooled_probabilities(probs, owner, n_videos)


def fine_figures(vd, vp, video_dims, video_presence, heads, distortions) -> dict[str, float]:
    """SROCC per dimension, ROC AUC per type, and their means, from video predictions."""
    from .metrics import roc_auc

    out: dict[str, float] = {}
    for k, name in enumerate(heads):
        out[f"srocc_{name}"] = srocc(vd[:, k], video_dims[:, k])
    for j, name in enumerate(distortions):
        out[f"auc_{name}"] = roc_auc(vp[:, j], video_presence[:, j])
    out["mean_srocc"] = float(np.nanmean([out[f"srocc_{d}"] for d in heads]))
    out["mean_auc"] = float(np.nanmean([out[f"auc_{t}"] for t in distortions]))
    out["min_srocc"] = float(np.nanmin([out[f"srocc_{d}"] for d in heads]))
    return out


def fine_scores(network, features, owner, video_dims, video_presence) -> dict[str, float]:
    """Video-level figures of `network` on clip features: `fine_figures` of its predictions."""
    vd, vp = video_predictions(network, features, owner, len(video_dims))
    return fine_figures(vd, vp, video_dims, video_presence, network.config.heads, network.config.distortions)


def fit_fine(
    features: np.ndarray,
    dims: np.ndarray,
    presence: np.ndarray,
    owner: np.ndarray,
    video_dims: np.ndarray,
    video_presence: np.ndarray,
    train_videos: np.ndarray,
    val_videos: np.ndarray,
    dimensions: tuple[str, ...],
    distortions: tuple[str, ...],
    settings: tuple[dict, ...] = (
        {"hidden": (256,), "weight_decay": 1e-2},
        {"hidden": (512,), "weight_decay": 1e-1},
    ),
    max_epochs: int = 120,
    epochs: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> FineFit:
    """Six dimension heads and a twelve-way multi-label head over one trunk, trained together.

    Unlike the first model's single regression, detection needs interactions (a blurred
    *and* dark frame is not the sum of the two), so a one-hidden-layer trunk is among the
    settings tried; each setting trains with AdamW, mean squared error on the dimension scores
    (0-1) plus binary cross-entropy on each clip's share of distorted frames, and keeps the
    epoch with the best validation figure: mean dimension SROCC + mean type AUC, on videos of
    sources it never trained on. With `epochs`, it trains exactly that long instead (a count
    chosen by cross-validation) and the validation videos only report.
    """
    train_clip = np.isin(owner, train_videos)
    val_clip = np.isin(owner, val_videos)
    val_owner = _reindex(owner[val_clip])
    val_order = np.sort(val_videos)
    x_all = torch.from_numpy(features.astype(np.float32))
    x, yd, yp = x_all[train_clip], torch.from_numpy(dims[train_clip] / 100.0).float(), torch.from_numpy(presence[train_clip]).float()
    history: list[dict] = []
    best: tuple[float, PredictionNetwork, dict, dict] | None = None
    for setting in settings:
        torch.manual_seed(seed)
        config = HeadConfig(in_dim=features.shape[1], hidden=tuple(setting["hidden"]), dropout=0.2,
                            heads=tuple(dimensions), primary="overall", distortions=tuple(distortions),
                            parts=(Part("detection_gate"),) if setting.get("gate", True) else ())
        network = PredictionNetwork(config)
        network.set_normalisation(x.mean(dim=0), x.std(dim=0))
        opt = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=float(setting["weight_decay"]))
        gen = torch.Generator().manual_seed(seed)
        run_best: tuple[float, dict, dict, int] | None = None
        stale = 0
        for epoch in range(epochs if epochs is not None else max_epochs):
            network.train()
            for batch in torch.randperm(len(x), generator=gen).split(256):
                z = network.embed(x[batch])
                pred_d = torch.cat([network.heads[d](z) for d in dimensions], dim=1)
                loss = torch.nn.functional.mse_loss(pred_d, yd[batch]) * 10.0
                loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                    network.distortion_logits(z), yp[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epochs is not None and epoch < epochs - 1:
                continue
            if epochs is None and epoch % 2:
                continue
            figures = fine_scores(network, features[val_clip], val_owner, video_dims[val_order],
                                  video_presence[val_order])
            value = figures["mean_srocc"] + figures["mean_auc"]
            if run_best is None or value > run_best[0] + 1e-4:
                run_best = (value, {k: v.detach().clone() for k, v in network.state_dict().items()}, figures, epoch)
                stale = 0
            else:
                stale += 1
                if stale >= 10:
                    break
        assert run_best is not None
        network.load_state_dict(run_best[1])
        record = {"hidden": list(setting["hidden"]), "weight_decay": setting["weight_decay"],
                  "gate": config.has("detection_gate"),
                  "epoch": run_best[3], **{k: round(v, 4) for k, v in run_best[2].items()}}
        history.append(record)
        if log is not None:
            log(f"fine heads {setting}: epoch {run_best[3]}, val mean SROCC {run_best[2]['mean_srocc']:.4f}, "
                f"mean AUC {run_best[2]['mean_auc']:.4f}")
        if best is None or run_best[0] > best[0]:
            best = (run_best[0], network, run_best[2], record)
    assert best is not None
    best[1].eval()
    return FineFit(best[1], val=best[2], setting=best[3], history=history)
