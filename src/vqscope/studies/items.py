"""Where a study's videos come from: files (server paths or uploads) and scored jobs.

Every video is checked when it joins a study, not when a rater meets it: a file that does
not decode is refused with its typed error (the same one `vqscope score` gives), so a study
never sends raters a broken item.

What raters watch must be what the model scored. A file the browser plays as it is (H.264,
VP9 or AV1 in MP4, VP8/VP9/AV1 in WebM, 8-bit 4:2:0) is shown untouched. Anything else
(MKV, AVI, 10-bit, 4:2:2, ProRes, ...) gets a rating copy: H.264 at CRF 10, close to
visually lossless, with the display geometry applied; the item's `info` says so, because a
re-encode, however light, is not the original.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import VQScopeError
from ..video import iter_frames, probe
from .store import NewItem

#: (container family, codec) pairs that Chromium, Firefox and Safari play in a <video> element.
_PLAYABLE = {
    ("mp4", "h264"), ("mp4", "vp9"), ("mp4", "av1"),
    ("webm", "vp8"), ("webm", "vp9"), ("webm", "av1"),
}
_MEDIA_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}
_PLAYABLE_PIX_FMTS = {"yuv420p", "yuvj420p"}
RATING_COPY_CRF = 10


@dataclass(frozen=True)
class Skipped:
    """A candidate that could not join a study, and why."""

    source: str
    reason: str


def _family(container: str, path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    if "mp4" in container.split(",") or "mov" in container.split(","):
        return "mp4" if suffix in (".mp4", ".m4v", ".mov") else None
    if "webm" in container.split(",") and suffix == ".webm":
        return "webm"
    return None


def browser_media(path: str) -> tuple[str | None, dict[str, Any]]:
    """(media type, probe figures) of a video: the type is None where a browser cannot play
    the file as it is. Raises the video's typed error where it does not decode at all."""
    info = probe(path)
    figures = {"width": info.width, "height": info.height, "fps": round(info.fps, 3),
               "duration_s": round(info.duration_s, 3), "codec": info.codec, "pix_fmt": info.pix_fmt}
    family = _family(info.container, path)
    playable = family is not None and (family, info.codec) in _PLAYABLE and info.pix_fmt in _PLAYABLE_PIX_FMTS
    return (_MEDIA_TYPES[family] if playable and family else None), figures


def rating_copy(path: str, target: Path, fps: float) -> Path:
    """An H.264 copy of `path` that any browser plays (display geometry applied, each
    frame's time kept). Frames stream through: a long video is never held in memory."""
    import itertools

    from ..data.encode import write_video

    frames = iter_frames(path)  # decodes the whole file: a broken one fails here, typed
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames")
    width, height = first.display_size
    width, height = max(2, width - width % 2), max(2, height - height % 2)
    pictures, times = itertools.tee(itertools.chain([first], frames))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part.mp4")
    try:
        write_video(partial, (f.rgb(width, height) for f in pictures), fps=float(fps) if fps > 0 else 25.0,
                    crf=RATING_COPY_CRF, preset="medium", frame_times=(f.time_s - first.time_s for f in times))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def item_from_file(
    path: str,
    media_dir: Path,
    *,
    video: str | None = None,
    source_kind: str = "path",
    kind: str = "video",
    label: str | None = None,
    gold: float | None = None,
    reason: str | None = None,
    copy: bool = False,
    job: Mapping[str, Any] | None = None,
) -> NewItem:
    """A study item for a video file on the server.

    `copy` puts a copy in `media_dir` (uploads are stored there already; a path is copied so
    the study keeps working when the original moves). `job` is the scoring job the file
    came from (its id, score and scaled score annotate the item).
    """
    path = os.path.abspath(path)
    media_type, info = browser_media(path)
    media = path
    if media_type is None:
        media = str(rating_copy(path, media_dir / f"{uuid.uuid4().hex}.mp4", info["fps"]))
        media_type = "video/mp4"
        info["rating_copy"] = f"re-encoded for the browser (H.264, CRF {RATING_COPY_CRF})"
    elif copy and source_kind != "upload":
        target = media_dir / f"{uuid.uuid4().hex}{Path(path).suffix.lower()}"
        media_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        media = str(target)
    return NewItem(
        video=video or os.path.basename(path), media=media, source_kind=source_kind,
        source=None if source_kind == "upload" else path, kind=kind, media_type=media_type,
        job_id=(job or {}).get("id"), model_score=(job or {}).get("score"),
        scaled_score=(job or {}).get("scaled_score"), label=label, gold=gold, reason=reason, info=info,
    )


def items_from_jobs(jobs: Sequence[Any], media_dir: Path, reasons: Mapping[str, str] | None = None,
                    ) -> tuple[list[NewItem], list[Skipped]]:
    """Items for scored jobs whose video the server still holds (a server path, or an upload
    kept with --keep-inputs); the others are skipped with the reason."""
    items: list[NewItem] = []
    skipped: list[Skipped] = []
    for job in jobs:
        if job.state != "done":
            skipped.append(Skipped(job.id, f"job is {job.state}, not done"))
            continue
        if job.source_kind == "url" or not os.path.isfile(job.source):
            why = "was fetched from a URL and not kept" if job.source_kind == "url" else "its file is gone"
            skipped.append(Skipped(job.id, f"{job.video}: {why}"))
            continue
        try:
            items.append(item_from_file(
                job.source, media_dir, video=job.video, source_kind="job",
                reason=(reasons or {}).get(job.id),
                job={"id": job.id, "score": job.score, "scaled_score": job.scaled_score},
            ))
        except VQScopeError as exc:
            skipped.append(Skipped(job.id, exc.message))
    return items, skipped
