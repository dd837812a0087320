"""Rating studies over HTTP: the operator's API and the raters' page.

    POST /api/studies                         create (server paths, job ids, a query over jobs)   (token)
    POST /api/studies/{id}/items/upload       add an uploaded video (before raters are invited)   (token)
    POST /api/studies/{id}/raters             invite raters: their links, shown once              (token)
    GET  /api/studies, /api/studies/{id}      studies, items, raters' progress                     (token)
    GET  /api/studies/{id}/results            MOS with intervals, screening, tags                  (token)
    GET  /api/studies/{id}/export?format=     csv (a dataset `vqscope train` reads) | finevd | ratings  (token)
    POST /api/studies/{id}/ratings/import     ratings collected elsewhere (CSV)                    (token)
    POST /api/studies/{id}/close              stop taking ratings                                  (token)

    GET  /rate/{token}                        the rating page of one rater
    GET  /api/rate/{token}                    the rater's study, progress and next task
    GET  /api/rate/{token}/media/{item}       a video on the rater's list (HTTP Range)
    POST /api/rate/{token}/tasks/{position}   an answer (committed before the reply)

Everything an operator does needs the service's token: a study's results are the data a
platform pays raters for, and its items name server paths. A rater's link carries only their
own invitation token, which reaches nothing but their own task list.
"""

from __future__ import annotations

import html
import io
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, NotAssignedError, UnknownStudyError
from ..studies.builder import Extra, StudySpec, build_study
from ..studies.design import StudyConfig
from ..studies.items import item_from_file
from ..studies.ratings import ACR_LABELS, RATED_DIMENSIONS
from ..studies.store import Answer, Rater, Study, StudyItem, StudyStore, Task
from ..taxonomy import DISTORTION_TEXT, DISTORTION_TYPES
from .sources import display_name, safe_suffix, store_stream
from .store import JobFilter
from .times import parse_time

_NOT_VALID = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Rating link not valid</title>'
              '<link rel="stylesheet" href="/static/rate.css"></head><body data-state="error"><main>'
              '<h1>Rating link not valid</h1><p>{message}</p></main></body></html>')
MAX_IMPORT_BYTES = 64 << 20  # a ratings CSV of a million rows is about 40 MB
RATE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


# -- request and response bodies -----------------------------------------------------------------
class ExtraIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="absolute server path")
    job: str | None = Field(None, description="a scored job's id")
    label: Literal["bad", "poor", "fair", "good", "excellent"] | None = Field(None, description="anchors: the label")
    score: int | None = Field(None, ge=1, le=5, description="gold items: the expected answer")


class JobQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(None, description="created at/after: ISO 8601, epoch s, or e.g. 7d")
    until: str | None = None
    tags: list[str] = Field(default_factory=list, description="all of these tags")
    grades: list[str] = Field(default_factory=list)
    model: str | None = None
    limit: int = Field(1000, ge=1, le=20_000, description="newest first, at most this many candidates")


class StudyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    method: Literal["acr", "finevd", "pairwise"] = "acr"
    per_rater: int | None = Field(None, ge=1, description="items (pairs) per rater; default: all")
    repeats: int = Field(2, ge=0, le=50, description="items each rater rates twice (consistency)")
    instructions: str = Field("", max_length=5000)
    full_view: bool = Field(True, description="rating unlocks only after the video played through once")
    seed: int = 0
    paths: list[str] = Field(default_factory=list, max_length=20_000, description="server paths of videos")
    jobs: list[str] = Field(default_factory=list, max_length=20_000, description="ids of scored jobs")
    query: JobQueryIn | None = Field(None, description="scored jobs to draw from")
    select: int | None = Field(None, ge=1, le=20_000, description="choose this many from the candidates")
    bands: int = Field(5, ge=1, le=20, description="score bands the choice is spread over")
    anchors: list[ExtraIn] = Field(default_factory=list, max_length=20)
    gold: list[ExtraIn] = Field(default_factory=list, max_length=50)
    pairs: int | None = Field(None, ge=1, le=100_000, description="pairwise: close-call pairs")
    copy_files: bool = Field(False, description="copy path videos into the data folder")


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=list, max_length=1000)
    count: int | None = Field(None, ge=1, le=1000, description="this many raters named rater-N")


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int | None = None  # range checked by the store, so the message names the scale
    dimensions: dict[str, int] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=len(DISTORTION_TYPES))
    preferred: Literal["first", "second"] | None = None
    watched_s: float | None = Field(None, ge=0, le=86_400)


