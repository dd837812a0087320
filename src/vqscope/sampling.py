"""The clip plan (BILIVQA): which key frame and which run of consecutive frames each clip uses.

A video is cut into clips of `clip_seconds` (one second by default). Each clip contributes its
first frame as the key frame for the spatial branch and `window_frames` (32) consecutive frames
for the temporal branch. Long videos keep at most `max_clips` clips, spread evenly, so the cost
of scoring a two-hour film is bounded. The plan is made from the probed duration and frame
rate, in seconds, so variable-frame-rate video is cut by time, not by frame count.

What a plan cannot honour is never changed silently. Per case:
- a clip length that is not a finite number of seconds above 0, or `max_clips` below 1, is a
  usage error (`ClipOptionError`, exit 2), raised before any video is opened: no video could
  be cut that way (`--clip-seconds inf` used to reach the decoder and read as a damaged stream);
- a clip shorter than one frame of the video (`--clip-seconds 0.01` at 25 fps) would give clips
  with no frame of their own, sharing key frames: the clips are made one frame long, and the
  plan says so in a warning that reaches the result;
- a clip length the caller asked for that is longer than the video (`--clip-seconds 1000` on a
  4-s video) gives one clip of the whole video, with a warning; so does a requested clip length
  whose clips are thinned to `max_clips` (the result's timeline then has gaps). These two
  depend on the video, so they are warnings, not errors: a folder of videos of all lengths
  must still score. They are given only for lengths the caller asked for (`with_options`),
  not for a model's default plan, where both are the documented behaviour for short and
  long videos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from .errors import ConfigError


class ClipOptionError(ConfigError, ValueError):
    """A clip option no plan can honour (exit 2). Also a ValueError, which is what callers
    that build plans from configuration files catch."""


@dataclass(frozen=True)
class ClipPlanConfig:
    clip_seconds: float = 1.0
    max_clips: int = 32
    window_frames: int = 32
    # Options a caller asked for (`with_options`), so the plan can say when it cannot honour
    # them. Not part of the settings: left out of `to_dict` (feature cache keys, model files)
    # and of comparisons.
    requested: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        check_clip_options(self.clip_seconds, self.max_clips)
        if self.window_frames < 2:
            raise ClipOptionError("window_frames must be >= 2")

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["requested"]
        return data

    def with_options(self, clip_seconds: float | None = None, max_clips: int | None = None) -> "ClipPlanConfig":
        """This plan with a caller's --clip-seconds / --max-clips where given (None keeps ours)."""
        if clip_seconds is None and max_clips is None:
            return self
        asked = tuple(n for n, v in (("clip_seconds", clip_seconds), ("max_clips", max_clips)) if v is not None)
        return ClipPlanConfig(
            clip_seconds=clip_seconds if clip_seconds is not None else self.clip_seconds,
            max_clips=max_clips if max_clips is not None else self.max_clips,
            window_frames=self.window_frames,
            requested=asked,
        )


def check_clip_options(clip_seconds: float | None, max_clips: int | None, flags: bool = False) -> None:
    """Refuse clip options that no video could be cut by (see the module docstring).

    `flags`: name them as the command line does (--clip-seconds) rather than as settings.
    """
    seconds_name, clips_name = ("--clip-seconds", "--max-clips") if flags else ("clip_seconds", "max_clips")
    if clip_seconds is not None and not (isinstance(clip_seconds, (int, float)) and math.isfinite(clip_seconds)
                                         and clip_seconds > 0):
        raise ClipOptionError(f"{seconds_name} must be a finite number of seconds greater than 0 (got {clip_seconds})")
    if max_clips is not None and not max_clips >= 1:
        raise ClipOptionError(f"{clips_name} must be >= 1 (got {max_clips})")


@dataclass(frozen=True)
class ClipSpec:
    """One clip: a span of the timeline with its key frame and temporal window."""

    index: int  # position in the plan (0..n-1)
    start_s: float
    end_s: float
    key_time_s: float  # the key frame is the first frame at or after this time
    window_start_s: float  # the 32-frame window starts at the first frame at or after this time


