"""Full-reference training targets: how far a distorted copy is from its own source.

Without human scores, each distorted copy of real footage gets a target computed against its
source, in two parts that a viewer perceives separately:

* spatial fidelity of every shown frame against the source frame it was made from: GMSD,
  the gradient magnitude similarity deviation of Xue, Zhang, Mou and Bovik (IEEE TIP 2014),
  at the source's display size (a copy kept at low resolution is upscaled first, as a player
  would). GMSD ranks blur, noise, compression and rescaling consistently against each other
  (it is among the best full-reference measures on the cross-distortion sets LIVE, CSIQ and
  TID2013), where MS-SSIM barely moves for a 6x downscale. Mapped as 100 * exp(-GMSD / 0.08);
* temporal fidelity where frames are dropped (shown for longer than one frame period): the
  frame-rate quality model of Ou, Ma and Wang (IEEE TCSVT 2011), NQT(f) = (1 - exp(-b f / 30))
  / (1 - exp(-b)), taken relative to the source's own frame rate, and weighted by how visible
  motion is in the source at that moment (a frozen frame over a static shot costs nothing):
  keep = 1 - w * (1 - NQT(f_shown) / NQT(f_source)), w = 1 - exp(-m / 15), with m the 99th
  percentile of the absolute luma change between consecutive source frames at quarter size,
  averaged over nine frames.

Per frame, target = spatial * keep; a clip's target is the mean over its frames. The constants
are design choices, chosen so that grade bands match what subjective studies report for the
same distortions (for example x264 CRF 30 on 720p "good", CRF 40 "poor"; 25 fps shown at 3 fps
with visible motion "poor").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..video import VideoReader

_GMSD_SCALE = 0.08  # GMSD -> score: 100 * exp(-gmsd / _GMSD_SCALE)
_GMSD_C = 0.0026  # stability constant of the paper, for intensities in [0, 1]
_FRAME_RATE_B = 4.0  # Ou et al.'s b: how fast quality falls with frame rate
_FRAME_RATE_MAX = 30.0
_MOTION_SCALE = 15.0  # 99th-percentile luma change (0-255) at which judder is 63 % visible
_MOTION_WINDOW = 9


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


def frame_rate_quality(fps: np.ndarray | float) -> np.ndarray:
    """Ou, Ma and Wang's normalised quality of a frame rate (1 at 30 fps)."""
    f = np.asarray(fps, dtype=np.float64)
    return (1 - np.exp(-_FRAME_RATE_B * f / _FRAME_RATE_MAX)) / (1 - np.exp(-_FRAME_RATE_B))


def motion_visibility(source_half: torch.Tensor) -> np.ndarray:
    """Per frame, 0-1: how visible motion is (99th-percentile luma change, quarter size)."""
    quarter = F.avg_pool2d(source_half, 2).flatten(1)
    if quarter.shape[0] < 2:
        return np.zeros(quarter.shape[0])
    change = (quarter[1:] - quarter[:-1]).abs().quantile(0.99, dim=1).numpy().astype(np.float64)
    change = np.concatenate([change[:1], change])
    kernel = np.ones(_MOTION_WINDOW) / _MOTION_WINDOW
    smooth = np.convolve(np.pad(change, _MOTION_WINDOW // 2, mode="edge"), kernel, mode="valid")
    return 1.0 - np.exp(-smooth / _MOTION_SCALE)


def hold_lengths(shown: Sequence[int]) -> np.ndarray:
    """For each frame, how many consecutive frames show the same source frame."""
    shown = list(shown)
    out = np.ones(len(shown))
    i = 0
    while i < len(shown):
        j = i
        while j + 1 < len(shown) and shown[j + 1] == shown[i]:
            j += 1
        out[i : j + 1] = j - i + 1
        i = j + 1
    return out


def frame_targets(
    source_half: torch.Tensor,
    distorted_half: torch.Tensor,
    shown: Sequence[int] | None = None,
    fps: float = 25.0,
    chunk: int = 32,
) -> dict[str, np.ndarray]:
    """Per-frame spatial score, temporal share kept, and their product (the target).

    Inputs are half-size luma from `luma_of_rgb` / `luma_of_video`. `shown[i]` is the index
    of the source frame that distorted frame i was made from (identity where frames were
    not dropped or repeated); `fps` is the source frame rate.
    """
    n = source_half.shape[0]
    if distorted_half.shape[0] != n:
        raise ValueError(f"frame counts differ: source {n}, distorted {distorted_half.shape[0]}")
    shown_idx = torch.arange(n) if shown is None else torch.as_tensor(list(shown))
    spatial = []
    for i in range(0, n, chunk):
        sl = slice(i, min(n, i + chunk))
        spatial.append(gmsd(source_half[shown_idx[sl]], distorted_half[sl]))
    g = torch.cat(spatial).numpy().astype(np.float64)
    s = spatial_score(g)
    holds = hold_lengths(shown_idx.tolist())
    if (holds > 1).any():
        visibility = motion_visibility(source_half)
        ratio = frame_rate_quality(fps / holds) / frame_rate_quality(fps)
        keep = 1.0 - visibility * (1.0 - np.minimum(ratio, 1.0))
    else:
        visibility = np.zeros(n)
        keep = np.ones(n)
    return {"gmsd": g, "spatial": s, "shown_fps": fps / holds, "motion_visibility": visibility,
            "temporal_keep": keep, "target": s * keep}
