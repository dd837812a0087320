"""Turn decoded frames into backbone inputs, as each backbone's `FrameInput` asks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # `prepare` runs in decode processes that never import torch
    import torch

    from ..backbones.registry import FrameInput
    from ..video import DecodedFrame


def center_crop(image: np.ndarray, side: int, align: int = 1) -> np.ndarray:
    """Centred square crop of `side` (clipped to the image), offsets rounded down to `align`."""
    h, w = image.shape[:2]
    ch, cw = min(side, h), min(side, w)
    top = ((h - ch) // 2) // align * align
    left = ((w - cw) // 2) // align * align
    return image[top : top + ch, left : left + cw]


def prepare(frame: DecodedFrame, spec: FrameInput) -> np.ndarray:
    """One frame as uint8 (H, W, 3) RGB or (H, W) luma, per `spec`.

    Native-resolution crops are aligned to the 8x8 coding grid so block statistics measure
    real block borders.
    """
    if spec.color == "yuv":
        if spec.short_side is not None or not spec.crop:
            raise ValueError("yuv input is a native-resolution crop: short_side=None and a crop side")
        return frame.yuv_crop(spec.crop, align=8)
    if spec.color == "luma":
        if not spec.decimate and spec.short_side is not None:
            raise ValueError("luma input supports decimation or native size only")
        step = 1
        if spec.short_side is not None:
            step = max(1, int(round(min(frame.display_size) / spec.short_side)))
        image = frame.luma(step)
    elif spec.short_side is None:
        if spec.crop and min(frame.display_size) < spec.crop:
            image = frame.rgb_short_side(spec.crop)
        else:
            image = frame.rgb(*frame.display_size)
    else:
        image = frame.rgb_short_side(spec.short_side)
    if spec.crop:
        image = center_crop(image, spec.crop, align=8 if spec.short_side is None else 1)
    return image


def _unit_float(arr: np.ndarray) -> torch.Tensor:
    """uint8 codes -> float32 code / 255, as a tensor sharing the array's layout.

    NumPy does the conversion: on one CPU thread torch's `uint8 -> float` copy and scalar
    division take about 3 ms for a 32-frame motion window where NumPy's take 0.3, with
    bit-identical results (both divide in IEEE float32).
    """
    import torch

    x = arr.astype(np.float32)
    np.divide(x, np.float32(255.0), out=x)
    return torch.from_numpy(x)


def _normalise(x: torch.Tensor, spec: FrameInput, channel_dim: int) -> torch.Tensor:
    """`mean` and `std` of an RGB `spec` applied to pixels already in [0, 1]."""
    import torch

    if spec.color == "rgb" and (any(spec.mean) or any(s != 1.0 for s in spec.std)):
        shape = [1] * x.dim()
        shape[channel_dim] = 3
        mean = torch.tensor(spec.mean, dtype=x.dtype).view(shape)
        std = torch.tensor(spec.std, dtype=x.dtype).view(shape)
        x = (x - mean) / std
    return x


def image_batch(images: Sequence[np.ndarray], spec: FrameInput) -> torch.Tensor:
    """Key frames -> [N, 3, H, W] (RGB, YUV) or [N, 1, H, W] (luma), normalised."""
    arr = np.stack(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    return _normalise(_unit_float(arr).permute(0, 3, 1, 2), spec, channel_dim=1)


def window_batch(windows: Sequence[Sequence[np.ndarray]], spec: FrameInput) -> torch.Tensor:
    """Windows of frames -> [N, T, H, W] (luma) or [N, 3, T, H, W] (RGB), normalised."""
    arr = _unit_float(np.stack([np.stack(w) for w in windows]))
    if spec.color == "luma":
        return _normalise(arr, spec, channel_dim=1)
    return _normalise(arr.permute(0, 4, 1, 2, 3), spec, channel_dim=1)
