"""The HTTP service: submit videos, fetch results, watch quality.

    POST /api/jobs             a path or URL            -> 202 + job      (token)
    POST /api/jobs/upload      a file (multipart)       -> 202 + job      (token)
    POST /api/batches          many paths/URLs          -> 202 + batch    (token)
    GET  /api/jobs             list, filtered by time, state, grade, dimension, tag, batch
    GET  /api/jobs/{id}        state and result (?wait=S waits up to S seconds for it)
    GET  /api/jobs/{id}/result the result contract (409 while pending, 422 if it failed)
    GET  /api/jobs/{id}/ask    ?q=is it shaky? -> the answer, from the job's result
    GET  /api/batches/{id}     a batch's jobs and counts
    GET/PUT/DELETE /api/alert-rules[/{name}]   alert rules (writes need the token)
    GET  /api/alerts           alert notifications sent
    GET  /api/dashboard        the numbers behind the dashboard
    GET  /dashboard            the dashboard page       GET /metrics   Prometheus
    GET  /healthz              liveness + database      GET /openapi.json   the API spec
    /api/studies..., /rate/... rating studies and the raters' page (service/studies.py)

Reads are open; every write needs `Authorization: Bearer TOKEN`. Handlers are plain
functions (FastAPI runs them in its thread pool) because the database calls block.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..ask import answer as answer_question
from ..ask import model_predicts, parse_question
from ..errors import ConfigError, VQScopeError
from ..result import Result, require_dimensions
from ..model import Model
from ..zoo import resolve_model_path
from .alerts import AlertMonitor, AlertRule, iso
from .config import ServiceConfig
from .dashboard import WINDOWS, build_dashboard
from .limits import BodyLimitMiddleware
from .metrics import ServiceMetrics
from .schemas import (
    BatchOut,
    BatchRequest,
    ErrorOut,
    EventOut,
    Health,
    JobList,
    JobOut,
    JobRequest,
    RuleOut,
    ScoreOptions,
    clean_tags,
    dimension_list,
)
from .sources import check_path, check_url, display_name, safe_suffix, store_stream
from .store import STATES, JobFilter, JobStore, NewJob, safe_url
from .studies import STUDY_STATUS, add_study_routes
from .worker import WorkerPool

log = logging.getLogger("vqscope.service")

_STATUS = {"too_large": 413, "path_not_allowed": 403, **STUDY_STATUS}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "rate.js": "text/javascript",
           "rate.css": "text/css"}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WRITE = {401: {"model": ErrorOut, "description": "missing or wrong token"}}


@dataclass
class Service:
    """Everything the handlers share; `app.state.service`."""

    config: ServiceConfig
    store: JobStore
    pool: WorkerPool
    monitor: AlertMonitor
    metrics: ServiceMetrics
    model: dict[str, Any]
    token: str
    studies: Any = None  # the StudyStore, set by add_study_routes


def load_rules_file(path: Path) -> list[AlertRule]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        items = data["rules"] if isinstance(data, dict) else data
        return [AlertRule.model_validate(item) for item in items]
    except OSError as exc:
        raise ConfigError(f"cannot read alert rules {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid list of alert rules ({exc})".replace("\n", " ")) from None


def model_summary(model: Model) -> dict[str, Any]:
    cal = model.calibration
    return {
        "id": model.id,
        "calibrated": cal is not None,
        "benchmark": cal.benchmark if cal else None,
        "fingerprint": cal.fingerprint if cal else None,
        "benchmark_size": cal.size if cal else None,
        "grades": model.grades.to_dict(),
        "dimensions": list(model_predicts(model)[0]),
        "distortions": list(model_predicts(model)[1]),
    }


def create_app(
    config: ServiceConfig,
    *,
    clock: Callable[[], float] = time.time,
    background: bool = True,
) -> FastAPI:
    """Build the app; workers and the alert monitor run while the app runs (`background`)."""
    config.prepare()
    token = config.resolved_token()
    model_path = resolve_model_path(config.model)
    model = Model.load(model_path)  # fail now on a bad model; each worker loads its own copy
    summary = model_summary(model)
    store = JobStore(config.resolved_database_url(), clock=clock)
    if config.alert_rules_file:
        for rule in load_rules_file(config.alert_rules_file):
            store.put_rule(rule.name, rule.model_dump(mode="json"))
    metrics = ServiceMetrics(store, {"model": model.id, "fingerprint": summary["fingerprint"] or ""})
    pool = WorkerPool(store, config, lambda: Model.load(model_path), metrics)
    monitor = AlertMonitor(store, config.alert_interval_s, config.default_webhook, metrics)
    service = Service(config, store, pool, monitor, metrics, summary, token)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if background:
            pool.start()
            monitor.start()
            log.info("vqscope service: model %s, database %s, %d worker(s)", model.id,
                     safe_url(store.url), config.workers)
        try:
            yield
        finally:
            if background:
                pool.stop()
                monitor.stop()
            store.close()

    app = FastAPI(
        title="vqscope",
        version=__version__,
        summary="No-reference video quality assessment as a service",
        description="Submit videos, fetch calibrated quality results, watch quality over time. "
        "Writes need `Authorization: Bearer TOKEN`.",
        lifespan=lifespan,
    )
    app.state.service = service
    # Multipart framing adds a little to the file itself; the file's own limit is exact.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes + 64 * 1024)
    _add_error_handlers(app)
    _add_job_routes(app, service)
    _add_alert_routes(app, service)
    _add_monitoring_routes(app, service)
    add_study_routes(app, service, [Depends(_auth(service))], _static)
    return app


# -- shared pieces ------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="the service's write token")


def _auth(service: Service) -> Callable[..., None]:
    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), service.token.encode()):
            raise HTTPException(401, "a valid token is needed to write (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VQScopeError)
    async def _typed(_request: Request, exc: VQScopeError) -> JSONResponse:
        return JSONResponse({"error": exc.kind, "message": exc.message}, status_code=_STATUS.get(exc.kind, 422))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the offending input, which fails (500) when that input is
        # binary, e.g. a video posted as multipart to the JSON endpoint. Say where and what, not the bytes.
        problems = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                    for e in exc.errors()]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        return JSONResponse({"error": "invalid_request", "message": f"{where}: {first['msg']}".strip(": "),
                             "detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = {401: "unauthorized", 404: "not_found", 409: "not_finished", 413: "too_large"}.get(
            exc.status_code, "http_error")
        return JSONResponse({"error": name, "message": str(exc.detail), "detail": exc.detail},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))


def parse_time(text: str | None, now: float) -> float | None:
    """ISO 8601 (UTC if no zone), epoch seconds, or a look-back like 90m, 24h, 7d."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{text!r} is not a time (ISO 8601, epoch seconds, or e.g. 24h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for item in (values or []) for v in item.split(",") if v.strip())