@dataclass(frozen=True)
class ClipPlan:
    clips: tuple[ClipSpec, ...]
    config: ClipPlanConfig
    duration_s: float
    fps: float
    total_clips: int  # clips a 1-per-clip_seconds cut gives before `max_clips` thins them
    padded: bool = field(default=False)  # the whole video is shorter than one window
    warnings: tuple[str, ...] = ()  # what of the asked plan could not be honoured (module docstring)

    def __len__(self) -> int:
        return len(self.clips)


def plan_clips(duration_s: float, fps: float, config: ClipPlanConfig | None = None) -> ClipPlan:
    """Cut [0, duration) into clips and pick their key frames and windows.

    Whole clips of `clip_seconds`; a remainder of at least half a clip becomes a clip of its
    own, a shorter one is added to the last clip. Windows that would run past the end of the
    video are moved back so that they still hold `window_frames` real frames.
    """
    config = config or ClipPlanConfig()
    duration_s = max(float(duration_s), 0.0)
    fps = float(fps) if fps and fps > 0 else 25.0
    c = config.clip_seconds
    warnings: list[str] = []
    if c < 1.0 / fps:
        c = 1.0 / fps
        warnings.append(f"clips of {config.clip_seconds:g} s are shorter than one frame at {fps:g} fps: "
                        f"each clip is one frame ({c:.3g} s) long")
    total = max(1, int(math.floor(duration_s / c + 0.5)))
    if total > 1 and duration_s < total * c - c:  # guard against float round-off
        total -= 1
    chosen = _spread(total, config.max_clips)
    warnings += _unhonoured_request(config, duration_s, c, total, len(chosen))
    window_s = config.window_frames / fps
    latest_window_start = max(0.0, duration_s - window_s)
    clips = []
    for i, k in enumerate(chosen):
        start = k * c
        end = duration_s if k == total - 1 else min((k + 1) * c, duration_s)
        clips.append(
            ClipSpec(
                index=i,
                start_s=round(start, 6),
                end_s=round(max(end, start), 6),
                key_time_s=round(start, 6),
                window_start_s=round(min(start, latest_window_start), 6),
            )
        )
    padded = duration_s * fps < config.window_frames - 0.5
    return ClipPlan(tuple(clips), config, duration_s, fps, total, padded, tuple(warnings))


def _unhonoured_request(config: ClipPlanConfig, duration_s: float, c: float, total: int, kept: int) -> list[str]:
    """Warnings for a clip length the caller asked for that this video cannot give as asked."""
    if "clip_seconds" not in config.requested:
        return []
    if duration_s < c:
        return [f"the video ({duration_s:.2f} s) is shorter than one clip of {c:g} s: it is scored as one clip"]
    if kept < total and "max_clips" not in config.requested:
        return [f"{total} clips of {c:g} s planned, {kept} kept (max_clips {config.max_clips}), spread evenly: "
                f"the timeline has gaps"]
    return []


def _spread(total: int, limit: int) -> list[int]:
    """Indices of `limit` clips spread evenly over `total` (all of them when total <= limit)."""
    if total <= limit:
        return list(range(total))
    return sorted({min(total - 1, int((j + 0.5) * total / limit)) for j in range(limit)})


# --- applying a plan to a stream of frames ---------------------------------------------------

@dataclass
class ClipInputs:
    """What one clip hands to the feature stage: prepared key frame and window per branch."""

    spec: ClipSpec
    key: dict[str, Any]
    window: dict[str, list[Any]]
    key_time_s: float
    window_start_s: float
    window_end_s: float
    padded: bool = False


@dataclass
class _Building:
    spec: ClipSpec
    key: dict[str, Any] | None = None
    key_time_s: float = 0.0
    window: dict[str, list[Any]] = field(default_factory=dict)
    count: int = 0
    first_time_s: float | None = None
    last_time_s: float = 0.0


