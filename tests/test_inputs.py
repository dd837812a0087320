"""Backbone inputs: the native-resolution crop that lets the spatial network see pixel-level quality."""

from __future__ import annotations

import numpy as np

from vqscope.backbones import get_backbone_spec
from vqscope.features.inputs import prepare
from vqscope.video import VideoReader


def first_frame(path):
    with VideoReader(path) as reader:
        return next(iter(reader.frames()))


def test_native_crop_keeps_pixels_at_full_resolution(video_factory):
    frame = first_frame(video_factory("big.mp4", n=4, height=288, width=400))
    spec = get_backbone_spec("efficientnet_lite0_native").frame_input
    crop = prepare(frame, spec)
    full = frame.rgb(400, 288)
    assert crop.shape == (224, 224, 3)
    # the centre of the full frame, not a resized copy (offsets on the 8-pixel grid)
    top, left = (288 - 224) // 2 // 8 * 8, (400 - 224) // 2 // 8 * 8
    assert np.array_equal(crop, full[top : top + 224, left : left + 224])


def test_native_crop_upscales_frames_smaller_than_the_crop(video_factory):
    frame = first_frame(video_factory("small.mp4", n=4, height=72, width=128))
    crop = prepare(frame, get_backbone_spec("efficientnet_lite0_native").frame_input)
    assert crop.shape == (224, 224, 3)
    resized = prepare(frame, get_backbone_spec("efficientnet_lite0").frame_input)
    assert resized.shape == (224, 224, 3)  # the resized branch sees the whole (upscaled) frame


def test_batches_hold_code_over_255_exactly_in_the_layouts_backbones_expect():
    """The NumPy conversion gives torch's own `uint8 -> float / 255` bit for bit (features and
    the models trained on them must not move), RGB key frames come out [N, 3, H, W] and
    luma windows [N, T, H, W]."""
    import torch

    from vqscope.backbones.registry import FrameInput
    from vqscope.features.inputs import image_batch, window_batch

    rng = np.random.default_rng(0)
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    frames = [np.stack([codes, codes.T, 255 - codes], axis=-1), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)]
    plain = FrameInput(color="yuv", short_side=None, crop=16)
    x = image_batch(frames, plain)
    expected = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x, expected)
    normalised = image_batch(frames, FrameInput(color="rgb", short_side=16, crop=16, mean=(0.5,) * 3, std=(0.5,) * 3))
    assert torch.equal(normalised, (expected - 0.5) / 0.5)

    window = [rng.integers(0, 256, (9, 12), dtype=np.uint8) for _ in range(4)]
    w = window_batch([window, window[::-1]], FrameInput(color="luma", short_side=144, crop=None, decimate=True))
    assert w.shape == (2, 4, 9, 12)
    assert torch.equal(w[1, 0], torch.from_numpy(window[3]).float() / 255.0)
