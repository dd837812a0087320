"""Graded synthetic distortions of real footage, for training without a public MOS set.

Each distortion type has ordered severity levels (level 0 is the mildest). A distortion
works on a list of RGB uint8 frames and may also set how the result is encoded (compression
is nothing but the encoder's quality setting). Every distorted video is encoded, so every
training sample went through a real codec, as every video a user scores did.

Types here: compression, scale (down then up again), lowres (down, kept small), blur
(defocus), noise, stutter (dropped frames, shown as repeats).
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
        DistortionType("compression", "artifact", (30.0, 35.0, 40.0, 45.0, 50.0), _compression),
        DistortionType("scale", "blur", (2.0, 3.0, 4.0, 6.0), _scale),
        DistortionType("lowres", "blur", (2.0, 3.0, 4.0, 6.0), _lowres),
        DistortionType("blur", "blur", (1.0, 2.0, 3.5, 6.0), _blur),
        DistortionType("noise", "noise", (5.0, 10.0, 18.0, 30.0), _noise),
        DistortionType("stutter", "temporal", (2.0, 3.0, 5.0, 8.0), _stutter),
    )
}


def apply(frames: Frames, recipe: Sequence[tuple[str, int]], rng: np.random.Generator) -> Distorted:
    """Apply (type, level) steps in order; resolution changes go last so the others act on
    the full-size picture, as they do in a real capture-edit-upload chain."""
    order = sorted(recipe, key=lambda step: step[0] == "lowres")
    d = Distorted(list(frames))
    for name, level in order:
        t = TYPES[name]
        if not 0 <= level < t.n_levels:
            raise ValueError(f"{name}: level {level} outside 0..{t.n_levels - 1}")
        d = t.apply(d, t.levels[level], rng)
        d.labels.append((name, level))
    return d
