"""Frame statistics: classical no-reference measures of the key frame at native resolution.

An ImageNet network sees the key frame shrunk to 224 pixels, where fine compression
blocking, sensor noise and the softness of an upscaled video are largely gone. These
statistics look at a centred crop at the video's own resolution, so they see those
distortions where a viewer sees them, at almost no cost. Each is a textbook measure:
Laplacian sharpness, a detail ratio that exposes upscaling, 8x8 blockiness, Immerkaer's noise
estimate, exposure clipping, luma entropy, and chroma strength, colourfulness (Hasler and
Suesstrunk's measure, in the Cb/Cr plane) and colour cast. The input is the decoder's own
YUV planes, cropped, so no colour conversion is paid at native resolution.
"""

from __future__ import annotations

import math

import torch

from .registry import BackboneSpec, FrameInput, register
from .stats_ops import PerItemStatistics, code_histogram, codes, half_scale, laplacian, lower_median_code, mean_var

_EPS = 1e-4

FEATURE_NAMES = (
    "log_laplacian_abs",
    "log_laplacian_var",
    "detail_ratio",
    "log_coarse_detail",
    "blockiness_h",
    "blockiness_v",
    "log_noise_mean",
    "log_noise_median",
    "luma_mean",
    "luma_std",
    "dark_clip",
    "bright_clip",
    "luma_entropy",
    "chroma_mean",
    "colorfulness",
    "cast_cb",
    "cast_cr",
    "log_gradient_mean",
)


def _immerkaer(y: torch.Tensor) -> torch.Tensor:
    """Immerkaer (1996) noise operator [[1,-2,1],[-2,4,-2],[1,-2,1]]: the separable product of
    two second differences, which cancels image structure up to second order."""
    d2x = y[:, :-2] - 2 * y[:, 1:-1] + y[:, 2:]
    return d2x[:-2] - 2 * d2x[1:-1] + d2x[2:]


def _blockiness(g: torch.Tensor) -> torch.Tensor:
    """Mean |gradient| across 8-pixel block borders over the mean elsewhere (1 = no blocks),
    from the mean |gradient| of each column (or row) of the gradient map."""
    idx = torch.arange(g.numel())
    border, inner = idx % 8 == 7, idx % 8 != 7
    if not border.any() or not inner.any():
        return torch.ones(())
    return g[border].mean() / (g[inner].mean() + _EPS)


# Code k of the luma plane is the value k / 255 (float64 for the moments).
_CODE_VALUES = torch.arange(256, dtype=torch.float64) / 255.0
# 32-bin luma histogram (entropy) from the 256 codes: code k falls in bin floor(32 k / 255),
# the last bin closed, as torch.histc(bins=32, min=0, max=1) puts it.
_ENTROPY_BIN = (torch.arange(256) / 255.0 * 32).floor().long().clamp(max=31)


class FrameStats(PerItemStatistics):
    """features(x): x [N, 3, H, W] full-range YUV in [0, 1] at native resolution -> [N, 18]."""

    feature_names = FEATURE_NAMES

    def _one(self, f: torch.Tensor) -> torch.Tensor:
        y = f[0].contiguous()
        cb, cr = f[1] - 0.5, f[2] - 0.5

        lap = laplacian(y)
        lap_abs = lap.abs().mean()
        _, lap_var = mean_var(lap)
        # Detail at native scale over detail at half scale: low where the picture was
        # upscaled or blurred, whatever its content.
        half = half_scale(y, 8)
        coarse = laplacian(half).abs().mean() if min(half.shape) >= 3 else lap_abs
        gx, gy = y.diff(dim=1), y.diff(dim=0)
        grad = torch.sqrt(gx[:-1].square() + gy[:, :-1].square()).mean()
        block_h = _blockiness(gx.abs().mean(dim=0))
        block_v = _blockiness(gy.abs().mean(dim=1))

        imm = _immerkaer(y).abs()
        noise_mean = imm.mean() * math.sqrt(math.pi / 2) / 6.0
        sub = imm[::2, ::2]
        # Immerkaer values of 8-bit input are integers / 255 (0..4080): count them.
        median = lower_median_code(code_histogram(codes(sub), bins=4081)) / 255.0
        noise_median = torch.tensor(median * 1.4826 / 6.0)

        hist = code_histogram(codes(y))
        n = hist.sum().clamp(min=1)
        y_mean = (hist * _CODE_VALUES).sum() / n
        y_var = (hist * (_CODE_VALUES - y_mean).square()).sum() / n
        p = torch.zeros(32, dtype=torch.float64).index_add_(0, _ENTROPY_BIN, hist) / n
        entropy = -(p * torch.log2(p.clamp(min=1e-12))).sum() / 5.0

        chroma = torch.sqrt(cb.square() + cr.square()).mean()
        cb_mean, cb_var = mean_var(cb)
        cr_mean, cr_var = mean_var(cr)
        colorfulness = torch.sqrt(cb_var + cr_var) + 0.3 * torch.sqrt(cb_mean**2 + cr_mean**2)

        feats = [
            torch.log(lap_abs + _EPS),
            torch.log(lap_var + _EPS),
            lap_abs / (coarse + _EPS),
            torch.log(coarse + _EPS),
            block_h,
            block_v,
            torch.log(noise_mean + _EPS),
            torch.log(noise_median + _EPS),
            y_mean,
            torch.sqrt(y_var),
            hist[:11].sum() / n,  # y < 0.04: codes 0-10
            hist[245:].sum() / n,  # y > 0.96: codes 245-255
            entropy,
            chroma,
            colorfulness,
            cb_mean,
            cr_mean,
            torch.log(grad + _EPS),
        ]
        return torch.stack([t.float() for t in feats])


def frame_stats() -> FrameStats:
    return FrameStats().eval()


register(
    BackboneSpec(
        name="frame_stats",
        role="spatial",
        builder=frame_stats,
        # Native resolution, centred 384x384 crop (aligned to the 8x8 block grid by the
        # feature stage so blockiness measures real block borders).
        frame_input=FrameInput(color="yuv", short_side=None, crop=384),
        feature_dim=len(FEATURE_NAMES),
        description="Classical no-reference statistics of the key frame at native resolution; no weights",
    )
)
