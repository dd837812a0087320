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