# -- views ------------------------------------------------------------------------------------------
def study_out(study: Study) -> dict[str, Any]:
    from .alerts import iso

    return {"id": study.id, "name": study.name, "method": study.method, "state": study.state,
            "config": study.config.to_dict(), "model": study.model, "created_at": iso(study.created_at),
            "closed_at": iso(study.closed_at), "items": study.items, "raters": study.raters,
            "ratings": study.ratings}


def item_out(item: StudyItem) -> dict[str, Any]:
    return {"id": item.id, "kind": item.kind, "video": item.video, "source_kind": item.source_kind,
            "job_id": item.job_id, "model_score": item.model_score, "scaled_score": item.scaled_score,
            "label": item.label, "gold": item.gold, "reason": item.reason, "info": item.info}


def rater_out(rater: Rater) -> dict[str, Any]:
    from .alerts import iso

    return {"id": rater.id, "name": rater.name, "source": rater.source, "done": rater.done, "total": rater.total,
            "training_done": rater.training_done, "training_total": rater.training_total,
            "last_seen_at": iso(rater.last_seen_at)}


def progress(rater: Rater, tasks: list[Task]) -> dict[str, int]:
    return {"done": sum(t.answered for t in tasks), "total": len(tasks),
            "training_done": sum(t.answered for t in tasks if t.phase == "training"),
            "training_total": sum(t.phase == "training" for t in tasks)}


def task_out(study: Study, token: str, task: Task | None) -> dict[str, Any] | None:
    if task is None:
        return None
    form = "acr" if task.phase == "training" else study.method
    return {"position": task.position, "phase": task.phase, "form": form,
            "items": [{"id": i.id, "media": f"/api/rate/{token}/media/{i.id}", "media_type": i.media_type,
                       "label": i.label if task.phase == "training" else None} for i in task.items]}


def rater_view(study: Study, rater: Rater, token: str, tasks: list[Task]) -> dict[str, Any]:
    nxt = next((t for t in tasks if not t.answered), None)
    return {
        "study": {"id": study.id, "name": study.name, "method": study.method,
                  "instructions": study.config.instructions, "labels": list(ACR_LABELS),
                  "dimensions": list(RATED_DIMENSIONS),
                  "distortions": [{"type": t, "text": DISTORTION_TEXT[t]} for t in DISTORTION_TYPES],
                  "full_view": study.config.full_view, "state": study.state},
        "rater": {"id": rater.id, "name": rater.name},
        "progress": progress(rater, tasks),
        "task": task_out(study, token, nxt if study.state == "open" else None),
    }


