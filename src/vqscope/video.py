"""Probe and decode: the first step of the flow.

Frames are streamed out of PyAV one at a time and converted only to what a feature branch
asks for (a small RGB image, or luma), so a video is never held whole in memory and 4K input
costs little more than its decode. Display geometry (rotation metadata, non-square pixels) is
applied here, once, so later steps see frames the way a viewer does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from typing import Iterator

import av
import numpy as np

from .errors import (
    CorruptVideoError,
    EmptyFileError,
    InputIsDirectoryError,
    InputNotFoundError,
    InputPermissionError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    ZeroDurationError,
)

# Containers that hold a single still picture. PyAV opens them as one-frame "videos".
_STILL_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe",
                        "jpegxl_pipe", "gif_pipe", "ppm_pipe", "pgm_pipe", "pam_pipe", "svg_pipe"}
# Decoding that ends before this share of the declared duration (and at least
# _TRUNCATION_MIN_GAP_S short of it) is reported as a truncated file, not scored.
_TRUNCATION_MIN_SHARE = 0.9
_TRUNCATION_MIN_GAP_S = 1.0
# Share of packets that may fail to decode before the whole stream is called corrupt.
_MAX_BAD_PACKET_SHARE = 0.05


@dataclass(frozen=True)
class VideoInfo:
    """What probing a file says about its picture stream."""

    path: str
    container: str
    codec: str
    width: int  # display width: after rotation and sample aspect ratio
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise applied for display (0, 90, 180, 270)
    fps: float  # average frame rate
    duration_s: float
    frame_count: int  # as declared by the container, or estimated from duration x fps
    pix_fmt: str
    bit_depth: int
    variable_frame_rate: bool
    has_audio: bool
    sample_aspect_ratio: float
    size_bytes: int
    nominal_fps: float = 0.0  # the container's nominal (base) rate; 0 where it gives none

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def display_fps(self) -> float:
        """The rate the frames are shown on. A variable-rate file whose frames sit on a finer
        nominal grid (a phone's recording that dropped frames, or a file with frames cut out)
        shows each frame until the next one is due: on that grid a dropped frame is a held
        frame, which is how the clip windows read it (sampling.ClipAssembler) and how a viewer
        sees it. Elsewhere, and where the nominal rate is implausible (above 120 fps or more
        than 8x the average, as a container's time-base guess can be), the average rate."""
        if self.variable_frame_rate and self.fps < self.nominal_fps <= min(120.0, 8.0 * self.fps):
            return self.nominal_fps
        return self.fps


def check_readable_file(path: str | os.PathLike[str]) -> str:
    """Turn the common ways a path can be unusable into typed errors before FFmpeg sees it."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: no such file", path) from None
    except PermissionError:
        raise InputPermissionError(f"{path}: permission denied", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputIsDirectoryError(f"{path}: is a directory, not a video file", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except PermissionError:
        raise InputPermissionError(f"{path}: permission denied (cannot read the file)", path) from None
    except OSError as exc:
        raise InputPermissionError(f"{path}: cannot read the file ({exc.strerror})", path) from None
    if st.st_size == 0 or not head:
        raise EmptyFileError(f"{path}: the file is empty (0 bytes)", path)
    return path


def _looks_like_video_container(head: bytes) -> bool:
    """True where the first bytes carry the signature of a common video container.

    FFmpeg says "invalid data" both for a text file and for an MP4 whose index is cut off;
    the signature tells a damaged video (worth a different message) from something that
    never was one.
    """
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True  # ISO BMFF: MP4, MOV, 3GP
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True  # Matroska / WebM
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    if head.startswith((b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"0&\xb2u")):
        return True  # FLV, Ogg, MPEG-PS, MPEG-1/2 video, ASF/WMV
    if head[:1] == b"\x47" and len(head) >= 1:
        return True  # MPEG-TS sync byte
    return False


def _mp4_without_index(path: str, head: bytes) -> bool:
    """An ISO BMFF file with media data but no moov box: a recording cut off before its end.

    Walks the top-level boxes (a few header reads), which is all it takes to tell this
    common failure from a damaged stream.
    """
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    seen: set[bytes] = set()
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size and len(seen) < 64:
            fh.seek(offset)
            header = fh.read(16)
            box_size = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                box_size = size - offset
            seen.add(kind)
            if box_size < 8:
                break
            offset += box_size
    return b"mdat" in seen and b"moov" not in seen


def _bit_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:  # unknown or hardware formats
        return 8


def _open_container(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except PermissionError:
        raise InputPermissionError(f"{path}: permission denied", path) from None
    except av.error.FFmpegError as exc:
        with open(path, "rb") as fh:
            head = fh.read(64)
        if _mp4_without_index(path, head):
            raise TruncatedVideoError(
                f"{path}: truncated, the MP4 index (moov box) is missing: the file was cut off or never finished",
                path,
            ) from None
        if _looks_like_video_container(head):
            raise CorruptVideoError(
                f"{path}: damaged video container, FFmpeg cannot read it ({_ffmpeg_reason(exc)})", path
            ) from None
        raise NotAVideoError(f"{path}: not a video file (format not recognised)", path) from None


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        has_audio = bool(container.streams.audio)
        what = "audio only" if has_audio else "no picture stream"
        raise NoVideoStreamError(f"{path}: no video stream ({what})", path)
    return streams[0]


def _stream_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the container header and the first frame.

    One frame is decoded on purpose: rotation lives in frame side data, and a stream whose
    first frame does not decode is better refused here than half-way through scoring.
    """
    path = check_readable_file(path)
    with _open_container(path) as container:
        return _probe_open(container, path)


def _probe_open(container, path: str, opening: dict | None = None) -> VideoInfo:
    if container.format.name in _STILL_IMAGE_FORMATS:
        raise NotAVideoError(f"{path}: a still image ({container.format.name}), not a video", path)
    stream = _video_stream(container, path)
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = _stream_duration(container, stream)
    declared_frames = int(stream.frames or 0)

    first = _first_frame(container, stream, path, opening)
    rotation = int(round((first.rotation or 0) / 90.0)) * 90 % 360
    sar = float(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else 1.0
    coded_w, coded_h = first.width, first.height
    disp_w = int(round(coded_w * sar)) if sar > 0 else coded_w
    disp_h = coded_h
    if rotation in (90, 270):
        disp_w, disp_h = disp_h, disp_w

    if fps <= 0 and duration > 0 and declared_frames > 1:
        fps = declared_frames / duration
    if duration <= 0 and fps > 0 and declared_frames > 0:
        duration = declared_frames / fps
    if duration <= 0 or (declared_frames == 1 and container.format.name not in ("gif",)):
        raise ZeroDurationError(f"{path}: the video has zero duration (a single frame or none)", path)
    if fps <= 0:
        fps = 25.0  # no rate anywhere in the file: FFmpeg's own fallback
    frame_count = declared_frames or max(1, int(round(duration * fps)))
    pix_fmt = first.format.name
    vfr = _rates_disagree(stream)
    return VideoInfo(
        path=path,
        container=container.format.name,
        codec=cc.name,
        width=int(disp_w),
        height=int(disp_h),
        coded_width=int(coded_w),
        coded_height=int(coded_h),
        rotation=rotation,
        fps=round(fps, 4),
        duration_s=round(duration, 4),
        frame_count=frame_count,
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(pix_fmt),
        variable_frame_rate=vfr,
        has_audio=bool(container.streams.audio),
        sample_aspect_ratio=round(sar, 4),
        size_bytes=os.path.getsize(path),
        nominal_fps=round(float(stream.base_rate), 4) if stream.base_rate else 0.0,
    )


def _rates_disagree(stream) -> bool:
    """The container's nominal and average rates differ when frame timing is not constant."""
    avg, nominal = stream.average_rate, stream.base_rate
    if not avg or not nominal:
        return False
    return abs(float(avg) - float(nominal)) / float(nominal) > 0.01


def _first_frame(container, stream, path: str, opening: dict | None = None) -> av.VideoFrame:
    """The first decodable frame. With `opening`, what was read on the way is handed over
    (the demuxer mid-stream, the frames decoded, packet counts), so a reader can go on from
    there instead of seeking back and decoding the first frames twice."""
    bad = packets = read = 0
    demux = container.demux(stream)
    try:
        for packet in demux:
            packets += packet.size > 0
            read += 1
            try:
                frames = list(packet.decode())  # the last, empty packet flushes the decoder
                if frames:
                    if opening is not None:
                        opening.update(packets=demux, frames=frames, read=read, bad=bad)
                    return frames[0]
            except av.error.InvalidDataError:
                bad += 1
                if bad > 50:
                    break
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"{path}: damaged video stream ({_ffmpeg_reason(exc)})", path) from None
    declared = int(stream.frames or 0)
    if declared and packets < _TRUNCATION_MIN_SHARE * declared:
        raise TruncatedVideoError(
            f"{path}: truncated, the file holds {packets} of {declared} declared frames and none decodes",
            path,
        )
    if bad:
        raise CorruptVideoError(f"{path}: damaged video stream, no frame decodes", path)
    raise ZeroDurationError(f"{path}: the video stream holds no frames", path)


def _range_tables() -> np.ndarray:
    """Lookup tables from video range (Y 16-235, Cb/Cr 16-240) to full range, per channel."""
    v = np.arange(256, dtype=np.float64)
    luma = np.clip(np.round((v - 16) * 255.0 / 219.0), 0, 255)
    chroma = np.clip(np.round((v - 128) * 255.0 / 224.0 + 128), 0, 255)
    return np.stack([luma, chroma, chroma]).astype(np.uint8)


_LIMITED_TO_FULL = _range_tables()


class DecodedFrame:
    """One decoded picture, converted lazily to what a feature branch needs.

    Conversions are cached per frame because the key frame of a clip is asked for both as a
    small RGB image (CNN branch) and as luma (statistics branches).
    """

    __slots__ = ("index", "time_s", "_frame", "_rotation", "_sar", "_cache")

    def __init__(self, frame: av.VideoFrame, index: int, time_s: float, rotation: int, sar: float):
        self.index = index
        self.time_s = time_s
        self._frame = frame
        self._rotation = rotation
        self._sar = sar
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown to a viewer."""
        w = int(round(self._frame.width * self._sar)) if self._sar > 0 else self._frame.width
        h = self._frame.height
        return (h, w) if self._rotation in (90, 270) else (w, h)

    def _rotate(self, image: np.ndarray) -> np.ndarray:
        k = self._rotation // 90
        return np.rot90(image, k=k) if k else image

    def luma(self, step: int = 1) -> np.ndarray:
        """8-bit luma in display orientation, every `step`-th pixel (cheap decimation).

        Read straight from the decoder's Y plane where the pixel format is planar YUV, which
        costs nothing next to a colour conversion; other formats go through swscale.
        """
        key = ("luma", step)
        if key in self._cache:
            return self._cache[key]
        frame = self._frame
        fmt = frame.format
        name = fmt.name
        if name.startswith(("yuv", "yuvj", "nv12", "nv21", "gray", "p010", "p016")) and not name.startswith(("yuyv", "yvyu")):
            plane = frame.planes[0]
            bits = fmt.components[0].bits
            dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
            itemsize = np.dtype(dtype).itemsize
            arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
            arr = arr[:, : plane.width]
            if bits > 8:
                shift = bits - 8 if not name.startswith(("p010", "p016")) else 8
                arr = (arr >> shift).astype(np.uint8)
        else:
            arr = frame.to_ndarray(format="gray")
        if step > 1:
            arr = arr[::step, ::step]
        out = np.ascontiguousarray(self._rotate(arr))
        self._cache[key] = out
        return out

    def rgb(self, width: int, height: int) -> np.ndarray:
        """RGB uint8 image of exactly (height, width, 3) in display orientation."""
        key = ("rgb", width, height)
        if key in self._cache:
            return self._cache[key]
        cw, ch = (height, width) if self._rotation in (90, 270) else (width, height)
        arr = self._frame.to_ndarray(format="rgb24", width=cw, height=ch, interpolation="AREA")
        out = np.ascontiguousarray(self._rotate(arr))
        self._cache[key] = out
        return out

    def rgb_short_side(self, short_side: int) -> np.ndarray:
        """RGB image resized (aspect kept) so that its shorter display side is `short_side`."""
        w, h = self.display_size
        scale = short_side / min(w, h)
        return self.rgb(max(1, int(round(w * scale))), max(1, int(round(h * scale))))

    def yuv_crop(self, side: int, align: int = 8) -> np.ndarray:
        """Centred crop (side x side at most) at native resolution as full-range YUV 4:4:4
        uint8 (H, W, 3), display orientation.

        Cropping the decoder's planes costs nothing; a full-frame RGB conversion of a 4K
        picture would cost more than the statistics computed on it. Offsets are aligned to
        `align` pixels so the crop keeps the 8x8 coding grid.
        """
        key = ("yuv", side, align)
        if key in self._cache:
            return self._cache[key]
        frame = self._frame
        name = frame.format.name
        if not (name.startswith(("yuv", "yuvj")) and frame.format.is_planar) or name.startswith(("yuva",)):
            frame = frame.reformat(format="yuv444p")
            name = "yuv444p"
        comps = frame.format.components
        bits = comps[0].bits
        h, w = frame.height, frame.width
        # Crop in coded orientation: a rotation only changes which side is which.
        ch, cw = min(side, h), min(side, w)
        top = ((h - ch) // 2) // align * align
        left = ((w - cw) // 2) // align * align
        planes = []
        for i in range(3):
            plane = frame.planes[i]
            dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
            itemsize = np.dtype(dtype).itemsize
            arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
            sy = max(1, int(round(h / plane.height))) if i else 1
            sx = max(1, int(round(w / plane.width))) if i else 1
            part = arr[top // sy : (top + ch + sy - 1) // sy, left // sx : (left + cw + sx - 1) // sx]
            if bits > 8:
                part = (part >> (bits - 8)).astype(np.uint8)
            if sy > 1 or sx > 1:
                part = np.repeat(np.repeat(part, sy, axis=0), sx, axis=1)
            oy, ox = top % sy, left % sx
            planes.append(part[oy : oy + ch, ox : ox + cw])
        yuv = np.stack(planes, axis=-1)
        if not self.full_range:
            yuv = _LIMITED_TO_FULL[np.arange(3)[None, None, :], yuv]
        out = np.ascontiguousarray(self._rotate(yuv))
        self._cache[key] = out
        return out

    @property
    def full_range(self) -> bool:
        """Whether luma spans 0-255 (JPEG range) rather than 16-235 (video range)."""
        name = self._frame.format.name
        return name.startswith(("yuvj", "gray", "rgb", "bgr", "gbr")) or int(self._frame.color_range or 0) == 2

    def release(self) -> None:
        """Drop the decoder's picture; cached conversions stay."""
        self._frame = None  # type: ignore[assignment]


@dataclass
class DecodeStats:
    frames: int = 0
    packets: int = 0
    bad_packets: int = 0
    last_time_s: float = 0.0
    reached_end: bool = False


class VideoReader:
    """Streams frames of one video; a context manager that owns the FFmpeg container."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 0):
        self.path = check_readable_file(path)
        self._container = _open_container(self.path)
        try:
            if self._container.format.name not in _STILL_IMAGE_FORMATS:
                self._stream = _video_stream(self._container, self.path)
                self._stream.thread_type = "AUTO"
                self._stream.codec_context.thread_count = threads
            opening: dict = {}
            self.info = _probe_open(self._container, self.path, opening)
            # Probing decoded up to the first frame: the first pass over the stream goes on
            # from there (no seek back, no second decode of the opening frames).
            self._opening: dict | None = opening or None
            self._used = False
        except BaseException:
            self._container.close()
            raise
        self.stats = DecodeStats()
        tb = self._stream.time_base
        self._time_base = float(tb) if tb else 1.0 / max(self.info.fps, 1.0)
        self._start_pts = self._stream.start_time or 0

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, start_s: float = 0.0) -> Iterator[DecodedFrame]:
        """Yield frames with presentation time >= start_s, in order, to the end of the stream.

        Packets that fail to decode are counted and skipped (FFmpeg conceals them as players
        do); too many of them, or a stream that stops far short of its declared duration,
        raise a typed error instead of leading to a score of half a video.
        """
        opening, self._opening = self._opening, None
        if start_s > 0:
            opening = None
            target = int(start_s / self._time_base) + self._start_pts
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        elif opening is None and self._used:
            self._container.seek(0)
        self._used = True
        sar = self.info.sample_aspect_ratio
        index = -1
        fps = self.info.fps
        yielded = 0
        for frame in self._decode(opening):
            index += 1
            if frame.pts is not None:
                t = (frame.pts - self._start_pts) * self._time_base
            else:
                t = start_s + index / fps
            if t < start_s - 0.5 / fps:
                continue
            self.stats.frames += 1
            yielded += 1
            self.stats.last_time_s = max(self.stats.last_time_s, t)
            yield DecodedFrame(frame, self.stats.frames - 1, t, self.info.rotation, sar)
        self.stats.reached_end = True
        self._check_complete(start_s, yielded)

    def _decode(self, opening: dict | None = None) -> Iterator[av.VideoFrame]:
        try:
            if opening is not None:
                self.stats.packets += opening["read"]
                self.stats.bad_packets += opening["bad"]
                yield from opening["frames"]
                packets = opening["packets"]
            else:
                packets = self._container.demux(self._stream)
            for packet in packets:
                self.stats.packets += 1
                try:
                    yield from packet.decode()
                except av.error.InvalidDataError:
                    self.stats.bad_packets += 1
                    self._check_bad_share(final=False)
        except av.error.FFmpegError as exc:
            if isinstance(exc, av.error.EOFError):
                return
            raise CorruptVideoError(
                f"{self.path}: damaged video stream at {self.stats.last_time_s:.2f} s ({_ffmpeg_reason(exc)})",
                self.path,
            ) from None
        self._check_bad_share(final=True)

    def _check_bad_share(self, final: bool) -> None:
        bad, total = self.stats.bad_packets, max(self.stats.packets, 1)
        if bad == 0:
            return
        if (final or total >= 40) and bad / total > _MAX_BAD_PACKET_SHARE:
            raise CorruptVideoError(
                f"{self.path}: damaged video stream ({bad} of {total} packets do not decode)", self.path
            )

    def _check_complete(self, start_s: float, yielded: int) -> None:
        check_complete(self.path, self.info, self.stats, start_s, yielded)

    @property
    def decode_warnings(self) -> list[str]:
        if self.stats.bad_packets:
            return [f"{self.stats.bad_packets} damaged packet(s) skipped while decoding"]
        return []


def check_complete(path: str, info: VideoInfo, stats: DecodeStats, start_s: float, yielded: int) -> None:
    """After a pass from `start_s` that yielded `yielded` frames: refuse a stream that gave no
    frame, or stopped far short of its declared duration (any decoder back-end)."""
    declared = info.duration_s
    if yielded == 0:
        if start_s <= 0:
            raise CorruptVideoError(f"{path}: no frame could be decoded", path)
        if declared - start_s > _TRUNCATION_MIN_GAP_S:
            raise TruncatedVideoError(
                f"{path}: truncated, no frame after {start_s:.2f} s of {declared:.2f} s declared", path
            )
        return  # asked for a time at or past the end
    decoded_end = stats.last_time_s + 1.0 / max(info.fps, 1e-6)
    if decoded_end < _TRUNCATION_MIN_SHARE * declared and declared - decoded_end > _TRUNCATION_MIN_GAP_S:
        raise TruncatedVideoError(
            f"{path}: truncated, frames stop at {decoded_end:.2f} s of {declared:.2f} s declared", path
        )


def iter_frames(path: str | os.PathLike[str]) -> Iterator[DecodedFrame]:
    """All frames of a video, streamed (convenience for scripts and tests)."""
    with VideoReader(path) as reader:
        yield from reader.frames()


__all__ = [
    "VideoInfo",
    "VideoReader",
    "DecodedFrame",
    "DecodeStats",
    "probe",
    "iter_frames",
    "check_readable_file",
]
