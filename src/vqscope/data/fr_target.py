"""Full-reference training targets: how far a distorted copy is from its own source.

Without human scores, each distorted copy of real footage gets a target computed against its
source, in two parts that a viewer perceives separately:

* spatial fidelity of every shown frame against the source frame it was made from: GMSD,
  the gradient magnitude similarity deviation of Xue, Zhang, Mou and Bovik (IEEE TIP 2014),
  at the source's display size (a copy kept at low resolution is upscaled first, as a player
  would). GMSD ranks blur, noise, compression and rescaling consistently against each other
  (it is among the best full-reference measures on the cross-distortion sets LIVE, CSIQ and
  TID2013), where MS-SSIM barely moves for a 6x downscale;
* temporal fidelity: how far the frame shown at each instant is from the frame that is due
  (mean absolute luma difference at 1/8 scale, source against source, so spatial damage does
  not count twice). Dropped frames cost in proportion to the motion they hide.

Both are mapped to 0-100 and combined multiplicatively per frame; a clip's target is the mean
over its frames. The mapping constants are design choices, chosen so that the grade bands
match what subjective studies report for the same distortions (for example x264 CRF 30 on
720p "good", CRF 40 "poor"; halving a 25 fps frame rate on moderate motion costs ~15 points).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..video import VideoReader

# GMSD -> score: 100 * exp(-gmsd / _GMSD_SCALE).
_GMSD_SCALE = 0.08
_GMSD_C = 0.0026  # stability constant of the paper, for intensities in [0, 1]
# Temporal displacement (mean |luma difference|, 0-255, at 1/8 scale) -> share of quality lost:
# 1 - exp(-mad / _MAD_SCALE).
_MAD_SCALE = 40.0


def luma_of_rgb(frames: Sequence[np.ndarray], chunk: int = 16) -> torch.Tensor:
    """RGB uint8 frames -> [N, 1, H/2, W/2] BT.601 luma (0-255), averaged over 2x2 blocks.

    GMSD works on the half-size picture (its authors' setting), so that is all we keep; a
    source is converted once and compared with all its distorted copies.
    """
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(np.stack(frames[i : i + chunk])).permute(0, 3, 1, 2).float()
        out.append(F.avg_pool2d((x * w).sum(dim=1, keepdim=True), 2))
    return torch.cat(out)


def luma_of_video(path: str, size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """Decoded luma of a video at display `size` (H, W) -> ([N, 1, H/2, W/2], frame times).

    Reads the decoder's Y plane (video range mapped to full range) instead of converting to
    RGB and back; a copy kept at low resolution is upscaled (bicubic) as a player would.
    """
    out, times = [], []
    h, w = size
    with VideoReader(path) as reader:
        for f in reader.frames():
            y = torch.from_numpy(f.luma().astype(np.float32))
            if not f.full_range:
                y = (y - 16.0) * (255.0 / 219.0)
            y = y[None, None]
            if tuple(y.shape[-2:]) != (h, w):
                y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
            out.append(F.avg_pool2d(y.clamp_(0, 255), 2))
            times.append(f.time_s)
    return torch.cat(out), np.asarray(times)


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Prewitt gradient magnitude of [N, 1, H, W] by shifted slices (valid region)."""
    dx = (x[:, :, :, :-2] - x[:, :, :, 2:]) / 3.0
    dx = dx[:, :, :-2] + dx[:, :, 1:-1] + dx[:, :, 2:]
    dy = (x[:, :, :-2, :] - x[:, :, 2:, :]) / 3.0
    dy = dy[:, :, :, :-2] + dy[:, :, :, 1:-1] + dy[:, :, :, 2:]
    return torch.sqrt(dx * dx + dy * dy)


def gmsd(reference_half: torch.Tensor, distorted_half: torch.Tensor) -> torch.Tensor:
    """GMSD per image of two [N, 1, H, W] half-size luma batches in 0-255 (0 = identical)."""
    gr = _gradient_magnitude(reference_half / 255.0)
    gd = _gradient_magnitude(distorted_half / 255.0)
    gms = (2 * gr * gd + _GMSD_C) / (gr * gr + gd * gd + _GMSD_C)
    return gms.flatten(1).std(dim=1, unbiased=False)


def spatial_score(gmsd_value: np.ndarray | float) -> np.ndarray:
    return 100.0 * np.exp(-np.asarray(gmsd_value, dtype=np.float64) / _GMSD_SCALE)


def temporal_keep(mad: np.ndarray | float) -> np.ndarray:
    """Share of quality kept (0-1) given the temporal displacement of the shown frame."""
    return np.exp(-np.asarray(mad, dtype=np.float64) / _MAD_SCALE)


def frame_targets(
    source_half: torch.Tensor,
    distorted_half: torch.Tensor,
    shown: Sequence[int] | None = None,
    chunk: int = 32,
) -> dict[str, np.ndarray]:
    """Per-frame spatial score, temporal share kept, and their product (the target).

    Inputs are half-size luma from `luma_of_rgb` / `luma_of_video`. `shown[i]` is the index
    of the source frame that distorted frame i was made from (identity where frames were
    not dropped or repeated).
    """
    n = source_half.shape[0]
    if distorted_half.shape[0] != n:
        raise ValueError(f"frame counts differ: source {n}, distorted {distorted_half.shape[0]}")
    shown_idx = torch.arange(n) if shown is None else torch.as_tensor(list(shown))
    spatial, displacement = [], []
    for i in range(0, n, chunk):
        sl = slice(i, min(n, i + chunk))
        ref_shown = source_half[shown_idx[sl]]
        spatial.append(gmsd(ref_shown, distorted_half[sl]))
        if bool((shown_idx[sl] != torch.arange(n)[sl]).any()):
            mad = (F.avg_pool2d(ref_shown, 4) - F.avg_pool2d(source_half[sl], 4)).abs().mean(dim=(1, 2, 3))
        else:
            mad = torch.zeros(ref_shown.shape[0])
        displacement.append(mad)
    g = torch.cat(spatial).numpy().astype(np.float64)
    mad = torch.cat(displacement).numpy().astype(np.float64)
    s = spatial_score(g)
    keep = temporal_keep(mad)
    return {"gmsd": g, "displacement": mad, "spatial": s, "temporal_keep": keep, "target": s * keep}