def _job_or_404(service: Service, job_id: str):
    job = service.store.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


# -- jobs -------------------------------------------------------------------------------------
def _add_job_routes(app: FastAPI, service: Service) -> None:
    store, config = service.store, service.config
    auth = [Depends(_auth(service))]

    def accepted(jobs: list[NewJob], batch_id: str | None = None):
        stored = store.submit(jobs, batch_id=batch_id, max_attempts=config.max_attempts)
        for job in stored:
            service.metrics.submitted.labels(source=job.source_kind).inc()
        service.pool.wake()
        return stored

    def check_dimensions(names: list[str] | None) -> None:
        """Refuse at submission, not after scoring, dimensions the service's model does not predict."""
        if names:
            require_dimensions(names, service.model["dimensions"], service.model["id"])

    def new_job(req: JobRequest, extra_tags: list[str] = ()) -> NewJob:
        check_dimensions(req.dimensions)
        if req.path is not None:
            source = check_path(req.path, config.path_roots)
            return NewJob("path", source, req.video or req.path, tuple(req.tags) + tuple(extra_tags), req.as_dict())
        url = check_url(req.url or "", config.allow_urls)
        return NewJob("url", url, req.video or url, tuple(req.tags) + tuple(extra_tags), req.as_dict())

    @app.post("/api/jobs", status_code=202, response_model=JobOut, dependencies=auth, responses=WRITE,
              tags=["jobs"], summary="Submit a video by server path or URL")
    def submit(req: JobRequest) -> JobOut:
        return JobOut.from_job(accepted([new_job(req)])[0])

    @app.post("/api/jobs/upload", status_code=202, response_model=JobOut, dependencies=auth,
              responses={**WRITE, 413: {"model": ErrorOut, "description": "over the upload size limit"}},
              tags=["jobs"], summary="Submit a video by uploading it")
    def upload(
        file: Annotated[UploadFile, File(description="the video file")],
        tags: Annotated[list[str] | None, Form(description="tags (repeat the field or separate by commas)")] = None,
        max_clips: Annotated[int | None, Form(ge=1, le=10_000)] = None,
        clip_seconds: Annotated[float | None, Form(gt=0, le=60)] = None,
        dimensions: Annotated[str | None, Form(description="only these dimensions, e.g. color,blur")] = None,
    ) -> JobOut:
        try:
            tag_list = clean_tags(tags or [])
            dimension_names = dimension_list(dimensions)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        check_dimensions(dimension_names)
        job_id = uuid.uuid4().hex
        target = config.uploads_dir / f"{job_id}{safe_suffix(file.filename or '')}"
        store_stream(file.file, target, config.max_upload_bytes)
        options = ScoreOptions(max_clips=max_clips, clip_seconds=clip_seconds, dimensions=dimension_names).as_dict()
        name = display_name(file.filename, f"upload-{job_id[:8]}")
        job = NewJob("upload", str(target), name, tuple(tag_list), options, delete_source=True, id=job_id)
        try:
            return JobOut.from_job(accepted([job])[0])
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    @app.post("/api/batches", status_code=202, response_model=BatchOut, dependencies=auth, responses=WRITE,
              tags=["jobs"], summary="Submit many videos at once (all accepted or none)")
    def submit_batch(req: BatchRequest) -> BatchOut:
        jobs = [new_job(item, req.tags) for item in req.items]
        batch_id = uuid.uuid4().hex
        stored = accepted(jobs, batch_id)
        return BatchOut(id=batch_id, counts=_counts(stored), jobs=[JobOut.from_job(j, False) for j in stored])

    @app.get("/api/batches/{batch_id}", response_model=BatchOut, tags=["jobs"], summary="A batch's jobs")
    def get_batch(batch_id: str) -> BatchOut:
        jobs = store.batch(batch_id)
        if not jobs:
            raise HTTPException(404, f"no batch {batch_id}")
        return BatchOut(id=batch_id, counts=_counts(jobs), jobs=[JobOut.from_job(j, False) for j in jobs])

    @app.get("/api/jobs", response_model=JobList, tags=["jobs"], summary="List jobs, newest first")
    def list_jobs(
        since: Annotated[str | None, Query(description="created at/after: ISO 8601, epoch s, or e.g. 24h")] = None,
        until: Annotated[str | None, Query(description="created before (same forms)")] = None,
        state: Annotated[list[str] | None, Query(description="queued, running, done, failed")] = None,
        grade: Annotated[list[str] | None, Query(description="overall grade(s)")] = None,
        dimension: Annotated[str | None, Query(description="NAME, or NAME:GRADE[,GRADE] (e.g. blur:poor,bad)")] = None,
        tag: Annotated[list[str] | None, Query(description="all of these tags")] = None,
        batch: Annotated[str | None, Query()] = None,
        model: Annotated[str | None, Query(description="scored by this model id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
        results: Annotated[bool, Query(description="include each job's full result")] = False,
    ) -> JobList:
        now = store.clock()
        states = _split(state)
        bad = set(states) - set(STATES)
        if bad:
            raise HTTPException(422, f"unknown state(s) {', '.join(sorted(bad))} (states: {', '.join(STATES)})")
        dim_name, dim_grades = None, ()
        if dimension:
            dim_name, _, grades_text = dimension.partition(":")
            dim_grades = _split([grades_text])
        flt = JobFilter(states=states, grades=_split(grade), tags=_split(tag), dimension=dim_name or None,
                        dimension_grades=dim_grades, since=parse_time(since, now), until=parse_time(until, now),
                        batch_id=batch, model=model)
        jobs, total = store.list(flt, limit=limit, offset=offset, with_result=results)
        return JobList(items=[JobOut.from_job(j, results) for j in jobs], total=total, limit=limit, offset=offset)

    @app.get("/api/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}}, tags=["jobs"],
             summary="A job: its state, and its result once done")
    def get_job(job_id: str, wait: Annotated[float, Query(ge=0, le=60, description="wait up to S s")] = 0,
                dimensions: Annotated[str | None, Query(description=_DIMS_HELP)] = None) -> JobOut:
        job = _job_or_404(service, job_id)
        deadline = time.monotonic() + wait
        while not job.finished and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            job = _job_or_404(service, job_id)
        out = JobOut.from_job(job)
        out.result = _only(job, dimensions)
        return out

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], summary="The result contract of a done job",
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "not finished yet"},
                        422: {"model": ErrorOut, "description": "the video could not be scored"}})
    def get_result(job_id: str,
                   dimensions: Annotated[str | None, Query(description=_DIMS_HELP)] = None) -> dict[str, Any]:
        job = _job_or_404(service, job_id)
        if job.state == "failed":
            return JSONResponse({"error": job.error_kind, "message": job.error_message}, status_code=422)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, f"job {job_id} is {job.state}")
        return _only(job, dimensions)

    @app.get("/api/jobs/{job_id}/ask", tags=["jobs"], summary="Ask a question about a done job's video",
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "not finished yet"},
                        422: {"model": ErrorOut, "description": "unknown question, or one the model cannot answer"}})
    def ask(job_id: str,
            q: Annotated[str, Query(min_length=1, max_length=500, description='e.g. "is there motion blur?", '
                                    '"which distortions?", "how is the color?"')],
            threshold: Annotated[float, Query(gt=0, lt=1, description="likely from this probability")] = 0.5,
            ) -> dict[str, Any]:
        question = parse_question(q)  # an unreadable question is answered 422 whatever the job's state
        job = _job_or_404(service, job_id)
        if job.state == "failed":
            return JSONResponse({"error": job.error_kind, "message": job.error_message}, status_code=422)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, f"job {job_id} is {job.state}")
        return answer_question(question, Result.from_dict(job.result), threshold).to_dict()


