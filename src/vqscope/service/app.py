"""The HTTP service: submit videos, fetch results, watch quality.

    POST /api/jobs             a path or URL            -> 202 + job      (submit or admin token)
    POST /api/jobs/upload      a file (multipart)       -> 202 + job      (submit or admin token)
    POST /api/batches          many paths/URLs          -> 202 + batch    (submit or admin token)
    GET  /api/jobs             list, filtered by time, state, grade, dimension, tag, batch
    GET  /api/jobs/{id}        state and result (?wait=S waits up to S seconds for it; 429 when too many wait)
    GET  /api/jobs/{id}/result the result contract (409 while pending, 422 if it failed)
    GET  /api/jobs/{id}/ask    ?q=is it shaky? -> the answer, from the job's result
    GET  /api/batches/{id}     a batch's jobs and counts
    GET/PUT/DELETE /api/alert-rules[/{name}]   alert rules (writes need the admin token; webhooks write-only)
    GET  /api/alerts           alert notifications sent
    GET  /api/dashboard        the numbers behind the dashboard
    GET  /dashboard            the dashboard page       GET /metrics   Prometheus
    GET  /healthz              liveness + database      GET /openapi.json   the API spec
    /api/studies..., /rate/... rating studies (admin token) and the raters' page (service/studies.py)

Who may do what (auth.py): the admin token (--token) does everything, a submit token submits
and reads, a read token reads; reads are open unless a read token is set or reads are made
private. The token is checked by a middleware before any body is read, and bodies are size-
limited per route (limits.py) while they stream in. Handlers are plain functions (FastAPI runs
them in its thread pool) because the database calls block; the long poll and the batch submit
are async so that waiting holds no thread (waiting.py) and a large batch is parsed off the
event loop. Responses never show URL credentials, webhook secrets or storage paths (redact.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..ask import answer as answer_question
from ..ask import model_predicts, parse_question
from ..errors import ConfigError, VQScopeError
from ..result import Result, require_dimensions
from ..model import Model
from ..zoo import resolve_model_path
from .alerts import AlertMonitor, AlertRule, iso
from .auth import AccessPolicy, AuthMiddleware, Role, require
from .config import ServiceConfig
from .dashboard import WINDOWS, build_dashboard
from .http_metrics import HttpMetrics, HttpMetricsMiddleware
from .idempotency import REPLAYED_HEADER, HashingReader, request_key
from .limits import BodyLimitMiddleware, BodyLimits
from .metrics import ServiceMetrics
from .outage import add_database_error_handlers
from .schemas import (
    BatchOut,
    BatchRequest,
    ErrorOut,
    EventOut,
    Health,
    JobList,
    JobOut,
    JobRequest,
    MAX_CLIP_SECONDS,
    MIN_CLIP_SECONDS,
    RuleOut,
    ScoreOptions,
    check_webhook,
    clean_tags,
    dimension_list,
    public_error,
    public_result,
)
from .redact import MARK, install_log_redaction, redact_text, redact_url, redact_webhook, webhook_host
from .sources import check_path, check_url, display_name, safe_suffix, store_stream
from .store import STATES, JobFilter, JobStore, NewJob, safe_url
from .times import parse_time as parse_time_text
from .studies import STUDY_STATUS, add_study_routes
from .waiting import JobWaits, TooManyWaits, finished_among
from .worker import WorkerPool

log = logging.getLogger("vqscope.service")

_STATUS = {"too_large": 413, "path_not_allowed": 403, "address_not_allowed": 403, **STUDY_STATUS}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "rate.js": "text/javascript",
           "rate.css": "text/css", "favicon.svg": "image/svg+xml"}
WRITE = {401: {"model": ErrorOut, "description": "missing or wrong token"},
         403: {"model": ErrorOut, "description": "the token's role does not allow this"}}


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
    policy: AccessPolicy | None = None  # tokens and roles (auth.py)
    waits: JobWaits | None = None  # long polls in progress (waiting.py)


def load_rules_file(path: Path) -> list[AlertRule]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        items = data["rules"] if isinstance(data, dict) else data
        rules = [AlertRule.model_validate(item) for item in items]
        for rule in rules:
            check_webhook(rule.webhook)
        return rules
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
    policy = AccessPolicy.from_config(config, token)
    body_limits = BodyLimits(config.max_upload_bytes, config.max_json_bytes)
    install_log_redaction()
    model_path = resolve_model_path(config.model)
    model = Model.load(model_path)  # fail now on a bad model; each worker loads its own copy
    summary = model_summary(model)
    store = JobStore(config.resolved_database_url(), clock=clock)
    if config.alert_rules_file:
        for rule in load_rules_file(config.alert_rules_file):
            store.put_rule(rule.name, rule.model_dump(mode="json"))
    metrics = ServiceMetrics(store, {"model": model.id, "fingerprint": summary["fingerprint"] or ""})
    pool = WorkerPool(store, config, model_path, metrics)
    monitor = AlertMonitor(store, config.alert_interval_s, config.default_webhook, metrics,
                           fetch_policy=config.fetch_policy)
    service = Service(config, store, pool, monitor, metrics, summary, token, policy=policy)
    service.waits = JobWaits(finished_among(store), max_total=config.max_waits,
                             max_per_client=config.max_waits_per_client)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if background:
            pool.start()
            monitor.start()
            log.info("vqscope service: model %s, database %s, %d worker(s); %s", model.id,
                     safe_url(store.url), config.workers, policy.describe())
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
        "Writes need `Authorization: Bearer TOKEN` (the admin token, or a submit token for jobs and batches); "
        "reads need a token (read, submit or admin) when the server is started with --read-token or "
        "--private-reads.",
        lifespan=lifespan,
    )
    app.state.service = service
    # Outermost first: count every request, check its token, then limit its body (all before it is read).
    app.add_middleware(BodyLimitMiddleware, limits=body_limits, router=app.router)
    app.add_middleware(AuthMiddleware, policy=policy, router=app.router)
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(metrics.registry), router=app.router)
    _add_error_handlers(app)
    add_database_error_handlers(app)  # a database outage: JSON 503 + Retry-After
    _add_job_routes(app, service)
    _add_alert_routes(app, service)
    _add_monitoring_routes(app, service)
    add_study_routes(app, service, [require(policy, Role.ADMIN)], _static)
    return app


# -- shared pieces ------------------------------------------------------------------------------
def _needs(service: Service, role: Role) -> list[Any]:
    """Route dependencies repeating the middleware's token check (and marking the route in the API spec)."""
    assert service.policy is not None
    return [require(service.policy, role)]


