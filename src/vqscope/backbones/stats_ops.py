"""Shared operations of the statistics backbones, written for one CPU thread.

The statistics run one frame at a time: a 384x384 plane (590 kB in float32) stays in the
CPU cache through the dozen passes a frame needs, where a batch of eight would stream every
pass from memory (measured: about 1.5x slower). Histograms, quantiles and medians of 8-bit
planes count integer codes (`torch.bincount`) instead of sorting or calling `torch.histc`,
which is several times slower; both give the same values for 8-bit input.
"""

from __future__ import annotations

import torch
from torch import nn


def codes(plane: torch.Tensor) -> torch.Tensor:
    """The 8-bit codes (int64) of a plane normalised to [0, 1] as code / 255 (or of any
    non-negative plane of multiples of 1/255)."""
    return plane.mul(255.0).add_(0.5).long()  # values are never negative: truncation rounds


def code_histogram(plane_codes: torch.Tensor, bins: int = 256, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Count (or sum `weights`) per code, float64."""
    w = None if weights is None else weights.flatten()
    return torch.bincount(plane_codes.flatten(), weights=w, minlength=bins).double()


def share(mask: torch.Tensor) -> torch.Tensor:
    """The share of true elements (float32), without converting the mask to floats."""
    return torch.count_nonzero(mask).float() / max(1, mask.numel())


def quantile_bins(hist: torch.Tensor, qs: tuple[float, ...]) -> torch.Tensor:
    """For each q, the first bin whose cumulative share reaches q (for 8-bit codes: the code)."""
    cdf = (hist.cumsum(0) / hist.sum().clamp(min=1)).float()
    return torch.searchsorted(cdf, torch.tensor(qs, dtype=cdf.dtype)).clamp(max=hist.numel() - 1)


def histogram_quantiles(hist: torch.Tensor, qs: tuple[float, ...], top: float) -> torch.Tensor:
    """Quantiles from a histogram of `len(hist)` equal bins over [0, top]: each the centre of
    the first bin whose cumulative share reaches q (float32)."""
    return (quantile_bins(hist, qs).float() + 0.5) * (top / hist.numel())


def lower_median_code(hist: torch.Tensor) -> int:
    """The code of the lower middle element (what `torch.median` returns) from code counts."""
    n = int(hist.sum().item())
    cum = hist.cumsum(0)
    return int(torch.searchsorted(cum, torch.tensor([float((n - 1) // 2 + 1)], dtype=cum.dtype)).item())


def laplacian(y: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of the last two dimensions (valid region), by shifted slices:
    single-channel convolutions are slow on CPU, slices are memory-bound and fast."""
    c = y[..., 1:-1, 1:-1]
    return y[..., :-2, 1:-1] + y[..., 2:, 1:-1] + y[..., 1:-1, :-2] + y[..., 1:-1, 2:] - 4 * c


def half_scale(y: torch.Tensor, min_side: int) -> torch.Tensor:
    """2x2 mean of a 2-D plane, or the plane itself where a side is under `min_side`."""
    if min(y.shape[-2:]) < min_side:
        return y
    return torch.nn.functional.avg_pool2d(y[None, None], 2)[0, 0]


def mean_var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance in two plain passes (torch.var and torch.var_mean are
    several times slower on one thread)."""
    mean = x.mean()
    return mean, (x - mean).square_().mean()


class PerItemStatistics(nn.Module):
    """A statistics backbone that works on one item of the batch (a frame, or a window of
    frames) at a time, for the cache reason above. Subclasses name their `feature_names` and
    compute one item's features in `_one(item) -> [features]`."""

    feature_names: tuple[str, ...] = ()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(item) for item in x.float()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def _one(self, item: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
