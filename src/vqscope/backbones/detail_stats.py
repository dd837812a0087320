"""Detail statistics: what tells the twelve distortion types apart in one key frame.

`frame_stats` says how sharp, noisy, blocky and bright a frame is; telling *which* kind of
damage it carries needs a few more textbook measures, at the same native-resolution crop:
- tone: luma percentiles (under- and overexposure move the whole distribution, a dark scene
  keeps its highlights);
- white balance: the chroma of the brightest and darkest pixels (highlights of a correctly
  balanced picture are close to neutral, a cast tints them; the grey-world and white-patch
  assumptions), and how saturated the most saturated pixels are;
- colour cast: the chroma of the least saturated pixels and the median chroma (a tint leaves
  no pixel neutral; a colourful scene still has near-grey ones);
- direction of blur: gradient energy along four directions, and along each the ratio of fine
  to coarse gradients (motion blur removes fine detail along one direction, defocus along all;
  the ratio cancels most of the content's own anisotropy);
- detail across scales: Laplacian energy at 1x, 2x and 4x (blur and upscaling remove the fine
  scales first; oversharpening inflates them);
- halos: the tail of the Laplacian distribution (oversharpening makes rare, strong spikes);
- flat runs: the share of exactly equal neighbours (mosaic makes flat squares, noise makes none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import BackboneSpec, FrameInput, register

_EPS = 1e-4

FEATURE_NAMES = (
    "luma_p01",
    "luma_p10",
    "luma_p50",
    "luma_p90",
    "luma_p99",
    "highlight_cb",
    "highlight_cr",
    "shadow_cb",
    "shadow_cr",
    "chroma_p10",
    "chroma_p25",
    "chroma_p50",
    "chroma_p99",
    "median_cb",
    "median_cr",
    "log_grad_h",
    "log_grad_v",
    "log_grad_d1",
    "log_grad_d2",
    "log_grad_anisotropy",
    "log_fine_coarse_h",
    "log_fine_coarse_v",
    "log_fine_coarse_d1",
    "log_fine_coarse_d2",
    "fine_coarse_spread",
    "log_lap_1",
    "log_lap_2",
    "log_lap_4",
    "lap_kurtosis",
    "lap_spike_share",
    "flat_h",
    "flat_v",
)


def _quantiles(x: torch.Tensor, qs: tuple[float, ...], bins: int, top: float) -> torch.Tensor:
    """Quantiles of x in [0, top] from a histogram: exact for 8-bit luma at 256 bins, and
    several times faster than sorting (torch.quantile) a crop's worth of pixels."""
    hist = torch.histc(x.flatten(), bins=bins, min=0.0, max=top)
    cdf = hist.cumsum(0) / hist.sum().clamp(min=1)
    idx = torch.searchsorted(cdf, torch.tensor(qs, dtype=cdf.dtype)).clamp(max=bins - 1)
    return (idx.to(x.dtype) + 0.5) * (top / bins)


def _directional(y: torch.Tensor) -> torch.Tensor:
    """Mean absolute gradient along horizontal, vertical and both diagonals (per unit length)."""
    gh = (y[:, 1:] - y[:, :-1]).abs().mean()
    gv = (y[1:, :] - y[:-1, :]).abs().mean()
    gd1 = (y[1:, 1:] - y[:-1, :-1]).abs().mean() / 1.4142
    gd2 = (y[1:, :-1] - y[:-1, 1:]).abs().mean() / 1.4142
    return torch.stack([gh, gv, gd1, gd2])


def _lap_abs(y: torch.Tensor) -> torch.Tensor:
    c = y[:, :, 1:-1, 1:-1]
    lap = y[:, :, :-2, 1:-1] + y[:, :, 2:, 1:-1] + y[:, :, 1:-1, :-2] + y[:, :, 1:-1, 2:] - 4 * c
    return lap


class DetailStats(nn.Module):
    """features(x): x [N, 3, H, W] full-range YUV in [0, 1] at native resolution -> [N, 32]."""

    feature_names = FEATURE_NAMES

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(f) for f in x.float()])

    forward = features

    def _one(self, f: torch.Tensor) -> torch.Tensor:
        y, cb, cr = f[0], f[1] - 0.5, f[2] - 0.5
        q = _quantiles(y, (0.01, 0.10, 0.50, 0.90, 0.99), bins=256, top=1.0)
        hi, lo = y >= q[3], y <= q[1]
        cq = _quantiles(torch.sqrt(cb * cb + cr * cr), (0.10, 0.25, 0.5, 0.99), bins=512, top=0.75)

        grads = torch.log(_directional(y) + _EPS)
        y4 = y[None, None]
        coarse = F.avg_pool2d(y4, 2)[0, 0] if min(y.shape) >= 12 else y
        # At half resolution a gradient spans two pixels: halve it to compare like with like.
        fine_coarse = grads - torch.log(_directional(coarse) / 2 + _EPS)

        lap1 = _lap_abs(y4)
        half = F.avg_pool2d(y4, 2) if min(y.shape) >= 12 else y4
        quarter = F.avg_pool2d(half, 2) if min(half.shape[-2:]) >= 12 else half
        l1, l2, l4 = (_lap_abs(t).abs().mean() for t in (y4, half, quarter))
        var = lap1.var(unbiased=False)
        kurt = ((lap1 - lap1.mean()) ** 4).mean() / (var * var + 1e-12)
        spikes = (lap1.abs() > 4 * l1 + _EPS).float().mean()
        step = 0.5 / 255.0
        flat_h = ((y[:, 1:] - y[:, :-1]).abs() < step).float().mean()
        flat_v = ((y[1:, :] - y[:-1, :]).abs() < step).float().mean()

        feats = [
            *q,
            cb[hi].mean() if hi.any() else torch.zeros(()),
            cr[hi].mean() if hi.any() else torch.zeros(()),
            cb[lo].mean() if lo.any() else torch.zeros(()),
            cr[lo].mean() if lo.any() else torch.zeros(()),
            *cq,
            cb.median(),
            cr.median(),
            *grads,
            grads.max() - grads.min(),
            *fine_coarse,
            fine_coarse.max() - fine_coarse.min(),
            torch.log(l1 + _EPS),
            torch.log(l2 + _EPS),
            torch.log(l4 + _EPS),
            torch.log(kurt + 1.0),
            spikes,
            flat_h,
            flat_v,
        ]
        return torch.stack([t.float() for t in feats])


def detail_stats() -> DetailStats:
    return DetailStats().eval()


register(
    BackboneSpec(
        name="detail_stats",
        role="spatial",
        builder=detail_stats,
        # The same native-resolution crop as frame_stats: the decoder's planes, no resampling.
        frame_input=FrameInput(color="yuv", short_side=None, crop=384),
        feature_dim=len(FEATURE_NAMES),
        description="Tone, white balance, blur direction, detail across scales, halos and flat runs "
                    "of the key frame at native resolution; no weights",
    )
)
