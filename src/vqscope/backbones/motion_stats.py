"""Motion statistics: the offline default temporal branch, with no learned weights.

No Kinetics-pretrained video network installs offline, so the default temporal features are
measured instead of learned. Each statistic targets a temporal failure a viewer notices:
frozen or dropped frames (stutter), camera shake (jitter), brightness pumping (flicker), and
how much motion there is at all, which conditions how visible the others are. Everything is
computed on luma decimated to about 144 lines, in one vectorised pass per 32-frame window.
"""

from __future__ import annotations

import torch

from .registry import BackboneSpec, FrameInput, register
from .stats_ops import PerItemStatistics

# A frame is "frozen" when its mean absolute difference to the previous one is below this
# (in [0, 1] luma units): well under what sensor noise or compression leaves between two
# genuinely different frames, well above what an encoder leaves between two copies.
_FROZEN_DIFF = 0.6 / 255.0
_EPS = 1e-4
# Largest global shift searched between consecutive frames, as a share of the frame side.
_MAX_SHIFT_SHARE = 0.08

FEATURE_NAMES = (
    "log_diff_mean",
    "log_diff_median",
    "log_diff_max",
    "diff_cv",
    "frozen_share",
    "drop_share",
    "log_ti_mean",
    "log_ti_max",
    "flicker_hf",
    "flicker_abs",
    "motion_mean",
    "motion_max",
    "jitter",
    "jitter_ratio",
    "direction_changes",
    "log_residual_mean",
)


class MotionStats(PerItemStatistics):
    """features(x): x [N, T, H, W] luma in [0, 1] -> [N, 16]."""

    feature_names = FEATURE_NAMES

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] < 2:
            raise ValueError("motion_stats expects [N, T>=2, H, W] luma windows")
        return super().features(x)

    def _one(self, y: torch.Tensor) -> torch.Tensor:
        t, h, w = y.shape
        diff = (y[1:] - y[:-1]).flatten(1)
        # ITU-T P.910 TI: the standard deviation of each frame difference. Two plain passes,
        # in place: torch.var_mean is several times slower on one CPU thread.
        centred = diff - diff.mean(dim=1, keepdim=True)
        ti = centred.mul_(centred).mean(dim=1).sqrt()
        d = diff.abs_().mean(dim=1)  # [T-1] mean absolute frame difference
        d_mean = d.mean()
        frozen = (d < _FROZEN_DIFF).float().mean()
        # Dropped or repeated frames show as differences far below their neighbours'.
        moving = d_mean > 4 * _FROZEN_DIFF
        drop = ((d < 0.25 * d.median()).float().mean() if moving else torch.zeros(()))

        means = y.mean(dim=(1, 2))
        dm = means[1:] - means[:-1]
        flicker_hf = (dm[1:] - dm[:-1]).abs().mean() if dm.numel() > 1 else torch.zeros(())

        dx = _global_shift(y.mean(dim=1), max(1, int(_MAX_SHIFT_SHARE * w)))  # column profiles
        dy = _global_shift(y.mean(dim=2), max(1, int(_MAX_SHIFT_SHARE * h)))  # row profiles
        motion = torch.sqrt((dx / w) ** 2 + (dy / h) ** 2)
        accel = torch.sqrt(((dx[1:] - dx[:-1]) / w) ** 2 + ((dy[1:] - dy[:-1]) / h) ** 2)
        jitter = accel.mean() if accel.numel() else torch.zeros(())
        signs = torch.sign(dx[dx.abs() > 0.5])
        changes = (signs[1:] != signs[:-1]).float().mean() if signs.numel() > 1 else torch.zeros(())

        residual = _compensated_residual(y, dx, dy, d)
        feats = [
            torch.log(d_mean + _EPS),
            torch.log(d.median() + _EPS),
            torch.log(d.max() + _EPS),
            d.std(unbiased=False) / (d_mean + _EPS),
            frozen,
            drop,
            torch.log(ti.mean() + _EPS),
            torch.log(ti.max() + _EPS),
            flicker_hf * 100.0,
            dm.abs().mean() * 100.0,
            motion.mean() * 10.0,
            motion.max() * 10.0,
            jitter * 10.0,
            jitter / (motion.mean() + 1e-3),
            changes,
            torch.log(residual + _EPS),
        ]
        return torch.stack([f.float() for f in feats])


def _global_shift(profiles: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift (pixels) between consecutive 1-D intensity profiles [T, L] -> [T-1].

    Integral projections turn 2-D global motion estimation into two 1-D searches; the shift
    minimising the mean absolute difference of the overlapping parts wins.
    """
    a, b = profiles[:-1], profiles[1:]
    length = profiles.shape[1]
    max_shift = min(max_shift, length // 3)
    # Every shift at once: window j of the padded b is b moved by s = j - max_shift; the
    # mask keeps the overlapping part, whose mean is the cost.
    windows = torch.nn.functional.pad(b, (max_shift, max_shift)).unfold(1, length, 1)  # [T-1, S, L]
    pos = torch.arange(length)
    shifts = torch.arange(-max_shift, max_shift + 1)
    valid = ((pos[None] + shifts[:, None] >= 0) & (pos[None] + shifts[:, None] < length)).to(profiles.dtype)
    costs = ((a[:, None] - windows).abs_() * valid).sum(dim=2) / valid.sum(dim=1)
    return (costs.argmin(dim=1) - max_shift).float()


def _compensated_residual(y: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Mean frame difference left after undoing the global shift: local motion and noise.

    With frame i+1 shifted by (sx, sy), pixel (r, c) of frame i meets (r + sy, c + sx).
    Where no shift was found the residual is the plain frame difference `d[i]`.
    """
    t, h, w = y.shape
    res = []
    for i, (sx, sy) in enumerate(zip(dx.int().tolist(), dy.int().tolist())):
        if sx == 0 and sy == 0:
            res.append(d[i])
            continue
        r0, r1 = max(0, -sy), h - max(0, sy)
        c0, c1 = max(0, -sx), w - max(0, sx)
        a = y[i, r0:r1, c0:c1]
        b = y[i + 1, r0 + sy : r1 + sy, c0 + sx : c1 + sx]
        res.append((a - b).abs().mean())
    return torch.stack(res).mean()


def motion_stats() -> MotionStats:
    return MotionStats().eval()


register(
    BackboneSpec(
        name="motion_stats",
        role="temporal",
        builder=motion_stats,
        frame_input=FrameInput(color="luma", short_side=144, crop=None, decimate=True),
        feature_dim=len(FEATURE_NAMES),
        description="Motion statistics of a 32-frame window (stutter, jitter, flicker, motion); no weights",
    )
)
