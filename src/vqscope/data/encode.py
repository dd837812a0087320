"""Write videos with PyAV: the synthetic-distortion generator, the tests and the benches all
make their videos through this one function, so codec settings live in one place."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable

import av
import numpy as np

_MILLISECONDS = Fraction(1, 1000)


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float | int = 25,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    crf: int | None = 18,
    bitrate: int | None = None,
    preset: str = "veryfast",
    rotation: int = 0,
    frame_times: Iterable[float] | None = None,
    gop: int | None = None,
) -> str:
    """Encode RGB uint8 frames (H, W, 3) to `path`.

    `bitrate` (bits per second) overrides `crf`. `rotation` writes a display matrix the way
    phones do (counter-clockwise degrees, as `VideoFrame.rotation` reads it back).
    `frame_times` (seconds) gives each frame its own timestamp: variable frame rate.
    """
    path = os.fspath(path)
    rate = _as_rate(fps)
    times = iter(frame_times) if frame_times is not None else None
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        options: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            options["preset"] = preset
            if bitrate is not None:
                stream.bit_rate = int(bitrate)
                options["maxrate"] = str(int(bitrate))
                options["bufsize"] = str(int(bitrate) * 2)
            elif crf is not None:
                options["crf"] = str(crf)
            if codec == "libx265":
                options["x265-params"] = "log-level=error"
        elif bitrate is not None:
            stream.bit_rate = int(bitrate)
        if gop is not None:
            stream.codec_context.gop_size = gop
        stream.options = options
        if times is not None:
            stream.codec_context.time_base = _MILLISECONDS
        if rotation:
            stream.set_display_rotation(rotation)
        first = True
        for i, image in enumerate(frames):
            image = np.ascontiguousarray(image, dtype=np.uint8)
            if first:
                stream.height, stream.width = image.shape[:2]
                first = False
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times is not None:
                t = next(times)
                frame.pts = int(round(t * 1000))
                frame.time_base = _MILLISECONDS
            for packet in stream.encode(frame):
                container.mux(packet)
        if first:
            raise ValueError("write_video: no frames given")
        for packet in stream.encode():
            container.mux(packet)
    return path


def _as_rate(fps: float | int) -> int | Fraction:
    if isinstance(fps, int):
        return fps
    return Fraction(fps).limit_denominator(1001)
