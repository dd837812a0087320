"""Decoder back-ends: PyAV on the CPU (the default), or torchcodec, which decodes on NVIDIA's
hardware decoder (NVDEC) when given a CUDA device, with resizing done by PyTorch on the GPU.

Both give the feature stage the same thing: a reader with `info`, `stats`, `frames(start_s)`
and `decode_warnings`, whose frames answer `display_size`, `rgb(w, h)`, `rgb_short_side(s)`,
`luma(step)`, `yuv_crop(side, align)` and `release()` with uint8 NumPy arrays. Only the small
converted images leave the GPU; a decoded 4K picture never does.

Probing (header, first frame, every typed error for unusable input) always goes through PyAV,
so a file is accepted or refused the same way whatever decodes it.

What differs on the torchcodec path: torchcodec hands out RGB, not the decoder's YUV planes,
so `luma` and `yuv_crop` are computed back from RGB with the stream's colour matrix (BT.601,
BT.709 or BT.2020, as torchcodec itself chose it), and resizing is PyTorch's antialiased
bilinear instead of swscale's area filter. Features are close to PyAV's, not bit-identical:
feature caches and training keep PyAV; `vqscope score --decoder auto` uses the GPU only when
one is present.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Iterator

import numpy as np
import torch

from .errors import ConfigError, CorruptVideoError, RuntimeUnavailableError
from .video import DecodeStats, VideoInfo, VideoReader, check_complete, probe

DECODERS = ("auto", "pyav", "torchcodec", "nvdec")
#: Frames decoded per torchcodec call: enough to keep NVDEC busy, few enough that a batch of
#: 4K RGB pictures (25 MB each) stays small next to the GPU's memory.
CHUNK_FRAMES = 8

# Luma weights (Kr, Kb) per colour space, as torchcodec picks them (unspecified: BT.601).
_LUMA_WEIGHTS = {"bt709": (0.2126, 0.0722), "bt2020nc": (0.2627, 0.0593), "bt2020c": (0.2627, 0.0593),
                 "bt2020_ncl": (0.2627, 0.0593), "bt2020_cl": (0.2627, 0.0593)}
_BT601 = (0.299, 0.114)


# -- choosing a back-end ----------------------------------------------------------------------
def _cuda_available() -> bool:
    return bool(torch.cuda.is_available())


def _import_torchcodec() -> Any:
    """torchcodec's decoders module, or a one-line typed error saying how to get it."""
    try:
        return importlib.import_module("torchcodec.decoders")
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"the torchcodec decoder is not installed ({exc}): pip install torchcodec (it needs a CUDA build "
            "of torch and FFmpeg shared libraries, e.g. apt-get install ffmpeg); or use --decoder pyav"
        ) from None
    except (OSError, RuntimeError) as exc:  # its libraries fail to load: wrong torch or FFmpeg
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuntimeUnavailableError(
            f"torchcodec is installed but does not load ({first}): it needs a CUDA build of torch matching its "
            "own and FFmpeg shared libraries; or use --decoder pyav"
        ) from None


def torchcodec_available() -> bool:
    try:
        _import_torchcodec()
    except RuntimeUnavailableError:
        return False
    return True


def resolve_decoder(name: str | None) -> tuple[str, str]:
    """(back-end, device) for a `--decoder` choice.

    auto: torchcodec on CUDA when a CUDA GPU is present and torchcodec loads, else PyAV.
    torchcodec: torchcodec on CUDA when there is a GPU, else on the CPU.
    nvdec: torchcodec on CUDA (NVDEC); an error where there is no CUDA GPU.
    A back-end asked for by name and not usable here is a RuntimeUnavailableError.
    """
    name = (name or "auto").lower()
    if name not in DECODERS:
        raise ConfigError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS)}")
    if name == "pyav":
        return "pyav", "cpu"
    if name == "auto":
        if _cuda_available() and torchcodec_available():
            return "torchcodec", "cuda"
        return "pyav", "cpu"
    _import_torchcodec()
    cuda = _cuda_available()
    if name == "nvdec" and not cuda:
        raise RuntimeUnavailableError(
            f"--decoder nvdec needs a CUDA GPU, and PyTorch sees none (torch {torch.__version__}"
            f"{', a CPU build' if torch.version.cuda is None else ''}): run it on a machine with an NVIDIA GPU, "
            "its driver and a CUDA build of torch; or use --decoder pyav"
        )
    return "torchcodec", "cuda" if cuda else "cpu"


