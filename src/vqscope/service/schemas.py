"""Request and response bodies of the HTTP API (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from ..result import parse_dimensions
from .alerts import AlertRule, iso
from .store import Job

Tag = str
MAX_TAGS = 32


def clean_tags(tags: list[str]) -> list[str]:
    out = []
    for tag in tags:
        for part in str(tag).split(","):
            part = part.strip()
            if not part:
                continue
            if len(part) > 128:
                raise ValueError("a tag is at most 128 characters")
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
    clip_seconds: float | None = Field(None, gt=0, le=60, description="clip length in seconds (default 1)")
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

    path: str | None = Field(None, description="absolute path on the server")
    url: str | None = Field(None, description="http:// or https:// URL, fetched when the job runs")
    tags: list[Tag] = Field(default_factory=list, description="labels to filter and group by")
    video: str | None = Field(None, description="name to report the video under (default: file name or URL)")

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
            id=job.id, state=job.state, video=job.video, source_kind=job.source_kind,
            source=None if job.source_kind == "upload" else job.source, tags=job.tags, batch_id=job.batch_id,
            options=job.options, created_at=iso(job.created_at), started_at=iso(job.started_at),
            finished_at=iso(job.finished_at), attempts=job.attempts, model=job.model, score=job.score,
            scaled_score=job.scaled_score, grade=job.grade,
            error=JobError(kind=job.error_kind, message=job.error_message or "") if job.error_kind else None,
            result=job.result if with_result else None,
        )


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
    rule: AlertRule
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