# -- routes -----------------------------------------------------------------------------------------
def add_study_routes(app: FastAPI, service: Any, auth: list[Any], static: Any) -> None:
    """Wire the study API into the service's app (`auth`: the write-token dependency)."""
    jobs = service.store
    studies = StudyStore(jobs.engine, clock=jobs.clock)
    service.studies = studies
    config = service.config
    media_dir = config.data_dir / "studies" / "media"

    @app.post("/api/studies", status_code=201, dependencies=auth, tags=["studies"],
              summary="Create a rating study from server paths, scored jobs or a query over jobs")
    def create_study(req: StudyIn) -> dict[str, Any]:
        try:
            study_config = StudyConfig(method=req.method, per_rater=req.per_rater, repeats=req.repeats,
                                       instructions=req.instructions, full_view=req.full_view, seed=req.seed)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        query = None
        if req.query is not None:
            now = jobs.clock()
            try:
                since, until = parse_time(req.query.since, now), parse_time(req.query.until, now)
            except ValueError as exc:
                raise ConfigError(f"query: {exc}") from None
            query = JobFilter(tags=tuple(req.query.tags), grades=tuple(req.query.grades), model=req.query.model,
                              since=since, until=until)
        spec = StudySpec(
            name=req.name, config=study_config, paths=req.paths, jobs=req.jobs, query=query,
            query_limit=req.query.limit if req.query else 1000, select=req.select, bands=req.bands,
            anchors=[Extra(**a.model_dump()) for a in req.anchors], gold=[Extra(**g.model_dump()) for g in req.gold],
            pairs=req.pairs, copy=req.copy_files,
        )
        built = build_study(spec, jobs=jobs, studies=studies, media_dir=media_dir, path_roots=config.path_roots,
                            model=service.model["id"])
        return {**study_out(built.study), "item_list": [item_out(i) for i in studies.items(built.study.id)],
                "skipped": [{"source": s.source, "reason": s.reason} for s in built.skipped]}

    @app.post("/api/studies/{study_id}/items/upload", status_code=201, dependencies=auth, tags=["studies"],
              summary="Add an uploaded video to a study (until raters are invited)")
    def upload_item(
        study_id: str,
        file: Annotated[UploadFile, File(description="the video file")],
        kind: Annotated[Literal["video", "anchor", "gold"], Form()] = "video",
        label: Annotated[Literal["bad", "poor", "fair", "good", "excellent"] | None, Form()] = None,
        score: Annotated[int | None, Form(ge=1, le=5, description="gold items: the expected answer")] = None,
    ) -> dict[str, Any]:
        study = studies.get(study_id)  # 404 before the upload is stored
        if kind == "anchor" and label is None:
            raise HTTPException(422, "an anchor needs its label")
        if kind == "gold" and score is None:
            raise HTTPException(422, "a gold item needs its expected score")
        target = media_dir / f"{uuid.uuid4().hex}{safe_suffix(file.filename or '')}"
        store_stream(file.file, target, config.max_upload_bytes)
        try:
            item = item_from_file(str(target), media_dir, video=display_name(file.filename, target.name),
                                  source_kind="upload", kind=kind, label=label,
                                  gold=float(score) if score is not None else None)
            if item.media != str(target):  # a rating copy was made: the upload itself is not needed
                target.unlink(missing_ok=True)
            return item_out(studies.add_items(study.id, [item])[0])
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    @app.post("/api/studies/{study_id}/raters", status_code=201, dependencies=auth, tags=["studies"],
              summary="Invite raters: each gets a link with their own token (shown only now)")
    def invite(study_id: str, req: InviteIn, request: Request) -> dict[str, Any]:
        names = list(req.names)
        if req.count:
            first = studies.get(study_id).raters
            names += [f"rater-{first + len(names) + k + 1}" for k in range(req.count)]
        if not names:
            raise HTTPException(422, "give names or a count of raters")
        base = str(request.base_url).rstrip("/")
        return {"raters": [{**rater_out(inv.rater), "token": inv.token, "link": base + inv.path}
                           for inv in studies.invite(study_id, names)]}

    @app.get("/api/studies", dependencies=auth, tags=["studies"], summary="Studies, newest first")
    def list_studies() -> list[dict[str, Any]]:
        return [study_out(s) for s in studies.list()]

    @app.get("/api/studies/{study_id}", dependencies=auth, tags=["studies"],
             summary="A study: its items, pairs and raters' progress")
    def get_study(study_id: str) -> dict[str, Any]:
        study = studies.get(study_id)
        return {**study_out(study), "item_list": [item_out(i) for i in studies.items(study_id)],
                "pairs": [{"first": a.id, "second": b.id, "reason": r} for a, b, r in studies.pairs(study_id)],
                "rater_list": [rater_out(r) for r in studies.raters(study_id)]}

    @app.get("/api/studies/{study_id}/results", dependencies=auth, tags=["studies"],
             summary="MOS per video with intervals, per dimension, tags; screened raters with reasons")
    def results(study_id: str) -> dict[str, Any]:
        from ..studies.results import study_results

        return study_results(studies, study_id).to_dict()

    @app.get("/api/studies/{study_id}/export", dependencies=auth, tags=["studies"],
             summary="A study as a dataset: csv (vqscope train), finevd (JSON), or the raw ratings")
    def export(study_id: str, format: Literal["csv", "finevd", "ratings"] = "csv") -> Response:  # noqa: A002
        from ..studies.exchange import export_text

        text, media_type, name = export_text(studies, study_id, format)
        return Response(text, media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/api/studies/{study_id}/ratings/import", dependencies=auth, tags=["studies"],
              summary="Import ratings collected elsewhere: a CSV of rater, video, score[, dimensions, tags]")
    def import_ratings(study_id: str, file: Annotated[UploadFile, File(description="ratings CSV")]) -> dict[str, Any]:
        from ..studies.exchange import read_ratings_csv

        studies.get(study_id)
        raw = file.file.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"a ratings file is at most {MAX_IMPORT_BYTES >> 20} MB")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HTTPException(422, "the ratings file is not UTF-8 text") from None
        rows = read_ratings_csv(io.StringIO(text), file.filename or "ratings.csv")
        return studies.import_ratings(study_id, rows)

    @app.post("/api/studies/{study_id}/close", dependencies=auth, tags=["studies"], summary="Stop taking ratings")
    def close(study_id: str) -> dict[str, Any]:
        return study_out(studies.close(study_id))

    # -- the raters' side ---------------------------------------------------------------------
    @app.get("/rate/{token}", include_in_schema=False)
    def rate_page(token: str) -> HTMLResponse:
        headers = {"Content-Security-Policy": RATE_CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        try:
            studies.rater_by_token(token)
        except UnknownStudyError as exc:  # a person opened this link: a page, not JSON
            return HTMLResponse(_NOT_VALID.format(message=html.escape(exc.message)), status_code=404, headers=headers)
        return HTMLResponse(static("rate.html"), headers=headers)

    @app.get("/api/rate/{token}", tags=["rating"], summary="A rater's study, progress and next task")
    def rater_state(token: str) -> dict[str, Any]:
        study, rater = studies.rater_by_token(token)
        studies.seen(rater)
        return rater_view(study, rater, token, studies.tasks(rater))

    @app.get("/api/rate/{token}/media/{item_id}", tags=["rating"], summary="A video on the rater's list")
    def media(token: str, item_id: str) -> FileResponse:
        _study, rater = studies.rater_by_token(token)
        item = next((i for t in studies.tasks(rater) for i in t.items if i.id == item_id), None)
        if item is None or not item.media:
            raise NotAssignedError(f"video {item_id} is not on this rater's list")
        return FileResponse(item.media, media_type=item.media_type or "application/octet-stream",
                            headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/rate/{token}/tasks/{position}", status_code=201, tags=["rating"],
              summary="Answer a task (stored before the reply; a second answer to the same task gets 409)")
    def answer(token: str, position: int, body: AnswerIn) -> dict[str, Any]:
        study, rater = studies.rater_by_token(token)
        studies.submit(study, rater, position, Answer(score=body.score, dimensions=dict(body.dimensions),
                                                      tags=list(body.tags), preferred=body.preferred,
                                                      watched_s=body.watched_s))
        view = rater_view(study, rater, token, studies.tasks(rater))
        return {"saved": True, "progress": view["progress"], "task": view["task"]}


#: HTTP status of each study error kind (the service's error handler reads it).
STUDY_STATUS = {"unknown_study": 404, "not_assigned": 404, "duplicate_rating": 409, "study_closed": 409,
                "study_frozen": 409, "out_of_order": 409, "bad_rating": 422}