def _json_body(model: type[Any]) -> dict[str, Any]:
    """The OpenAPI request body of a handler that parses its JSON itself (off the event loop)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _json(model: Any, status_code: int = 200) -> Response:
    """A response serialised where it is built (in a worker thread), not on the event loop."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


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
        name = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "not_finished", 413: "too_large",
                429: "too_many_waits"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": name, "message": str(exc.detail), "detail": exc.detail},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))


def parse_time(text: str | None, now: float) -> float | None:
    """`times.parse_time`, its refusal a 422."""
    try:
        return parse_time_text(text, now)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


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
    writer = _needs(service, Role.WRITER)

    def accepted(jobs: list[NewJob], batch_id: str | None = None, key: Any = None, response: Response | None = None):
        if key is None:
            stored = store.submit(jobs, batch_id=batch_id, max_attempts=config.max_attempts)
        else:  # committed with its Idempotency-Key; a retry gets the first request's jobs (idempotency.py)
            submitted = store.submit_idempotent(jobs, key, batch_id=batch_id, max_attempts=config.max_attempts,
                                                ttl_s=config.idempotency_ttl_s)
            if submitted.replayed:
                return replayed(submitted.jobs, response)
            stored = submitted.jobs
        for job in stored:
            service.metrics.submitted.labels(source=job.source_kind).inc()
        service.pool.wake()
        return stored

    def replayed(jobs: list[Any], response: Response | None) -> list[Any]:
        if response is not None:
            response.headers[REPLAYED_HEADER] = "true"
        return jobs

    def earlier(key: Any, response: Response) -> list[Any] | None:
        """The jobs of an earlier request with this key, looked up before the request's sources are
        checked (a retry is answered even if its file has been scored and removed since)."""
        found = store.replay(key, config.idempotency_ttl_s) if key is not None else None
        return replayed(found.jobs, response) if found is not None else None

    def check_dimensions(names: list[str] | None) -> None:
        """Refuse at submission, not after scoring, dimensions the service's model does not predict."""
        if names:
            require_dimensions(names, service.model["dimensions"], service.model["id"])

    def new_job(req: JobRequest, extra_tags: list[str] = ()) -> NewJob:
        check_dimensions(req.dimensions)
        if req.path is not None:
            source = check_path(req.path, config.path_roots)
            return NewJob("path", source, req.video or req.path, tuple(req.tags) + tuple(extra_tags), req.as_dict())
        url = check_url(req.url or "", config.allow_urls, config.fetch_policy)
        # the name results and lists show: never the URL's credentials or signature
        return NewJob("url", url, req.video or redact_url(url), tuple(req.tags) + tuple(extra_tags), req.as_dict())

    @app.post("/api/jobs", status_code=202, response_model=JobOut, dependencies=writer, responses=WRITE,
              tags=["jobs"], summary="Submit a video by server path or URL")
    def submit(req: JobRequest, request: Request, response: Response,
               idempotency_key: Annotated[str | None, Header(description=_KEY_HELP)] = None) -> JobOut:
        key = request_key(idempotency_key, request.headers.get("authorization"), "jobs", req.model_dump(mode="json"))
        return JobOut.from_job((earlier(key, response) or accepted([new_job(req)], key=key, response=response))[0])

    @app.post("/api/jobs/upload", status_code=202, response_model=JobOut, dependencies=writer,
              responses={**WRITE, 413: {"model": ErrorOut, "description": "over the upload size limit"}},
              tags=["jobs"], summary="Submit a video by uploading it")
    def upload(
        file: Annotated[UploadFile, File(description="the video file")],
        tags: Annotated[list[str] | None, Form(description="tags (repeat the field or separate by commas)")] = None,
        max_clips: Annotated[int | None, Form(ge=1, le=10_000)] = None,
        clip_seconds: Annotated[float | None, Form(ge=MIN_CLIP_SECONDS, le=MAX_CLIP_SECONDS)] = None,
        dimensions: Annotated[str | None, Form(description="only these dimensions, e.g. color,blur")] = None,
        request: Request = None,
        response: Response = None,
        idempotency_key: Annotated[str | None, Header(description=_KEY_HELP)] = None,
    ) -> JobOut:
        try:
            tag_list = clean_tags(tags or [])
            dimension_names = dimension_list(dimensions)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        check_dimensions(dimension_names)
        job_id = uuid.uuid4().hex
        target = config.uploads_dir / f"{job_id}{safe_suffix(file.filename or '')}"
        content = HashingReader(file.file) if idempotency_key is not None else file.file
        store_stream(content, target, config.max_upload_bytes)
        options = ScoreOptions(max_clips=max_clips, clip_seconds=clip_seconds, dimensions=dimension_names).as_dict()
        name = display_name(_printable(file.filename), f"upload-{job_id[:8]}")
        job = NewJob("upload", str(target), name, tuple(tag_list), options, delete_source=True, id=job_id)
        try:
            key = request_key(idempotency_key, request.headers.get("authorization"), "upload", {
                "sha256": content.hexdigest() if idempotency_key is not None else None,
                "filename": file.filename, "tags": list(tag_list), "options": options})
            stored = accepted([job], key=key, response=response)[0]
            if stored.id != job_id:  # a retry: the first request's upload is the one its job reads
                target.unlink(missing_ok=True)
            return JobOut.from_job(stored)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    @app.post("/api/batches", status_code=202, response_model=BatchOut, dependencies=writer, responses=WRITE,
              tags=["jobs"], summary="Submit many videos at once (all accepted or none)",
              openapi_extra=_json_body(BatchRequest))
    async def submit_batch(request: Request,
                           idempotency_key: Annotated[str | None, Header(description=_KEY_HELP)] = None) -> Response:
        # Up to --max-json-mb: validating 10,000 items takes 0.1-0.3 s, so it runs in a worker
        # thread rather than on the event loop (where FastAPI parses a declared body).
        body = await request.body()
        return await run_in_threadpool(submit_batch_body, body, idempotency_key, request.headers.get("authorization"))

    def submit_batch_body(body: bytes, idempotency_key: str | None, authorization: str | None) -> Response:
        try:
            req = BatchRequest.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None
        key = request_key(idempotency_key, authorization, "batches", req.model_dump(mode="json"))
        marks = Response()  # collects the replay header, if any
        batch_id = uuid.uuid4().hex
        stored = earlier(key, marks) or accepted([new_job(item, req.tags) for item in req.items], batch_id,
                                                 key=key, response=marks)
        batch_id = stored[0].batch_id or batch_id  # a retry's: the first request's batch
        out = _json(BatchOut(id=batch_id, counts=_counts(stored), jobs=[JobOut.from_job(j, False) for j in stored]),
                    202)
        if REPLAYED_HEADER in marks.headers:
            out.headers[REPLAYED_HEADER] = marks.headers[REPLAYED_HEADER]
        return out

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

    @app.get("/api/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
             summary="A job: its state, and its result once done",
             responses={404: {"model": ErrorOut},
                        429: {"model": ErrorOut, "description": "too many requests are waiting (?wait=) already; "
                                                                "retry after Retry-After seconds"}})
    async def get_job(request: Request, job_id: str,
                      wait: Annotated[float, Query(ge=0, le=60, description="wait up to S s")] = 0,
                      dimensions: Annotated[str | None, Query(description=_DIMS_HELP)] = None) -> Response:
        _dimension_names(dimensions)  # a bad parameter is answered now, not after the wait
        job = await run_in_threadpool(_job_or_404, service, job_id)
        if not job.finished and wait > 0:
            assert service.waits is not None
            client = request.client.host if request.client else "unknown"
            try:
                service.waits.admit(client)
            except TooManyWaits as exc:
                raise HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None
            try:
                await service.waits.until_finished(job_id, wait)  # no thread is held while waiting
            finally:
                service.waits.leave(client)
            job = await run_in_threadpool(_job_or_404, service, job_id)
        return await run_in_threadpool(job_view, job, dimensions)

    def job_view(job: Any, dimensions: str | None) -> Response:
        out = JobOut.from_job(job)
        out.result = _only(job, dimensions)
        return _json(out)

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], summary="The result contract of a done job",
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "not finished yet"},
                        422: {"model": ErrorOut, "description": "the video could not be scored"}})
    def get_result(job_id: str,
                   dimensions: Annotated[str | None, Query(description=_DIMS_HELP)] = None) -> dict[str, Any]:
        job = _job_or_404(service, job_id)
        if job.state == "failed":
            return JSONResponse({"error": job.error_kind, "message": public_error(job)}, status_code=422)
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
            return JSONResponse({"error": job.error_kind, "message": public_error(job)}, status_code=422)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, f"job {job_id} is {job.state}")
        return answer_question(question, Result.from_dict(job.result), threshold).to_dict()