def open_reader(path: str | os.PathLike[str], decoder: str | tuple[str, str] | None = "pyav") -> Any:
    """A reader for `path` on the chosen back-end (a name, or a `resolve_decoder` pair)."""
    backend, device = resolve_decoder(decoder) if not isinstance(decoder, tuple) else decoder
    if backend == "pyav":
        return VideoReader(path)
    if backend == "torchcodec":
        return TorchcodecReader(path, device=device)
    raise ConfigError(f"unknown decoder back-end {backend!r}")


# -- the torchcodec reader ----------------------------------------------------------------------
class TorchcodecReader:
    """Streams frames decoded by torchcodec (NVDEC on a CUDA device), with VideoReader's API."""

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cuda", chunk: int = CHUNK_FRAMES):
        self.info: VideoInfo = probe(path)  # typed errors for unusable input, same as PyAV's
        self.path = self.info.path
        self.device = device
        self.chunk = max(1, int(chunk))
        decoders = _import_torchcodec()
        try:
            self._decoder = decoders.VideoDecoder(self.path, device=device, dimension_order="NCHW",
                                                  seek_mode="exact", num_ffmpeg_threads=0)
        except (RuntimeError, ValueError) as exc:
            raise CorruptVideoError(f"{self.path}: torchcodec cannot open the video ({_first_line(exc)})",
                                    self.path) from None
        meta = self._decoder.metadata
        self._count = int(meta.num_frames or 0)
        self._begin_s = float(meta.begin_stream_seconds or 0.0)
        self._weights = _LUMA_WEIGHTS.get(str(getattr(meta, "color_space", None) or "").lower(), _BT601)
        # torchcodec applies rotation metadata itself (and says so with a `rotation` field);
        # an older one without that field hands out coded orientation.
        self._rotation = 0 if hasattr(meta, "rotation") else self.info.rotation
        self._full_range = self.info.pix_fmt.startswith(("yuvj", "gray", "rgb", "bgr", "gbr"))
        self.stats = DecodeStats()

    def __enter__(self) -> "TorchcodecReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._decoder = None

    @property
    def decode_warnings(self) -> list[str]:
        return []

    def _first_index(self, start_s: float) -> int:
        if start_s <= 0 or self._count == 0:
            return 0
        # One second early: frame times of variable-rate video stray from index / fps; frames
        # before start_s are decoded and dropped, as PyAV's reader does after a key-frame seek.
        fps = max(self.info.fps, 1e-6)
        return max(0, min(self._count, int(np.floor((start_s - 1.0) * fps))))

    def frames(self, start_s: float = 0.0) -> Iterator["TensorFrame"]:
        """Frames with presentation time >= start_s, in order, to the end of the stream."""
        fps = max(self.info.fps, 1e-6)
        index = self._first_index(start_s)
        yielded = 0
        while index < self._count:
            stop = min(self._count, index + self.chunk)
            try:
                batch = self._decoder.get_frames_in_range(index, stop)
            except (RuntimeError, IndexError, ValueError) as exc:
                raise CorruptVideoError(
                    f"{self.path}: damaged video stream at {self.stats.last_time_s:.2f} s ({_first_line(exc)})",
                    self.path,
                ) from None
            pts = [float(p) for p in batch.pts_seconds]
            for j in range(batch.data.shape[0]):
                t = pts[j] - self._begin_s if j < len(pts) else (index + j) / fps
                if t < start_s - 0.5 / fps:
                    continue
                self.stats.frames += 1
                self.stats.packets += 1
                yielded += 1
                self.stats.last_time_s = max(self.stats.last_time_s, t)
                yield TensorFrame(batch.data[j], self.stats.frames - 1, t, self.info, self._rotation,
                                  self._weights, self._full_range)
            index = stop
        self.stats.reached_end = True
        check_complete(self.path, self.info, self.stats, start_s, yielded)

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TensorFrame:
    """One decoded picture as a uint8 RGB tensor [3, H, W] (on the decoding device), converted
    lazily, on that device, to the small arrays the feature branches ask for."""

    __slots__ = ("index", "time_s", "_data", "_info", "_rotation", "_weights", "_full", "_cache")

    def __init__(self, data: torch.Tensor, index: int, time_s: float, info: VideoInfo, rotation: int = 0,
                 weights: tuple[float, float] = _BT601, full_range: bool = False):
        self.index = index
        self.time_s = time_s
        self._data = data
        self._info = info
        self._rotation = rotation  # still to apply (0 where the decoder already did)
        self._weights = weights
        self._full = full_range
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def display_size(self) -> tuple[int, int]:
        return self._info.width, self._info.height

    @property
    def full_range(self) -> bool:
        return True  # yuv_crop below is full range by construction

    def _oriented(self) -> torch.Tensor:
        k = self._rotation // 90
        return torch.rot90(self._data, k=k, dims=(1, 2)) if k else self._data

    @staticmethod
    def _to_numpy(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.to("cpu").numpy())

    def rgb(self, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3), display orientation, resized on the decoding device."""
        key = ("rgb", width, height)
        if key not in self._cache:
            x = self._oriented()
            if tuple(x.shape[1:]) != (height, width):
                y = torch.nn.functional.interpolate(x.unsqueeze(0).float(), size=(height, width), mode="bilinear",
                                                    align_corners=False, antialias=True)[0]
                x = y.round_().clamp_(0, 255).to(torch.uint8)
            self._cache[key] = self._to_numpy(x.permute(1, 2, 0))
        return self._cache[key]

    def rgb_short_side(self, short_side: int) -> np.ndarray:
        w, h = self.display_size
        scale = short_side / min(w, h)
        return self.rgb(max(1, int(round(w * scale))), max(1, int(round(h * scale))))

    def _yuv(self, x: torch.Tensor) -> torch.Tensor:
        """Full-range Y, Cb, Cr (float, [3, H, W]) of an RGB uint8 tensor."""
        kr, kb = self._weights
        r, g, b = x.float().unbind(0)
        y = kr * r + (1.0 - kr - kb) * g + kb * b
        cb = (b - y) / (2.0 * (1.0 - kb)) + 128.0
        cr = (r - y) / (2.0 * (1.0 - kr)) + 128.0
        return torch.stack([y, cb, cr])

    def luma(self, step: int = 1) -> np.ndarray:
        """8-bit luma on the stream's own range (video range unless it is a full-range stream),
        every `step`-th pixel, as PyAV's reader gives it from the Y plane."""
        key = ("luma", step)
        if key not in self._cache:
            x = self._oriented()
            if step > 1:
                x = x[:, ::step, ::step]
            kr, kb = self._weights
            r, g, b = x.float().unbind(0)
            y = kr * r + (1.0 - kr - kb) * g + kb * b
            if not self._full:
                y = y * (219.0 / 255.0) + 16.0
            self._cache[key] = self._to_numpy(y.round_().clamp_(0, 255).to(torch.uint8))
        return self._cache[key]

    def yuv_crop(self, side: int, align: int = 8) -> np.ndarray:
        """Centred crop (side x side at most), native resolution, full-range YUV 4:4:4 uint8 (H, W, 3)."""
        key = ("yuv", side, align)
        if key not in self._cache:
            x = self._oriented()
            h, w = x.shape[1:]
            ch, cw = min(side, h), min(side, w)
            top = ((h - ch) // 2) // align * align
            left = ((w - cw) // 2) // align * align
            yuv = self._yuv(x[:, top : top + ch, left : left + cw])
            out = yuv.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
            self._cache[key] = self._to_numpy(out)
        return self._cache[key]

    def release(self) -> None:
        self._data = None  # type: ignore[assignment]


__all__ = ["DECODERS", "resolve_decoder", "open_reader", "TorchcodecReader", "TensorFrame", "torchcodec_available"]