class ClipAssembler:
    """Walks a plan over decoded frames and emits each clip as soon as it is complete.

    `prepare_key(frame)` and `prepare_window(frame)` return per-branch inputs (dicts keyed by
    branch name); frames are converted once even where windows overlap. Windows cut short by
    the end of the stream are padded with their last frame and flagged. Far-apart clips
    (long videos thinned to `max_clips`) are reached by seeking instead of decoding the gap.

    Windows follow display time on the plan's frame grid: where a frame arrives more than one
    frame period after the one before (frames dropped from a variable-rate file), the one before
    is held for the periods in between, as a player shows it. A constant-rate file never has
    such a gap, so its windows are the decoded frames in order.
    """

    def __init__(
        self,
        plan: ClipPlan,
        prepare_key: Callable[[Any], dict[str, Any]],
        prepare_window: Callable[[Any], dict[str, Any]],
        seek_gap_s: float = 4.0,
    ):
        self.plan = plan
        self.prepare_key = prepare_key
        self.prepare_window = prepare_window
        self.seek_gap_s = seek_gap_s
        self.warnings: list[str] = list(plan.warnings)  # the plan's own come first, into the result

    def run(self, reader: Any) -> Iterator[ClipInputs]:
        clips = list(self.plan.clips)
        window_frames = self.plan.config.window_frames
        tol = 0.5 / self.plan.fps
        building: list[_Building] = []
        next_open = 0
        last_frame = None
        start_s = 0.0
        while True:
            restart_at = None
            for frame in reader.frames(start_s=start_s):
                t = frame.time_s
                last_frame = frame
                if not building and next_open < len(clips):
                    upcoming = clips[next_open].window_start_s
                    if upcoming - t > self.seek_gap_s:
                        restart_at = upcoming
                        break
                while next_open < len(clips) and t >= clips[next_open].window_start_s - tol:
                    building.append(_Building(clips[next_open]))
                    next_open += 1
                if not building:
                    continue
                window_inputs = self.prepare_window(frame)
                for b in building:
                    if b.key is None and t >= b.spec.key_time_s - tol:
                        b.key = self.prepare_key(frame)
                        b.key_time_s = t
                    self._hold_through_gap(b, t, window_frames)
                    self._append(b, window_inputs, t)
                done = [b for b in building if b.count >= window_frames and b.key is not None]
                for b in done:
                    building.remove(b)
                    yield self._finish(b, padded=False)
                if next_open >= len(clips) and not building:
                    return
            if restart_at is None:
                break
            start_s = restart_at
        # End of stream: complete what is open, pad short windows with their last frame.
        for b in building:
            if b.key is None and last_frame is not None:
                b.key = self.prepare_key(last_frame)
                b.key_time_s = last_frame.time_s
            if b.count == 0 and last_frame is not None:
                self._append(b, self.prepare_window(last_frame), last_frame.time_s)
            padded = b.count < window_frames
            for name, frames in b.window.items():
                frames.extend([frames[-1]] * (window_frames - len(frames)))
            yield self._finish(b, padded=padded)
        if next_open < len(clips):
            missing = len(clips) - next_open
            self.warnings.append(
                f"stream ended at {last_frame.time_s if last_frame else 0:.2f} s; "
                f"{missing} planned clip(s) past it were dropped"
            )

    def _hold_through_gap(self, b: _Building, t: float, window_frames: int) -> None:
        """Repeat the window's last frame for each frame period missing before time `t`."""
        if b.count == 0:
            return
        missing = int(round((t - b.last_time_s) * self.plan.fps)) - 1
        for _ in range(min(missing, window_frames - b.count - 1)):
            for frames in b.window.values():
                frames.append(frames[-1])
            b.count += 1

    @staticmethod
    def _append(b: _Building, inputs: dict[str, Any], t: float) -> None:
        for name, value in inputs.items():
            b.window.setdefault(name, []).append(value)
        if b.first_time_s is None:
            b.first_time_s = t
        b.last_time_s = t
        b.count += 1

    @staticmethod
    def _finish(b: _Building, padded: bool) -> ClipInputs:
        assert b.key is not None
        return ClipInputs(
            spec=b.spec,
            key=b.key,
            window=b.window,
            key_time_s=b.key_time_s,
            window_start_s=b.first_time_s if b.first_time_s is not None else b.key_time_s,
            window_end_s=b.last_time_s,
            padded=padded,
        )
