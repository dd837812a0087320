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

from .registry import BackboneSpec, FrameInput, register
from .stats_ops import (PerItemStatistics, code_histogram, codes, half_scale, histogram_quantiles, laplacian,
                        lower_median_code, mean_var, share)

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


def _directional(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute gradient along horizontal, vertical and both diagonals (per unit length),
    and the share of horizontal and vertical neighbours that are exactly equal (flat runs)."""
    ah, av = y.diff(dim=1).abs_(), y.diff(dim=0).abs_()
    gd1 = (y[1:, 1:] - y[:-1, :-1]).abs_().mean() / 1.4142
    gd2 = (y[1:, :-1] - y[:-1, 1:]).abs_().mean() / 1.4142
    step = 0.5 / 255.0
    flat = torch.stack([share(ah < step), share(av < step)])
    return torch.stack([ah.mean(), av.mean(), gd1, gd2]), flat


# Code k of a plane in [0, 1] is the value k / 255; comparisons against thresholds are made
# on these values, as they were on the pixels.
_LEVELS = torch.arange(256, dtype=torch.float32) / 255.0


class DetailStats(PerItemStatistics):
    """features(x): x [N, 3, H, W] full-range YUV in [0, 1] at native resolution -> [N, 32]."""

    feature_names = FEATURE_NAMES

    def _one(self, f: torch.Tensor) -> torch.Tensor:
        y = f[0].contiguous()
        cb, cr = f[1] - 0.5, f[2] - 0.5
        y_codes = codes(y)
        hist = code_histogram(y_codes)
        q = histogram_quantiles(hist, (0.01, 0.10, 0.50, 0.90, 0.99), top=1.0)
        # Chroma of the highlights (luma >= p90) and shadows (<= p10): sums of Cb and Cr per
        # luma code, so one pass each serves both.
        cb_by_code = code_histogram(y_codes, weights=cb)
        cr_by_code = code_histogram(y_codes, weights=cr)
        hi, lo = _LEVELS >= q[3], _LEVELS <= q[1]

        def masked_mean(sums: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            count = hist[mask].sum()
            return sums[mask].sum() / count if count > 0 else torch.zeros((), dtype=sums.dtype)

        magnitude = torch.sqrt(cb.square() + cr.square())
        bins = (magnitude * (512 / 0.75)).long().clamp_(max=511)
        cq = histogram_quantiles(code_histogram(bins, bins=512), (0.10, 0.25, 0.5, 0.99), top=0.75)
        median_cb = _LEVELS[lower_median_code(code_histogram(codes(f[1])))] - 0.5
        median_cr = _LEVELS[lower_median_code(code_histogram(codes(f[2])))] - 0.5

        directional, flat = _directional(y)
        grads = torch.log(directional + _EPS)
        half = half_scale(y, 12)
        # At half resolution a gradient spans two pixels: halve it to compare like with like.
        fine_coarse = grads - torch.log(_directional(half)[0] / 2 + _EPS)

        lap1 = laplacian(y)
        quarter = half_scale(half, 12)
        lap_mean, var = mean_var(lap1)
        lap1_abs = lap1.abs()
        l1 = lap1_abs.mean()
        l2, l4 = laplacian(half).abs().mean(), laplacian(quarter).abs().mean()
        centred = (lap1 - lap_mean).square_()
        kurt = centred.square_().mean() / (var * var + 1e-12)
        spikes = share(lap1_abs > 4 * l1 + _EPS)

        feats = [
            *q,
            masked_mean(cb_by_code, hi),
            masked_mean(cr_by_code, hi),
            masked_mean(cb_by_code, lo),
            masked_mean(cr_by_code, lo),
            *cq,
            median_cb,
            median_cr,
            *grads,
            grads.max() - grads.min(),
            *fine_coarse,
            fine_coarse.max() - fine_coarse.min(),
            torch.log(l1 + _EPS),
            torch.log(l2 + _EPS),
            torch.log(l4 + _EPS),
            torch.log(kurt + 1.0),
            spikes,
            *flat,
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
