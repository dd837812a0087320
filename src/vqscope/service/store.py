"""The persistent job store: SQLAlchemy tables and the one repository the service talks to.

Why it is built the way it is:
- An accepted job is never lost. A job row is committed before the client gets its id, and a
  running job holds a *lease* that its worker renews; when a worker dies (kill -9, OOM, power)
  its lease runs out and any worker, in this process or another, takes the job over. A job
  that kills its worker `max_attempts` times is failed ("gave_up") instead of looping forever.
- Claiming is one conditional UPDATE (`... WHERE seq = ? AND state = 'queued'`), so two
  workers never run the same job, on SQLite and PostgreSQL alike, without database-specific
  locking. Every transaction is short: SQLite serialises writers, PostgreSQL does not care.
- Times are UTC epoch seconds (double precision): portable, and bucketing for the dashboard
  is arithmetic.
- Dimension scores and tags get their own tables so that listing, filtering and per-dimension
  trends are indexed queries rather than JSON scans; the full result is kept as JSON text.
- The schema is created and upgraded by Alembic migrations (see `migrations/`), never by
  `create_all`, so a deployed PostgreSQL database can be upgraded in place.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..errors import ConfigError
from .idempotency import DEFAULT_TTL_S, IdempotencyKey, IdempotencyKeyReusedError
from .integrity import check_sqlite_file, open_error, safe_url, sqlite_file

STATES = ("queued", "running", "done", "failed")
FINISHED = ("done", "failed")
SOURCE_KINDS = ("upload", "path", "url")


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "vqscope_jobs"
    __table_args__ = (
        UniqueConstraint("id", name="uq_vqscope_jobs_id"),
        Index("ix_vqscope_jobs_state_seq", "state", "seq"),
        Index("ix_vqscope_jobs_created_at", "created_at"),
        Index("ix_vqscope_jobs_finished_at", "finished_at"),
        Index("ix_vqscope_jobs_batch_id", "batch_id"),
        Index("ix_vqscope_jobs_grade", "grade"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    source_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    video: Mapped[str] = mapped_column(Text, nullable=False)  # what the result calls the video
    options: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    delete_source: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    scaled_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(32), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobTagRow(Base):
    __tablename__ = "vqscope_job_tags"
    __table_args__ = (Index("ix_vqscope_job_tags_tag", "tag"),)

    job_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_jobs.seq", ondelete="CASCADE", name="fk_vqscope_job_tags_job"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)


class JobDimensionRow(Base):
    __tablename__ = "vqscope_job_dimensions"
    __table_args__ = (Index("ix_vqscope_job_dimensions_name_grade", "name", "grade"),)

    job_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_jobs.seq", ondelete="CASCADE", name="fk_vqscope_job_dimensions_job"),
        primary_key=True,
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    grade: Mapped[str] = mapped_column(String(32), nullable=False)


class AlertRuleRow(Base):
    __tablename__ = "vqscope_alert_rules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    spec: Mapped[str] = mapped_column(Text, nullable=False)  # the rule as JSON (see alerts.AlertRule)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="ok")  # ok | firing
    since: Mapped[float | None] = mapped_column(Float, nullable=True)  # when `state` began
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evaluated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class AlertEventRow(Base):
    __tablename__ = "vqscope_alert_events"
    __table_args__ = (Index("ix_vqscope_alert_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # firing | resolved
    at: Mapped[float] = mapped_column(Float, nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    webhook: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    delivery_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKeyRow(Base):
    """A submission's Idempotency-Key and the job(s) it made (see idempotency.py)."""

    __tablename__ = "vqscope_idempotency_keys"
    __table_args__ = (Index("ix_vqscope_idempotency_keys_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA-256 of endpoint + request
    job_ids: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list, in submission order
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


J = JobRow.__table__.c
TAGS = JobTagRow.__table__
DIMS = JobDimensionRow.__table__
JOBS = JobRow.__table__
RULES = AlertRuleRow.__table__
EVENTS = AlertEventRow.__table__
KEYS = IdempotencyKeyRow.__table__


# -- plain values handed to the rest of the service ------------------------------------------
@dataclass
class NewJob:
    source_kind: str
    source: str
    video: str
    tags: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    delete_source: bool = False  # the file is ours (upload, download): remove it when done
    id: str | None = None  # pre-assigned when the upload is stored under the job's id


@dataclass
class Job:
    seq: int
    id: str
    state: str
    source_kind: str
    source: str
    video: str
    options: dict[str, Any]
    batch_id: str | None
    delete_source: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    max_attempts: int
    worker: str | None
    lease_expires_at: float | None
    model: str | None
    score: float | None
    scaled_score: float | None
    grade: str | None
    result: dict[str, Any] | None
    error_kind: str | None
    error_message: str | None
    tags: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass
class Submitted:
    """What a keyed submission made, or (`replayed`) what the first request with its key made."""

    jobs: list[Job]
    replayed: bool = False


@dataclass(frozen=True)
class JobFilter:
    """What `GET /api/jobs` can ask for; every given field must match (tags: all of them)."""

    states: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    dimension: str | None = None  # the result reports this dimension ...
    dimension_grades: tuple[str, ...] = ()  # ... with one of these grades
    since: float | None = None  # created at or after
    until: float | None = None  # created before
    batch_id: str | None = None
    model: str | None = None


@dataclass
class FinishedRow:
    """A finished job as the dashboard and the alert rules see it."""

    seq: int
    id: str
    video: str
    state: str
    finished_at: float
    score: float | None
    scaled_score: float | None
    grade: str | None


@dataclass
class RuleState:
    name: str
    spec: dict[str, Any]
    state: str
    since: float | None
    last_value: float | None
    last_count: int | None
    evaluated_at: float | None


@dataclass
class AlertEvent:
    id: int
    rule: str
    status: str
    at: float
    value: float | None
    message: str
    webhook: str | None
    delivered: bool
    delivery_error: str | None


# -- engine -----------------------------------------------------------------------------------
def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg (3) driver, the one vqscope installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


CONNECT_TIMEOUT_S = 10  # PostgreSQL: a host that drops packets is an outage after this, not after minutes


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            parsed = make_url(url)
            connect_args: dict[str, Any] = {}
            if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # a silent host fails start in seconds
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args)
    except NoSuchModuleError:
        raise ConfigError(f"no SQLAlchemy dialect for {safe_url(url)}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"database driver {exc.name!r} is not installed (for PostgreSQL: pip install 'vqscope[postgres]')"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(f"bad database URL: {exc}") from None
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the dashboard read while a worker writes; FULL sync makes an accepted job durable."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


# -- the repository -----------------------------------------------------------------------------
class JobStore:
    """Every read and write of jobs, tags, dimension scores and alert state."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time, migrate: bool = True):
        """Open (and migrate) the database. A SQLite file is checked first, read-only: an empty,
        foreign or damaged file is refused (StorageError) before anything is written to it; an
        unreachable server is a DatabaseUnavailableError naming the host, never the password."""
        self.url = normalise_url(url)
        path = sqlite_file(self.url)
        if path is not None:
            check_sqlite_file(path)
        self.engine = make_engine(self.url)
        self.clock = clock
        self._purged_keys_at = float("-inf")
        if migrate:
            from alembic.util import CommandError

            from .migrations import upgrade

            try:
                upgrade(self.engine)
            except (DBAPIError, CommandError) as exc:
                self.engine.dispose()
                raise open_error(self.url, exc) from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except Exception:
            return False

    # -- submitting ---------------------------------------------------------------------
    def submit(self, jobs: Sequence[NewJob], *, batch_id: str | None = None, max_attempts: int = 3) -> list[Job]:
        """Insert jobs in one transaction: a batch is accepted whole or not at all."""
        with self.engine.begin() as conn:
            seqs, _ = self._insert_jobs(conn, jobs, batch_id, max_attempts, self.clock())
        return self._by_seqs(seqs)

    def submit_idempotent(self, jobs: Sequence[NewJob], key: IdempotencyKey, *, batch_id: str | None = None,
                          max_attempts: int = 3, ttl_s: float = DEFAULT_TTL_S) -> Submitted:
        """Submit once per key: the jobs and the key are committed in one transaction, so a retry
        finds the key exactly when the jobs exist. Two requests racing with one key: the key's
        primary key lets one commit; the other rolls back and answers with the winner's jobs."""
        found = self.replay(key, ttl_s)
        if found is not None:
            return found
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                self._purge_keys(conn, now, ttl_s)
                if ttl_s:  # the key may be there, expired: it is free again (a live one stays: IntegrityError)
                    conn.execute(delete(KEYS).where(KEYS.c.scope == key.scope, KEYS.c.key == key.key,
                                                    KEYS.c.created_at < now - ttl_s))
                seqs, ids = self._insert_jobs(conn, jobs, batch_id, max_attempts, now)
                conn.execute(insert(KEYS).values(scope=key.scope, key=key.key, fingerprint=key.fingerprint,
                                                 job_ids=json.dumps(ids), batch_id=batch_id, created_at=now))
        except IntegrityError:
            found = self.replay(key, ttl_s)  # the same key was committed meanwhile: answer with its jobs
            if found is None:
                raise  # not the key's conflict
            return found
        return Submitted(self._by_seqs(seqs))

    def replay(self, key: IdempotencyKey, ttl_s: float = DEFAULT_TTL_S) -> Submitted | None:
        """The job(s) an earlier request with this key made; None if the key is new (or expired);
        IdempotencyKeyReusedError if it was used for a different request."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(KEYS.c.fingerprint, KEYS.c.job_ids, KEYS.c.created_at)
                .where(KEYS.c.scope == key.scope, KEYS.c.key == key.key)
            ).first()
            if row is None or (ttl_s and row.created_at < self.clock() - ttl_s):
                return None
            if row.fingerprint != key.fingerprint:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was already used for a different request; use a new key for a new request")
            ids = json.loads(row.job_ids)
            rows = conn.execute(select(JOBS).where(J.id.in_(ids))).mappings().all()
            by_id = {j.id: j for j in self._jobs(conn, rows)}
        return Submitted([by_id[i] for i in ids if i in by_id], replayed=True)

    def _purge_keys(self, conn: Any, now: float, ttl_s: float) -> None:
        """Forget expired keys, at most once a minute per process (an indexed range delete)."""
        if ttl_s and now - self._purged_keys_at >= 60.0:
            conn.execute(delete(KEYS).where(KEYS.c.created_at < now - ttl_s))
            self._purged_keys_at = now

    def _insert_jobs(self, conn: Any, jobs: Sequence[NewJob], batch_id: str | None, max_attempts: int,
                     now: float) -> tuple[list[int], list[str]]:
        seqs: list[int] = []
        ids: list[str] = []
        for job in jobs:
            job_id = job.id or uuid.uuid4().hex
            result = conn.execute(
                insert(JOBS).values(
                    id=job_id,
                    state="queued",
                    source_kind=job.source_kind,
                    source=job.source,
                    video=job.video,
                    options=json.dumps(job.options),
                    batch_id=batch_id,
                    delete_source=job.delete_source,
                    created_at=now,
                    attempts=0,
                    max_attempts=max_attempts,
                )
            )
            seq = int(result.inserted_primary_key[0])
            seqs.append(seq)
            ids.append(job_id)
            tags = sorted(set(job.tags))
            if tags:
                conn.execute(insert(TAGS), [{"job_seq": seq, "tag": t} for t in tags])
        return seqs, ids

    # -- reading ------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(J.id == job_id)).mappings().first()
            if row is None:
                return None
            return self._jobs(conn, [row])[0]

    def _by_seqs(self, seqs: Sequence[int]) -> list[Job]:
        if not seqs:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(JOBS).where(J.seq.in_(list(seqs))).order_by(J.seq)).mappings().all()
            return self._jobs(conn, rows)

    def _jobs(self, conn: Any, rows: Sequence[Any], with_result: bool = True) -> list[Job]:
        seqs = [r["seq"] for r in rows]
        tags: dict[int, list[str]] = {s: [] for s in seqs}
        if seqs:
            for seq, tag in conn.execute(select(TAGS.c.job_seq, TAGS.c.tag).where(TAGS.c.job_seq.in_(seqs))):
                tags[seq].append(tag)
        return [_job(r, sorted(tags[r["seq"]]), with_result) for r in rows]

    def list(self, flt: JobFilter = JobFilter(), *, limit: int = 50, offset: int = 0,
             with_result: bool = False) -> tuple[list[Job], int]:
        """Newest first, and the total count matching the filter."""
        where = self._where(flt)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(JOBS).where(*where)).scalar_one()
            rows = conn.execute(
                select(JOBS).where(*where).order_by(J.seq.desc()).limit(limit).offset(offset)
            ).mappings().all()
            return self._jobs(conn, rows, with_result), int(total)

    @staticmethod
    def _where(flt: JobFilter) -> list[Any]:
        where: list[Any] = []
        if flt.states:
            where.append(J.state.in_(flt.states))
        if flt.grades:
            where.append(J.grade.in_(flt.grades))
        if flt.since is not None:
            where.append(J.created_at >= flt.since)
        if flt.until is not None:
            where.append(J.created_at < flt.until)
        if flt.batch_id:
            where.append(J.batch_id == flt.batch_id)
        if flt.model:
            where.append(J.model == flt.model)
        for tag in flt.tags:
            where.append(exists().where(TAGS.c.job_seq == J.seq, TAGS.c.tag == tag))
        if flt.dimension:
            cond = [DIMS.c.job_seq == J.seq, DIMS.c.name == flt.dimension]
            if flt.dimension_grades:
                cond.append(DIMS.c.grade.in_(flt.dimension_grades))
            where.append(exists().where(*cond))
        return where

    def counts(self) -> dict[str, int]:
        """Jobs per state (all states present, zero where none)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(J.state, func.count()).group_by(J.state)).all()
        out = {s: 0 for s in STATES}
        out.update({state: int(n) for state, n in rows})
        return out

    def batch(self, batch_id: str) -> list[Job]:
        jobs, _ = self.list(JobFilter(batch_id=batch_id), limit=100_000)
        return sorted(jobs, key=lambda j: j.seq)

    # -- the workers' side --------------------------------------------------------------
    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest runnable job: queued, or running under a lease that ran out."""
        for _ in range(20):
            now = self.clock()
            runnable = or_(J.state == "queued", and_(J.state == "running", J.lease_expires_at < now))
            with self.engine.connect() as conn:
                candidates = conn.execute(
                    select(J.seq, J.state, J.attempts, J.max_attempts).where(runnable).order_by(J.seq).limit(8)
                ).all()
            if not candidates:
                return None
            for seq, state, attempts, max_attempts in candidates:
                still = (J.state == "queued") if state == "queued" else and_(
                    J.state == "running", J.lease_expires_at < now
                )
                with self.engine.begin() as conn:
                    if attempts >= max_attempts:  # started that often and never finished: give up
                        conn.execute(
                            update(JOBS).where(J.seq == seq, still).values(
                                state="failed", finished_at=now, worker=None, lease_expires_at=None,
                                error_kind="gave_up",
                                error_message=f"scoring was started {attempts} times and never finished (its worker "
                                              "died or was stopped each time); giving up",
                            )
                        )
                        continue
                    taken = conn.execute(
                        update(JOBS).where(J.seq == seq, still).values(
                            state="running", worker=worker, lease_expires_at=now + lease_s,
                            attempts=J.attempts + 1, started_at=now,
                        )
                    ).rowcount
                if taken == 1:
                    return self._by_seqs([seq])[0]
        return None

    def renew(self, worker: str, seqs: Iterable[int], lease_s: float) -> int:
        seqs = list(seqs)
        if not seqs:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(
                update(JOBS)
                .where(J.seq.in_(seqs), J.worker == worker, J.state == "running")
                .values(lease_expires_at=self.clock() + lease_s)
            ).rowcount

    def complete(self, job: Job, result: dict[str, Any]) -> bool:
        """Store a result. The first worker to finish a job wins; a late duplicate is dropped."""
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(JOBS).where(J.seq == job.seq, J.state == "running").values(
                    state="done", finished_at=now, worker=None, lease_expires_at=None,
                    model=result.get("model"), score=result.get("score"), scaled_score=result.get("scaled_score"),
                    grade=result.get("grade"), result=json.dumps(result, ensure_ascii=False),
                    error_kind=None, error_message=None,
                )
            ).rowcount
            if done != 1:
                return False
            dims = [
                {"job_seq": job.seq, "name": name, "score": float(d["score"]), "grade": str(d["grade"])}
                for name, d in (result.get("dimensions") or {}).items()
            ]
            if dims:
                conn.execute(insert(DIMS), dims)
        return True

    def fail(self, job: Job, kind: str, message: str, model: str | None = None) -> bool:
        """Record a failure of *this attempt* (the Job as claimed): a failure noticed late, e.g. a
        timeout, never fails a later attempt that another worker took over and may finish."""
        attempt = [J.worker == job.worker, J.attempts == job.attempts] if job.worker else []
        with self.engine.begin() as conn:
            return conn.execute(
                update(JOBS).where(J.seq == job.seq, J.state == "running", *attempt).values(
                    state="failed", finished_at=self.clock(), worker=None, lease_expires_at=None,
                    error_kind=kind, error_message=message, model=model,
                )
            ).rowcount == 1

    def release(self, worker: str, seqs: Iterable[int] | None = None, *, spare: Iterable[int] = (),
                spare_up_to: int = 0) -> int:
        """Put a worker's running jobs (all, or those of `seqs`) back in the queue.

        `attempts` counts every start and is never lowered here: a lowered count is how a job
        that hangs was retried forever across restarts. A clean shutdown is not the job's fault,
        so the jobs of `spare` (the pool's: in flight and within their time limit) get one more
        start instead, `max_attempts` + 1, but only while `max_attempts` < `spare_up_to`: over
        its life a job gets a bounded number of such spares, so even one that hangs within its
        limit at every restart ends "gave_up". A job past its limit, or whose worker died, gets none.
        """
        where = [J.worker == worker, J.state == "running"]
        if seqs is not None:
            where.append(J.seq.in_(list(seqs)))
        spare = list(spare)
        with self.engine.begin() as conn:
            if spare:
                conn.execute(update(JOBS).where(*where, J.seq.in_(spare), J.max_attempts < spare_up_to).values(
                    max_attempts=J.max_attempts + 1))
            return conn.execute(
                update(JOBS).where(*where).values(state="queued", worker=None, lease_expires_at=None)
            ).rowcount

    # -- what the dashboard and alerts read ---------------------------------------------
    def finished_since(self, since: float, *, tag: str | None = None, limit: int = 200_000) -> list[FinishedRow]:
        where = [J.state.in_(FINISHED), J.finished_at >= since]
        if tag:
            where.append(exists().where(TAGS.c.job_seq == J.seq, TAGS.c.tag == tag))
        cols = (J.seq, J.id, J.video, J.state, J.finished_at, J.score, J.scaled_score, J.grade)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).where(*where).order_by(J.finished_at).limit(limit)).all()
        return [FinishedRow(*r) for r in rows]

    def dimensions_since(self, since: float, *, tag: str | None = None) -> list[tuple[float, str, float, str]]:
        """(finished_at, dimension, score, grade) of every dimension of every job done since."""
        where = [J.state == "done", J.finished_at >= since]
        if tag:
            where.append(exists().where(TAGS.c.job_seq == J.seq, TAGS.c.tag == tag))
        stmt = (
            select(J.finished_at, DIMS.c.name, DIMS.c.score, DIMS.c.grade)
            .select_from(JOBS.join(DIMS, DIMS.c.job_seq == J.seq))
            .where(*where)
        )
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt).all()]

    def worst_since(self, since: float, n: int, *, tag: str | None = None) -> list[Job]:
        """The `n` lowest-scoring videos done since `since` (by scaled score, then raw score)."""
        where = [J.state == "done", J.finished_at >= since]
        if tag:
            where.append(exists().where(TAGS.c.job_seq == J.seq, TAGS.c.tag == tag))
        order = func.coalesce(J.scaled_score, J.score)
        with self.engine.connect() as conn:
            rows = conn.execute(select(JOBS).where(*where).order_by(order, J.seq).limit(n)).mappings().all()
            return self._jobs(conn, rows)

    # -- alert rules and events ---------------------------------------------------------
    def put_rule(self, name: str, spec: dict[str, Any]) -> None:
        """Create or replace a rule; replacing keeps its state (ok/firing)."""
        text = json.dumps(spec, sort_keys=True)
        with self.engine.begin() as conn:
            changed = conn.execute(update(RULES).where(RULES.c.name == name).values(spec=text)).rowcount
            if not changed:
                conn.execute(insert(RULES).values(name=name, spec=text, state="ok", created_at=self.clock()))

    def delete_rule(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(RULES).where(RULES.c.name == name)).rowcount == 1

    def rules(self) -> list[RuleState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(RULES).order_by(RULES.c.name)).mappings().all()
        return [
            RuleState(r["name"], json.loads(r["spec"]), r["state"], r["since"], r["last_value"], r["last_count"],
                      r["evaluated_at"])
            for r in rows
        ]

    def note_rule_value(self, name: str, value: float | None, count: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(RULES).where(RULES.c.name == name).values(
                    last_value=value, last_count=count, evaluated_at=self.clock()
                )
            )

    def switch_rule(self, name: str, expected: str, new: str) -> bool:
        """Move a rule between ok and firing; only one process wins a switch (and notifies)."""
        with self.engine.begin() as conn:
            return conn.execute(
                update(RULES).where(RULES.c.name == name, RULES.c.state == expected).values(
                    state=new, since=self.clock()
                )
            ).rowcount == 1

    def add_event(self, rule: str, status: str, value: float | None, message: str, webhook: str | None) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(EVENTS).values(rule=rule, status=status, at=self.clock(), value=value, message=message,
                                      webhook=webhook, delivered=False)
            )
            return int(result.inserted_primary_key[0])

    def event_delivered(self, event_id: int, ok: bool, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(EVENTS).where(EVENTS.c.id == event_id).values(delivered=ok, delivery_error=error))

    def events(self, limit: int = 50, rule: str | None = None) -> list[AlertEvent]:
        stmt = select(EVENTS).order_by(EVENTS.c.id.desc()).limit(limit)
        if rule:
            stmt = stmt.where(EVENTS.c.rule == rule)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [AlertEvent(**dict(r)) for r in rows]


def _job(row: Any, tags: list[str], with_result: bool = True) -> Job:
    result = json.loads(row["result"]) if (with_result and row["result"]) else None
    return Job(
        seq=row["seq"], id=row["id"], state=row["state"], source_kind=row["source_kind"], source=row["source"],
        video=row["video"], options=json.loads(row["options"] or "{}"), batch_id=row["batch_id"],
        delete_source=bool(row["delete_source"]), created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], attempts=row["attempts"], max_attempts=row["max_attempts"],
        worker=row["worker"], lease_expires_at=row["lease_expires_at"], model=row["model"], score=row["score"],
        scaled_score=row["scaled_score"], grade=row["grade"], result=result, error_kind=row["error_kind"],
        error_message=row["error_message"], tags=tags,
    )
