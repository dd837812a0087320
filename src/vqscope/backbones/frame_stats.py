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
import torch.nn.functional as F
from torch import nn

from .registry import BackboneSpec, FrameInput, register

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


def _mean_var(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance in two plain passes (torch.var_mean is slower on one thread)."""
    mean = x.mean(dim=dims, keepdim=True)
    return mean.flatten(), (x - mean).square().mean(dim=dims)


def _laplacian(y: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of [N, 1, H, W] (valid region), by shifted slices: single-channel
    convolutions are slow on CPU, slices are memory-bound and fast."""
    c = y[:, :, 1:-1, 1:-1]
    return y[:, :, :-2, 1:-1] + y[:, :, 2:, 1:-1] + y[:, :, 1:-1, :-2] + y[:, :, 1:-1, 2:] - 4 * c


def _immerkaer(y: torch.Tensor) -> torch.Tensor:
    """Immerkaer (1996) noise operator [[1,-2,1],[-2,4,-2],[1,-2,1]]: the separable product of
    two second differences, which cancels image structure up to second order."""
    d2x = y[:, :, :, :-2] - 2 * y[:, :, :, 1:-1] + y[:, :, :, 2:]
    return d2x[:, :, :-2] - 2 * d2x[:, :, 1:-1] + d2x[:, :, 2:]


def _blockiness(y: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean |gradient| across 8-pixel block borders over the mean elsewhere (1 = no blocks)."""
    g = y.diff(dim=dim).abs()
    idx = torch.arange(g.shape[dim], device=y.device)
    border, inner = idx[idx % 8 == 7], idx[idx % 8 != 7]
    if border.numel() == 0 or inner.numel() == 0:
        return torch.ones(y.shape[0], device=y.device)
    on = g.index_select(dim, border).mean(dim=(1, 2, 3))
    off = g.index_select(dim, inner).mean(dim=(1, 2, 3))
    return on / (off + _EPS)


class FrameStats(nn.Module):
    """features(x): x [N, 3, H, W] full-range YUV in [0, 1] at native resolution -> [N, 18]."""

    feature_names = FEATURE_NAMES

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        y = x[:, 0:1]
        cb, cr = x[:, 1:2] - 0.5, x[:, 2:3] - 0.5
        dims = (1, 2, 3)

        lap = _laplacian(y)
        lap_abs = lap.abs().mean(dim=dims)
        lap_var = lap.var(dim=dims, unbiased=False)
        # Detail at native scale over detail at half scale: low where the picture was
        # upscaled or blurred, whatever its content.
        half = F.avg_pool2d(y, 2) if min(y.shape[-2:]) >= 8 else y
        coarse = _laplacian(half).abs().mean(dim=dims) if min(half.shape[-2:]) >= 3 else lap_abs
        gx, gy = y.diff(dim=3)[:, :, :-1, :], y.diff(dim=2)[:, :, :, :-1]
        grad = torch.sqrt(gx * gx + gy * gy)

        imm = _immerkaer(y).abs()
        noise_mean = imm.mean(dim=dims) * math.sqrt(math.pi / 2) / 6.0
        noise_median = imm[:, :, ::2, ::2].flatten(1).median(dim=1).values * 1.4826 / 6.0

        hist = torch.stack([torch.histc(yi, bins=32, min=0.0, max=1.0) for yi in y])
        p = hist / hist.sum(dim=1, keepdim=True).clamp(min=1)
        entropy = -(p * torch.log2(p.clamp(min=1e-12))).sum(dim=1) / 5.0

        chroma = torch.sqrt(cb * cb + cr * cr).mean(dim=dims)
        cb_mean, cb_var = _mean_var(cb, dims)
        cr_mean, cr_var = _mean_var(cr, dims)
        colorfulness = torch.sqrt(cb_var + cr_var) + 0.3 * torch.sqrt(cb_mean**2 + cr_mean**2)
        y_mean, y_var = _mean_var(y, dims)

        feats = [
            torch.log(lap_abs + _EPS),
            torch.log(lap_var + _EPS),
            lap_abs / (coarse + _EPS),
            torch.log(coarse + _EPS),
            _blockiness(y, 3),
            _blockiness(y, 2),
            torch.log(noise_mean + _EPS),
            torch.log(noise_median + _EPS),
            y_mean,
            torch.sqrt(y_var),
            (y < 0.04).float().mean(dim=dims),
            (y > 0.96).float().mean(dim=dims),
            entropy,
            chroma,
            colorfulness,
            cb_mean,
            cr_mean,
            torch.log(grad.mean(dim=dims) + _EPS),
        ]
        return torch.stack(feats, dim=1)

    forward = features


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
