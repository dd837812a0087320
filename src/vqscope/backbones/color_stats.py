"""Colour statistics of the whole key frame: the colour constancy cues, at low resolution.

`frame_stats` and `detail_stats` look at a native-resolution crop at the centre, which is the
right place for sharpness and noise but a poor one for colour: a cast or a wrong exposure
shows in how the whole picture's colours relate, and a centre crop is often one object. These
statistics read the whole frame shrunk to 96 lines (colour needs no fine detail), in linear
and display RGB:
- grey world: the mean of each channel against green (a scene averages to grey; a cast does not);
- white patch and shadows: the colour of the brightest 2% and the darkest 5% of pixels
  (highlights reflect the illuminant, a tint colours the shadows);
- grey edge: mean gradient of each channel against green (edges average to grey even where
  the scene is colourful, the most robust of the classic estimators);
- saturation quantiles and the spread of R-G and B-G (washed-out and oversaturated colour);
- 1st, 50th and 99th percentiles of each channel (clipping and crushed shadows per channel).
"""

from __future__ import annotations

import torch

from .registry import BackboneSpec, FrameInput, register
from .stats_ops import PerItemStatistics, code_histogram, codes, histogram_quantiles, quantile_bins

_EPS = 1e-4
_GAMMA = 2.2
_LUMA = (0.299, 0.587, 0.114)

FEATURE_NAMES = (
    "log_grey_world_r",
    "log_grey_world_b",
    "log_grey_world_linear_r",
    "log_grey_world_linear_b",
    "log_white_patch_r",
    "log_white_patch_b",
    "shadow_r_minus_g",
    "shadow_b_minus_g",
    "log_grey_edge_r",
    "log_grey_edge_b",
    "saturation_p10",
    "saturation_p50",
    "saturation_p90",
    "saturation_p99",
    "spread_r_minus_g",
    "spread_b_minus_g",
    "red_p01",
    "red_p50",
    "red_p99",
    "green_p01",
    "green_p50",
    "green_p99",
    "blue_p01",
    "blue_p50",
    "blue_p99",
)


def _ratios(rgb_means: torch.Tensor) -> list[torch.Tensor]:
    """log(R/G) and log(B/G) of per-channel means (0 where all three are 0)."""
    g = rgb_means[1] + _EPS
    return [torch.log((rgb_means[0] + _EPS) / g), torch.log((rgb_means[2] + _EPS) / g)]


class ColorStats(PerItemStatistics):
    """features(x): x [N, 3, H, W] RGB in [0, 1] (the whole frame, small) -> [N, 25]."""

    feature_names = FEATURE_NAMES

    def _one(self, f: torch.Tensor) -> torch.Tensor:
        f = f.contiguous()
        pixels = f.flatten(1)  # [3, P]
        # Quantiles from 256-bin histograms (exact for 8-bit channels; a sort costs ten times more).
        luma_codes = codes((pixels * torch.tensor(_LUMA).view(3, 1)).sum(dim=0))
        luma_hist = code_histogram(luma_codes)
        dark_code, bright_code = quantile_bins(luma_hist, (0.05, 0.98)).tolist()
        bright = pixels[:, luma_codes >= bright_code]
        dark = pixels[:, luma_codes <= dark_code]
        high, low = pixels.max(dim=0).values, pixels.min(dim=0).values
        saturation = (high - low) / (high + _EPS)
        sat_bins = (saturation * 256).long().clamp_(max=255)
        gradients = (f[:, :, 1:] - f[:, :, :-1]).abs().flatten(1).mean(dim=1)
        dark_mean = dark.mean(dim=1)
        channel_codes = codes(pixels)
        feats = [
            *_ratios(pixels.mean(dim=1)),
            *_ratios(pixels.pow(_GAMMA).mean(dim=1)),
            *_ratios(bright.mean(dim=1)),
            dark_mean[0] - dark_mean[1],
            dark_mean[2] - dark_mean[1],
            *_ratios(gradients),
            *histogram_quantiles(code_histogram(sat_bins), (0.1, 0.5, 0.9, 0.99), top=1.0),
            (pixels[0] - pixels[1]).std(unbiased=False),
            (pixels[2] - pixels[1]).std(unbiased=False),
            *[q for c in range(3) for q in histogram_quantiles(code_histogram(channel_codes[c]), (0.01, 0.5, 0.99), top=1.0)],
        ]
        return torch.stack([t.float() for t in feats])


def color_stats() -> ColorStats:
    return ColorStats().eval()


register(
    BackboneSpec(
        name="color_stats",
        role="spatial",
        builder=color_stats,
        # The whole frame at 96 lines: colour cues need the whole picture, not its detail.
        frame_input=FrameInput(color="rgb", short_side=96, crop=None),
        feature_dim=len(FEATURE_NAMES),
        description="Colour constancy cues of the whole key frame at 96 lines (grey world, white patch, "
                    "grey edge, saturation, channel percentiles); no weights",
    )
)
