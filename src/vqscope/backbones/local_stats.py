"""Local statistics: noise measured where the picture is flattest.

`frame_stats` estimates noise with Immerkaer's operator over its whole crop (mean and median).
The operator cancels image structure only up to second order, so fine texture (foliage, gravel,
fabric) reads as noise, and a textured clean picture looks as noisy as a flat noisy one. Noise,
unlike texture, is everywhere: in the flattest parts of the picture the operator's response
is the noise alone. Over the 16x16 blocks of the same 384x384 native-resolution crop:
- luma: the 5th, 10th, 25th and 50th percentile of the blocks' mean Immerkaer response
  (scaled to a standard deviation, log); the flattest blocks give the noise, the median the
  texture it competes with, and their difference says which of the two the crop holds;
- chroma: the same for Cb and Cr together. Sensor noise is in every channel, while natural
  chroma is smooth (and the source was coded with subsampled chroma), so chroma noise in flat
  blocks is a second witness that texture cannot fake.
Cross-validated on the fine corpus (vqscope-lite@7's card): noise SROCC on the graded mixes
0.796 -> 0.812 with the boosted-tree heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .frame_stats import _immerkaer
from .registry import BackboneSpec, FrameInput, register
from .stats_ops import PerItemStatistics

_BLOCK = 16
_QUANTILES = torch.tensor([0.05, 0.10, 0.25, 0.50])
# Immerkaer's operator has gain 6 for unit Gaussian noise, and mean |N(0, s)| = s * sqrt(2 / pi).
_TO_SIGMA = math.sqrt(math.pi / 2) / 6.0
_EPS = 1e-4

FEATURE_NAMES = (
    "log_noise_flat_p5",
    "log_noise_flat_p10",
    "log_noise_flat_p25",
    "log_noise_block_median",
    "log_chroma_noise_flat_p10",
    "log_chroma_noise_flat_p25",
    "log_chroma_noise_block_median",
    "noise_flat_minus_median",
    "chroma_minus_luma_noise",
)


def _block_noise_quantiles(plane: torch.Tensor) -> torch.Tensor:
    """The 5/10/25/50th percentiles over 16x16 blocks of the block mean of |Immerkaer|, as sigma
    (the whole plane's mean where it holds no block)."""
    imm = _immerkaer(plane.contiguous()).abs() * _TO_SIGMA
    if min(imm.shape) < _BLOCK:
        return torch.full((len(_QUANTILES),), float(imm.mean()) if imm.numel() else 0.0)
    blocks = F.avg_pool2d(imm[None, None], _BLOCK)[0, 0].flatten()
    return torch.quantile(blocks, _QUANTILES)


class LocalStats(PerItemStatistics):
    """features(x): x [N, 3, H, W] full-range YUV in [0, 1] at native resolution -> [N, 9]."""

    feature_names = FEATURE_NAMES

    def _one(self, f: torch.Tensor) -> torch.Tensor:
        luma = torch.log(_block_noise_quantiles(f[0]) + _EPS)
        chroma = torch.log(0.5 * (_block_noise_quantiles(f[1]) + _block_noise_quantiles(f[2])) + _EPS)
        return torch.stack([luma[0], luma[1], luma[2], luma[3], chroma[1], chroma[2], chroma[3],
                            luma[1] - luma[3], chroma[1] - luma[1]]).float()


def local_stats() -> LocalStats:
    return LocalStats().eval()


register(
    BackboneSpec(
        name="local_stats",
        role="spatial",
        builder=local_stats,
        # The crop frame_stats and detail_stats read: one conversion serves all three.
        frame_input=FrameInput(color="yuv", short_side=None, crop=384),
        feature_dim=len(FEATURE_NAMES),
        description="Noise of the flattest 16x16 blocks of a native-resolution crop, in luma and chroma; "
                    "no weights",
    )
)
