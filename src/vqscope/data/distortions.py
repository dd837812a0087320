"""Graded synthetic distortions of real footage, for training without a public MOS set.

Each distortion type has ordered severity levels (level 0 is the mildest). A distortion
works on a list of RGB uint8 frames and may also set how the result is encoded (compression
is nothing but the encoder's quality setting). Every distorted video is encoded, so every
training sample went through a real codec, as every video a user scores did.

Types here: the twelve of the taxonomy (vqscope.taxonomy: overexposure, underexposure,
color_cast, noise, compression, mosaic, oversharpening, defocus_blur, motion_blur, stutter,
jitter, flicker), plus two resolution types the first model was trained with: scale (down then
up again) and lowres (down, kept small). Levels are chosen so that the same level of two types
looks about equally bad, which is what lets `quality_loss` be one table for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Frames = list[np.ndarray]
# Encoder quality of videos whose distortion is not compression: visually transparent.
TRANSPARENT_CRF = 17


@dataclass
class Distorted:
    frames: Frames
    crf: int = TRANSPARENT_CRF
    labels: list[tuple[str, int]] = field(default_factory=list)  # (type, level) applied
    shown: list[int] | None = None  # source frame index behind each frame (None: identity)

    def with_frames(self, frames: Frames, shown: list[int] | None = None) -> "Distorted":
        return Distorted(frames, self.crf, self.labels, shown if shown is not None else self.shown)


@dataclass(frozen=True)
class DistortionType:
    name: str
    dimension: str
    levels: tuple[float, ...]
    apply: Callable[[Distorted, float, np.random.Generator], Distorted]

    @property
    def n_levels(self) -> int:
        return len(self.levels)


def _to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


def _to_frames(x: torch.Tensor) -> Frames:
    arr = x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return list(arr)


def _even(n: float) -> int:
    return max(2, int(round(n / 2.0)) * 2)


def resize_frames(frames: Sequence[np.ndarray], width: int, height: int, chunk: int = 16) -> Frames:
    """Antialiased bicubic resize (torch), in chunks to bound memory."""
    out: Frames = []
    for i in range(0, len(frames), chunk):
        x = _to_tensor(frames[i : i + chunk])
        x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
        out += _to_frames(x)
    return out


def _compression(d: Distorted, crf: float, rng: np.random.Generator) -> Distorted:
    return Distorted(d.frames, crf=max(d.crf, int(crf)), labels=d.labels, shown=d.shown)


def _scale(d: Distorted, factor: float, rng: np.random.Generator) -> Distorted:
    h, w = d.frames[0].shape[:2]
    small = resize_frames(d.frames, _even(w / factor), _even(h / factor))
    return d.with_frames(resize_frames(small, w, h))


def _lowres(d: Distorted, factor: float, rng: np.random.Generator) -> Distorted:
    h, w = d.frames[0].shape[:2]
    return d.with_frames(resize_frames(d.frames, _even(w / factor), _even(h / factor)))


def blur_frames(frames: Sequence[np.ndarray], sigma: float) -> Frames:
    """Gaussian blur (PIL's, an iterated box filter: fast at any radius)."""
    from PIL import Image, ImageFilter

    blur = ImageFilter.GaussianBlur(radius=sigma)
    return [np.asarray(Image.fromarray(f).filter(blur)) for f in frames]


def _blur(d: Distorted, sigma: float, rng: np.random.Generator) -> Distorted:
    # Sigma is given for a 720-line picture and scaled with the frame, so a level means the
    # same visible softness at every resolution.
    h = d.frames[0].shape[0]
    return d.with_frames(blur_frames(d.frames, sigma * h / 720.0))


def _noise(d: Distorted, sigma: float, rng: np.random.Generator) -> Distorted:
    """Gaussian noise, new in every frame (sensor noise), same sigma in every channel."""
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
    out: Frames = []
    for f in d.frames:
        x = torch.from_numpy(f.astype(np.float32))
        x.add_(torch.randn(x.shape, generator=gen), alpha=sigma)
        out.append(x.clamp_(0, 255).round_().to(torch.uint8).numpy())
    return d.with_frames(out)


def _gamma_gain(frames: Sequence[np.ndarray], gains: Sequence[float] | np.ndarray) -> Frames:
    """Multiply linear light by a gain per frame (display gamma 2.2), clipping at white:
    exposure changes act on light, not on coded values, and blow out the highlights.
    One 256-entry table per frame does it exactly for 8-bit input."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    out: Frames = []
    for f, g in zip(frames, gains):
        table = np.clip(levels**2.2 * float(g), 0.0, 1.0) ** (1 / 2.2)
        out.append(np.round(table * 255.0).astype(np.uint8)[f])
    return out


def _overexposure(d: Distorted, stops: float, rng: np.random.Generator) -> Distorted:
    return d.with_frames(_gamma_gain(d.frames, [2.0**stops] * len(d.frames)))


def _underexposure(d: Distorted, stops: float, rng: np.random.Generator) -> Distorted:
    return d.with_frames(_gamma_gain(d.frames, [2.0**-stops] * len(d.frames)))


def _color_cast(d: Distorted, strength: float, rng: np.random.Generator) -> Distorted:
    """Wrong white balance (a tint toward warm, cool, green or magenta) or wrong saturation
    (washed out or oversaturated): the two ways colour goes wrong in uploads."""
    mode = int(rng.integers(0, 6))
    out: Frames = []
    if mode < 4:
        tint = ((1.0, 0.15, -1.0), (-1.0, 0.1, 1.0), (-0.5, 1.0, -0.5), (0.7, -1.0, 0.7))[mode]
        gains = torch.tensor([1.0 + strength * t for t in tint]).view(1, 1, 3)
        for f in d.frames:
            x = torch.from_numpy(f).float().mul_(gains)
            out.append(x.clamp_(0, 255).round_().to(torch.uint8).numpy())
    else:
        factor = 1.0 - 2.2 * strength if mode == 4 else 1.0 + 3.0 * strength
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3)
        for f in d.frames:
            x = torch.from_numpy(f).float()
            luma = (x * weights).sum(dim=2, keepdim=True)
            x = luma + (x - luma) * max(factor, 0.0)
            out.append(x.clamp_(0, 255).round_().to(torch.uint8).numpy())
    return d.with_frames(out)


def _mosaic(d: Distorted, block: float, rng: np.random.Generator) -> Distorted:
    """Pixelation: the mean of each block, shown as a flat square (block side given for 720 lines)."""
    h, w = d.frames[0].shape[:2]
    side = max(2, int(round(block * h / 720.0)))
    out: Frames = []
    for i in range(0, len(d.frames), 16):
        x = _to_tensor(d.frames[i : i + 16])
        small = F.adaptive_avg_pool2d(x, (max(1, h // side), max(1, w // side)))
        out += _to_frames(F.interpolate(small, size=(h, w), mode="nearest"))
    return d.with_frames(out)


def _oversharpening(d: Distorted, amount: float, rng: np.random.Generator) -> Distorted:
    """Unsharp masking pushed too far: halos along edges and boosted grain."""
    h = d.frames[0].shape[0]
    soft = blur_frames(d.frames, 2.0 * h / 720.0)
    out: Frames = []
    for f, b in zip(d.frames, soft):
        x = f.astype(np.float32)
        out.append(np.clip(x + amount * (x - b.astype(np.float32)), 0, 255).round().astype(np.uint8))
    return d.with_frames(out)


def _box_along(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Mean of `length` neighbours along one axis (replicated edges), by a cumulative sum."""
    before, after = (length - 1) // 2, length // 2
    size = x.shape[dim]
    idx = torch.clamp(torch.arange(-before, size + after), 0, size - 1)
    padded = x.index_select(dim, idx)
    c = torch.cumsum(padded, dim=dim)
    zero = torch.zeros_like(c.narrow(dim, 0, 1))
    c = torch.cat([zero, c], dim=dim)
    return (c.narrow(dim, length, size) - c.narrow(dim, 0, size)) / length


def _motion_blur(d: Distorted, length: float, rng: np.random.Generator) -> Distorted:
    """Blur along the direction of a camera pan (mostly horizontal, sometimes vertical or
    diagonal): a linear kernel of `length` pixels at 720 lines."""
    h = d.frames[0].shape[0]
    n = max(2, int(round(length * h / 720.0)))
    direction = rng.choice(["h", "h", "h", "v", "d1", "d2"])
    out: Frames = []
    for i in range(0, len(d.frames), 8):
        x = _to_tensor(d.frames[i : i + 8])
        if direction == "h":
            y = _box_along(x, n, 3)
        elif direction == "v":
            y = _box_along(x, n, 2)
        else:
            # Diagonal: the mean of shifted copies along the diagonal (replicated edges).
            step = 1 if direction == "d1" else -1
            pad = n
            xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
            acc = torch.zeros_like(x)
            for k in range(n):
                o = k - (n - 1) // 2
                acc += xp[:, :, pad + o : pad + o + x.shape[2], pad + step * o : pad + step * o + x.shape[3]]
            y = acc / n
        out += _to_frames(y)
    return d.with_frames(out)


def _jitter(d: Distorted, amplitude: float, rng: np.random.Generator) -> Distorted:
    """Camera shake: the picture moves by a random, quickly changing offset every frame (a
    share of the frame side), taken as a moving crop of a slightly enlarged frame so no
    border shows."""
    h, w = d.frames[0].shape[:2]
    n = len(d.frames)
    margin = 2.5 * amplitude
    steps = rng.normal(0.0, amplitude, size=(n, 2))
    offsets = np.zeros((n, 2))
    for i in range(1, n):
        offsets[i] = 0.35 * offsets[i - 1] + steps[i]  # little inertia: shake, not a pan
    offsets = np.clip(offsets, -margin, margin)
    ch, cw = h * (1 - 2 * margin), w * (1 - 2 * margin)
    out: Frames = []
    for f, (ox, oy) in zip(d.frames, offsets):
        top = (margin + oy) * h
        left = (margin + ox) * w
        # Sub-pixel crop through an affine grid: offsets are fractions of a pixel too.
        theta = torch.tensor([[[cw / w, 0.0, (2 * left + cw) / w - 1.0], [0.0, ch / h, (2 * top + ch) / h - 1.0]]],
                             dtype=torch.float32)
        x = _to_tensor([f])
        grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
        out += _to_frames(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))
    return d.with_frames(out)


