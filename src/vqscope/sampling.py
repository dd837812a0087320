"""The clip plan (BILIVQA): which key frame and which run of consecutive frames each clip uses.

A video is cut into clips of `clip_seconds` (one second by default). Each clip contributes its
first frame as the key frame for the spatial branch and `window_frames` (32) consecutive frames
for the temporal branch. Long videos keep at most `max_clips` clips, spread evenly, so the cost
of scoring a two-hour film is bounded. The plan is made from the probed duration and frame
rate, in seconds, so variable-frame-rate video is cut by time, not by frame count.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class ClipPlanConfig:
    clip_seconds: float = 1.0
    max_clips: int = 32
    window_frames: int = 32

    def __post_init__(self) -> None:
        if not self.clip_seconds > 0:
            raise ValueError("clip_seconds must be > 0")
        if self.max_clips < 1:
            raise ValueError("max_clips must be >= 1")
        if self.window_frames < 2:
            raise ValueError("window_frames must be >= 2")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def with_options(self, clip_seconds: float | None = None, max_clips: int | None = None) -> "ClipPlanConfig":
        """This plan with a caller's --clip-seconds / --max-clips where given (None keeps ours)."""
        if clip_seconds is None and max_clips is None:
            return self
        return ClipPlanConfig(
            clip_seconds=clip_seconds if clip_seconds is not None else self.clip_seconds,
            max_clips=max_clips if max_clips is not None else self.max_clips,
            window_frames=self.window_frames,
        )


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
    total = max(1, int(math.floor(duration_s / c + 0.5)))
    if total > 1 and duration_s < total * c - c:  # guard against float round-off
        total -= 1
    chosen = _spread(total, config.max_clips)
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
    return ClipPlan(tuple(clips), config, duration_s, fps, total, padded)


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
        self.warnings: list[str] = []

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
