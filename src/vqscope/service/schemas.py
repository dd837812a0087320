"""Request and response bodies of the HTTP API (they make the OpenAPI spec), with their bounds.

Bounds are checked here, before anything touches the file system or the database: a NUL byte
or an over-long path used to reach `os.path.realpath` / `stat` and come back as a 500; a
5 MB video name was stored and returned in every list; PostgreSQL refuses NUL in text. What
leaves the server is redacted here too (redact.py): source URLs, webhook URLs, storage paths.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from ..result import parse_dimensions
from .alerts import AlertRule, iso
from .redact import redact_text, redact_url, without_storage_path
from .store import Job

Tag = str
MAX_TAGS = 32
MAX_TAG_CHARS = 128
MAX_PATH_BYTES = 4095  # PATH_MAX (4096) less the terminating NUL
MAX_NAME_BYTES = 255  # NAME_MAX: one component of a path
MAX_URL_CHARS = 8192
MAX_VIDEO_CHARS = 1000
MAX_WEBHOOK_CHARS = 2048
# Shortest clip a plan can honour: sampling.plan_clips gives each clip its own key frame at or after
# its start, and below ~0.1 s consecutive clips share key frames at common frame rates (10-240 fps)
# while the clip count (duration / clip_seconds) runs into the billions. `vqscope serve --clip-seconds`
# uses the same bound.
MIN_CLIP_SECONDS = 0.1
MAX_CLIP_SECONDS = 60.0


def no_control_characters(value: str, what: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError(f"{what} may not contain control characters (NUL, newline, ...)")
    return value


def check_server_path(path: str) -> str:
    """A server path's form: no NUL, encodable, at most PATH_MAX bytes and NAME_MAX per component.

    Runs before sources.check_path, whose realpath/stat calls raise ValueError or OSError on these.
    """
    if "\x00" in path:
        raise ValueError("a path may not contain a NUL byte")
    try:
        raw = os.fsencode(path)
    except UnicodeError:
        raise ValueError("the path is not valid text (unpaired surrogate)") from None
    if len(raw) > MAX_PATH_BYTES:
        raise ValueError(f"a path is at most {MAX_PATH_BYTES} bytes (this one is {len(raw)})")
    if any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise ValueError(f"each part of a path is at most {MAX_NAME_BYTES} bytes")
    return path


def check_webhook(url: str | None) -> str | None:
    """A webhook URL's form: http(s), a host, no spaces or control characters, at most 2048 characters."""
    if url is None:
        return None
    if len(url) > MAX_WEBHOOK_CHARS:
        raise ValueError(f"a webhook URL is at most {MAX_WEBHOOK_CHARS} characters")
    if any(ch.isspace() for ch in url):
        raise ValueError("a webhook URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number or out of range)
    except ValueError:
        raise ValueError("the webhook is not a valid URL (bad host or port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook must be an http:// or https:// URL with a host")
    return url


def clean_tags(tags: list[str]) -> list[str]:
    out = []
    if len(tags) > MAX_TAGS * 4:
        raise ValueError(f"at most {MAX_TAGS} tags per job")
    for tag in tags:
        text = str(tag)
        if len(text) > MAX_TAGS * (MAX_TAG_CHARS + 1):
            raise ValueError(f"at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters per job")
        no_control_characters(text, "a tag")
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if len(part) > MAX_TAG_CHARS:
                raise ValueError(f"a tag is at most {MAX_TAG_CHARS} characters")
            out.append(part)
    if len(set(out)) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per job")
    return sorted(set(out))


def dimension_list(value: Any) -> list[str] | None:
    """A `dimensions` field or parameter: None, or known names (ValueError listing the valid ones)."""
    if value is None or value == [] or value == "":
        return None
    try:
        return list(parse_dimensions(value if isinstance(value, str) else [str(v) for v in value]))
    except ConfigError as exc:
        raise ValueError(exc.message) from None


class ScoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_clips: int | None = Field(None, ge=1, le=10_000, description="at most this many clips, spread evenly")
    clip_seconds: float | None = Field(None, ge=MIN_CLIP_SECONDS, le=MAX_CLIP_SECONDS,
                                       description="clip length in seconds (default 1)")
    dimensions: list[str] | None = Field(
        None, description="report only these dimensions (color, noise, artifact, blur, temporal, overall) in the "
        "job's result, at video and clip level; a list or a comma-separated string")

    @field_validator("dimensions", mode="before")
    @classmethod
    def _dimensions(cls, v: Any) -> list[str] | None:
        return dimension_list(v)

    def as_dict(self) -> dict[str, Any]:
        """The scoring options only (not a subclass's other fields), where given."""
        return {k: getattr(self, k) for k in ScoreOptions.model_fields if getattr(self, k) is not None}


class JobRequest(ScoreOptions):
    """One video to score: a path the server can read, or an http(s) URL it can fetch."""

    path: str | None = Field(None, description=f"absolute path on the server (at most {MAX_PATH_BYTES} bytes)")
    url: str | None = Field(None, max_length=MAX_URL_CHARS,
                            description="http:// or https:// URL, fetched when the job runs")
    tags: list[Tag] = Field(default_factory=list, description="labels to filter and group by")
    video: str | None = Field(None, min_length=1, max_length=MAX_VIDEO_CHARS,
                              description="name to report the video under (default: file name or URL, the "
                                          "URL without its credentials and query)")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else check_server_path(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else no_control_characters(v, "a URL")

    @field_validator("video")
    @classmethod
    def _video(cls, v: str | None) -> str | None:
        return None if v is None else no_control_characters(v, "a video name")

    @model_validator(mode="after")
    def _one_source(self) -> "JobRequest":
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of `path` and `url`")
        return self

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return clean_tags(v)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[JobRequest] = Field(min_length=1, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, description="added to every item's tags")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return clean_tags(v)


class JobError(BaseModel):
    kind: str
    message: str


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    video: str
    source_kind: Literal["upload", "path", "url"]
    source: str | None = Field(None, description="the path or URL (not shown for uploads)")
    tags: list[str]
    batch_id: str | None
    options: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int
    model: str | None
    score: float | None
    scaled_score: float | None
    grade: str | None
    error: JobError | None
    result: dict[str, Any] | None = Field(None, description="the result contract, once done")

    @classmethod
    def from_job(cls, job: Job, with_result: bool = True) -> "JobOut":
        return cls(
            id=job.id, state=job.state, video=public_video(job), source_kind=job.source_kind,
            source=public_source(job), tags=job.tags, batch_id=job.batch_id,
            options=job.options, created_at=iso(job.created_at), started_at=iso(job.started_at),
            finished_at=iso(job.finished_at), attempts=job.attempts, model=job.model, score=job.score,
            scaled_score=job.scaled_score, grade=job.grade,
            error=JobError(kind=job.error_kind, message=public_error(job) or "") if job.error_kind else None,
            result=public_result(job.result) if with_result else None,
        )


# -- what clients see of a job ----------------------------------------------------------------------
def public_video(job: Job) -> str:
    """The video's name; a URL (the default name of a URL job) without its credentials and query."""
    return redact_text(job.video) or job.video


def public_source(job: Job) -> str | None:
    if job.source_kind == "upload":
        return None
    return redact_url(job.source) if job.source_kind == "url" else job.source


def public_error(job: Job) -> str | None:
    """The job's error message naming the uploaded file (not the server's copy), URLs redacted."""
    stored_at = job.source if job.source_kind == "upload" else None
    return redact_text(without_storage_path(job.error_message, job.id, stored_at, public_video(job)))


def public_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None or "://" not in str(result.get("video", "")):
        return result
    return {**result, "video": redact_text(result["video"])}


class JobList(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class BatchOut(BaseModel):
    id: str
    counts: dict[str, int]
    jobs: list[JobOut]


class RuleOut(BaseModel):
    rule: AlertRule = Field(description="the rule; its webhook shown as scheme://host/redacted (write-only: a PUT "
                                        "that sends this form back keeps the stored webhook)")
    webhook_set: bool = False
    webhook_host: str | None = None
    problem: str | None = Field(None, description="why the monitor skips this rule, if it does")
    state: Literal["ok", "firing"]
    since: str | None
    last_value: float | None
    last_count: int | None
    evaluated_at: str | None


class EventOut(BaseModel):
    id: int
    rule: str
    status: str
    at: str
    value: float | None
    message: str
    webhook: str | None
    delivered: bool
    delivery_error: str | None


class ErrorOut(BaseModel):
    error: str
    message: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    model: str
    workers: int
    jobs: dict[str, int]
    problems: list[str] = Field(default_factory=list, description="why degraded: one line each")
    worker_states: list[dict[str, Any]] = Field(default_factory=list, description="each worker's process and job")