def _flicker(d: Distorted, amplitude: float, rng: np.random.Generator) -> Distorted:
    """Brightness that jumps from frame to frame (mains-light flicker, auto-exposure hunting)."""
    n = len(d.frames)
    period = float(rng.uniform(2.0, 6.0))  # frames per cycle
    phase = float(rng.uniform(0, 2 * np.pi))
    wave = np.sign(np.sin(2 * np.pi * np.arange(n) / period + phase)) * rng.uniform(0.6, 1.0, size=n)
    return d.with_frames(_gamma_gain(d.frames, 1.0 + amplitude * wave))


def _stutter(d: Distorted, hold: float, rng: np.random.Generator) -> Distorted:
    """Show every `hold`-th frame `hold` times: the frame rate a viewer sees drops by `hold`."""
    k = int(hold)
    phase = int(rng.integers(0, k))
    base = d.shown if d.shown is not None else list(range(len(d.frames)))
    pick = [max(0, ((i - phase) // k) * k + phase) for i in range(len(d.frames))]
    return d.with_frames([d.frames[j] for j in pick], shown=[base[j] for j in pick])


TYPES: dict[str, DistortionType] = {
    t.name: t
    for t in (
        DistortionType("overexposure", "color", (0.7, 1.3, 2.0, 2.8), _overexposure),  # stops up
        DistortionType("underexposure", "color", (0.8, 1.5, 2.3, 3.2), _underexposure),  # stops down
        DistortionType("color_cast", "color", (0.08, 0.16, 0.26, 0.38), _color_cast),
        DistortionType("noise", "noise", (5.0, 10.0, 18.0, 30.0), _noise),  # sigma, 8-bit levels
        DistortionType("compression", "artifact", (30.0, 35.0, 40.0, 45.0, 50.0), _compression),  # x264 CRF
        DistortionType("mosaic", "artifact", (6.0, 10.0, 16.0, 26.0), _mosaic),  # block side at 720 lines
        DistortionType("oversharpening", "artifact", (1.2, 2.2, 3.5, 5.5), _oversharpening),
        DistortionType("defocus_blur", "blur", (1.0, 2.0, 3.5, 6.0), _blur),  # sigma at 720 lines
        DistortionType("motion_blur", "blur", (6.0, 12.0, 20.0, 32.0), _motion_blur),  # pixels at 720 lines
        DistortionType("stutter", "temporal", (2.0, 3.0, 5.0, 8.0), _stutter),  # frames held
        DistortionType("jitter", "temporal", (0.004, 0.008, 0.014, 0.022), _jitter),  # share of side
        DistortionType("flicker", "temporal", (0.04, 0.08, 0.14, 0.22), _flicker),  # gain swing
        # Resolution types of the first model's corpus (not in the taxonomy).
        DistortionType("scale", "blur", (2.0, 3.0, 4.0, 6.0), _scale),
        DistortionType("lowres", "blur", (2.0, 3.0, 4.0, 6.0), _lowres),
    )
}


# Encoders a compression sample may go through, and the CRF offset that makes each one's level
# match libx264's in visible loss: measured by GMSD on eight training sources (x265 at CRF c + 5
# loses what x264 loses at c, as FFmpeg's H.265 guide says of CRF 28 and 23). A level an encoder
# cannot reach (x265 stops at CRF 51) stays with libx264.
CODEC_CRF_OFFSET = {"libx264": 0, "libx265": 5}
MAX_CRF = 51


def check_codecs(codecs: Sequence[str]) -> tuple[str, ...]:
    """`codecs` as a tuple, or a ValueError naming the encoders a corpus can share."""
    if not codecs or any(c not in CODEC_CRF_OFFSET for c in codecs):
        raise ValueError(f"codecs must be among {', '.join(CODEC_CRF_OFFSET)}; got {list(codecs)}")
    return tuple(codecs)


def quality_loss(level: int, n_levels: int) -> float:
    """Share of quality a distortion at `level` takes away (0.13 for the mildest of four
    levels, 0.70 for the worst): a designed scale, the same for every type."""
    return 0.7 * ((level + 1) / n_levels) ** 1.2


# Where each type happens in a capture-edit-upload chain; steps are applied in this order so
# that, say, noise is never blurred away by a blur listed after it, and resolution changes and
# the encoder come last, as they do in reality.
STAGE = {
    "overexposure": 0, "underexposure": 0, "color_cast": 0,
    "defocus_blur": 1, "motion_blur": 1, "jitter": 1, "flicker": 1,
    "noise": 2, "oversharpening": 3, "mosaic": 4, "scale": 5, "stutter": 6, "lowres": 7, "compression": 8,
}


@dataclass(frozen=True, order=True)
class Step:
    """One distortion of a recipe; `start`/`end` (shares of the video) confine it in time."""

    name: str
    level: int
    start: float = 0.0
    end: float = 1.0

    @property
    def whole(self) -> bool:
        return self.start <= 0.0 and self.end >= 1.0


def apply(frames: Frames, recipe: Sequence[tuple[str, int] | Step], rng: np.random.Generator) -> Distorted:
    """Apply the steps of a recipe in chain order (`STAGE`). A step confined in time replaces
    only the frames inside its span; compression (an encoder setting) always covers the video."""
    steps = [s if isinstance(s, Step) else Step(s[0], int(s[1])) for s in recipe]
    d = Distorted(list(frames))
    n = len(frames)
    for step in sorted(steps, key=lambda s: STAGE[s.name]):
        t = TYPES[step.name]
        if not 0 <= step.level < t.n_levels:
            raise ValueError(f"{step.name}: level {step.level} outside 0..{t.n_levels - 1}")
        if not step.whole and step.name in ("compression", "lowres", "scale"):
            raise ValueError(f"{step.name} cannot be confined to part of a video")
        out = t.apply(d, t.levels[step.level], rng)
        if not step.whole:
            lo, hi = span_frames(step, n)
            frames_mixed = d.frames[:lo] + out.frames[lo:hi] + d.frames[hi:]
            shown = None
            if out.shown is not None or d.shown is not None:
                before = d.shown or list(range(n))
                after = out.shown or list(range(n))
                shown = before[:lo] + after[lo:hi] + before[hi:]
            out = d.with_frames(frames_mixed, shown)
        d = out
        d.labels.append((step.name, step.level))
    return d


def span_frames(step: Step, n: int) -> tuple[int, int]:
    """Frame range [lo, hi) a step covers in an n-frame video."""
    return int(round(step.start * n)), int(round(step.end * n))