_KEY_HELP = ("any 1-255 visible ASCII characters (e.g. a UUID): a retry with the same key and request "
             "returns the first request's job(s) instead of making new ones (same key, other request: 422)")
_DIMS_HELP = "only these dimensions, e.g. color,blur (default: those the job was submitted with)"


def _dimension_names(dimensions: str | None) -> list[str] | None:
    try:
        return dimension_list(dimensions)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _only(job: Any, dimensions: str | None) -> dict[str, Any] | None:
    """A job's result with just the dimensions asked for now, else those asked for at submission."""
    names = _dimension_names(dimensions) or job.options.get("dimensions")
    if not names or job.result is None:
        return public_result(job.result)
    return public_result(Result.from_dict(job.result).only(names).to_dict())


def _printable(name: str | None) -> str | None:
    """An uploaded file's name without control characters (PostgreSQL refuses NUL in text)."""
    return None if name is None else "".join(ch for ch in name if ch.isprintable())


def _counts(jobs: list[Any]) -> dict[str, int]:
    out = {s: 0 for s in STATES}
    for j in jobs:
        out[j.state] += 1
    return out


# -- alerts -----------------------------------------------------------------------------------
def _add_alert_routes(app: FastAPI, service: Service) -> None:
    store = service.store
    auth = _needs(service, Role.ADMIN)

    def rule_out(state: Any) -> RuleOut:
        # webhooks are write-only: their path and query are the secret (Slack, Teams, PagerDuty)
        try:
            rule = AlertRule.model_validate(state.spec)
        except ValidationError as exc:  # stored before today's checks (a webhook with no host, say)
            spec = {k: v for k, v in state.spec.items() if k != "webhook"}
            rule = AlertRule.model_validate(spec)
            return RuleOut(rule=rule, webhook_set=bool(state.spec.get("webhook")), state=state.state,
                           since=iso(state.since), last_value=state.last_value, last_count=state.last_count,
                           evaluated_at=iso(state.evaluated_at),
                           problem=f"not evaluated: {exc.errors()[0].get('msg', 'invalid')} (PUT the rule again)")
        shown = rule.model_copy(update={"webhook": redact_webhook(rule.webhook)})
        return RuleOut(rule=shown, webhook_set=rule.webhook is not None, webhook_host=webhook_host(rule.webhook),
                       state=state.state, since=iso(state.since), last_value=state.last_value,
                       last_count=state.last_count, evaluated_at=iso(state.evaluated_at))

    @app.get("/api/alert-rules", response_model=list[RuleOut], tags=["alerts"], summary="Alert rules and states")
    def list_rules() -> list[RuleOut]:
        return [rule_out(s) for s in store.rules()]

    @app.put("/api/alert-rules/{name}", response_model=RuleOut, dependencies=auth, responses=WRITE,
             tags=["alerts"], summary="Create or replace an alert rule")
    def put_rule(name: str, rule: AlertRule) -> RuleOut:
        if rule.name != name:
            raise HTTPException(422, f"the rule's name ({rule.name}) differs from the URL ({name})")
        if rule.webhook is not None and rule.webhook.endswith(f"/{MARK}"):
            # the redacted form a GET shows, sent back unchanged: keep the stored webhook
            stored = next((s.spec.get("webhook") for s in store.rules() if s.name == name), None)
            if stored is None or redact_webhook(stored) != rule.webhook:
                raise HTTPException(422, "webhook: give the full URL (a redacted one is kept only when it is the "
                                         "rule's current webhook)")
            rule = rule.model_copy(update={"webhook": stored})
        try:
            check_webhook(rule.webhook)
        except ValueError as exc:
            raise HTTPException(422, f"webhook: {exc}") from None
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
                     webhook=redact_webhook(e.webhook), delivered=e.delivered,
                     delivery_error=redact_text(e.delivery_error))
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

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:  # what browsers ask for on pages that name no icon (the JSON API, /docs)
        return static_file("favicon.svg")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/healthz", response_model=Health, tags=["monitoring"],
             summary="Liveness: database, worker processes, jobs past their time limit")
    def health() -> JSONResponse:
        """Status "ok" (200) only when the database answers, every worker's scoring process and
        the lease heartbeat run, and no job is past its time limit; else "degraded" (503) and why."""
        problems = service.pool.health()
        try:
            counts = store.counts()
        except Exception:
            counts = {}
            problems.insert(0, "the job database does not answer")
        body = Health(status="degraded" if problems else "ok", database=store.dialect, model=service.model["id"],
                      workers=service.config.workers, jobs=counts, problems=problems,
                      worker_states=service.pool.states())
        return JSONResponse(body.model_dump(), status_code=503 if problems else 200)