_DIMS_HELP = "only these dimensions, e.g. color,blur (default: those the job was submitted with)"


def _only(job: Any, dimensions: str | None) -> dict[str, Any] | None:
    """A job's result with just the dimensions asked for now, else those asked for at submission."""
    try:
        names = dimension_list(dimensions) or job.options.get("dimensions")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not names or job.result is None:
        return job.result
    return Result.from_dict(job.result).only(names).to_dict()


def _counts(jobs: list[Any]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for j in jobs:
        out[j.state] += 1
    return out


# -- alerts -----------------------------------------------------------------------------------
def _add_alert_routes(app: FastAPI, service: Service) -> None:
    store = service.store
    auth = [Depends(_auth(service))]

    def rule_out(state: Any) -> RuleOut:
        return RuleOut(rule=AlertRule.model_validate(state.spec), state=state.state, since=iso(state.since),
                       last_value=state.last_value, last_count=state.last_count, evaluated_at=iso(state.evaluated_at))

    @app.get("/api/alert-rules", response_model=list[RuleOut], tags=["alerts"], summary="Alert rules and states")
    def list_rules() -> list[RuleOut]:
        return [rule_out(s) for s in store.rules()]

    @app.put("/api/alert-rules/{name}", response_model=RuleOut, dependencies=auth, responses=WRITE,
             tags=["alerts"], summary="Create or replace an alert rule")
    def put_rule(name: str, rule: AlertRule) -> RuleOut:
        if rule.name != name:
            raise HTTPException(422, f"the rule's name ({rule.name}) differs from the URL ({name})")
        store.put_rule(name, rule.model_dump(mode="json"))
        return rule_out(next(s for s in store.rules() if s.name == name))

    @app.delete("/api/alert-rules/{name}", status_code=204, dependencies=auth, responses=WRITE, tags=["alerts"],
                summary="Delete an alert rule")
    def delete_rule(name: str) -> Response:
        if not store.delete_rule(name):
            raise HTTPException(404, f"no alert rule {name}")
        return Response(status_code=204)

    @app.post("/api/alert-rules/evaluate", dependencies=auth, responses=WRITE, tags=["alerts"],
              summary="Evaluate every rule now (notifications are sent as usual)")
    def evaluate_now() -> dict[str, Any]:
        return {"notifications": service.monitor.evaluate_once()}

    @app.get("/api/alerts", response_model=list[EventOut], tags=["alerts"], summary="Notifications sent, newest first")
    def list_events(limit: Annotated[int, Query(ge=1, le=1000)] = 50, rule: str | None = None) -> list[EventOut]:
        return [
            EventOut(id=e.id, rule=e.rule, status=e.status, at=iso(e.at), value=e.value, message=e.message,
                     webhook=e.webhook, delivered=e.delivered, delivery_error=e.delivery_error)
            for e in store.events(limit=limit, rule=rule)
        ]


# -- monitoring -------------------------------------------------------------------------------
def _static(name: str) -> str:
    return resources.files("vqscope.service").joinpath("static", name).read_text(encoding="utf-8")


def _add_monitoring_routes(app: FastAPI, service: Service) -> None:
    store = service.store

    @app.get("/api/dashboard", tags=["monitoring"], summary="The numbers behind the dashboard")
    def dashboard_data(
        window: Annotated[str, Query(description=f"one of {', '.join(WINDOWS)}")] = "24h",
        tag: Annotated[str | None, Query(description="only jobs with this tag")] = None,
        worst: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        if window not in WINDOWS:
            raise HTTPException(422, f"window must be one of {', '.join(WINDOWS)}")
        return build_dashboard(store, WINDOWS[window], tag=tag or None, worst_n=worst,
                               grade_labels=tuple(service.model["grades"]["labels"]), model=service.model)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_page() -> HTMLResponse:
        return HTMLResponse(_static("dashboard.html"), headers={"Content-Security-Policy": _CSP})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(404, f"no static file {name}")
        return Response(_static(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/healthz", response_model=Health, tags=["monitoring"], summary="Liveness and database status")
    def health() -> JSONResponse:
        try:
            counts = store.counts()
            ok = True
        except Exception:
            counts, ok = {}, False
        body = Health(status="ok" if ok else "degraded", database=store.dialect, model=service.model["id"],
                      workers=service.config.workers, jobs=counts)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
