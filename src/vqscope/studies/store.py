"""Studies, their items, raters, task lists and ratings, in the service's job store.

Why they live there: the job store is already the one durable place of a deployment
(SQLite in the data folder, or PostgreSQL shared by instances), with migrations, backups
and the scored jobs a study draws its videos from. What that buys raters:
- a rating is committed before the rater's page hears "saved": a crash, a kill -9 or a
  restart of the service loses no submitted rating;
- one answer per task is a unique constraint, not a check-then-write: a double click, a
  retried request or two tabs cannot store a rating twice (the second gets a clear 409);
- task lists are drawn once, when a rater is invited (design.py), and stored, so a rater
  who closes the browser resumes exactly where they were.

A rater's invitation token is kept only as its SHA-256: the link is shown once, when the
rater is invited, and a copy of the database does not hand out working links.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import (
    BadRatingError,
    DuplicateRatingError,
    NotAssignedError,
    OutOfOrderError,
    StudyClosedError,
    StudyFrozenError,
    UnknownStudyError,
)
from ..service.store import Base
from ..taxonomy import DISTORTION_TYPES
from .design import Coverage, PlanItem, StudyConfig, rater_tasks
from .ratings import RATED_DIMENSIONS, Comparison, Item, Rating, check_score

ITEM_KINDS = ("video", "anchor", "gold")
STUDY_STATES = ("open", "closed")


class StudyRow(Base):
    __tablename__ = "vqscope_studies"
    __table_args__ = (UniqueConstraint("id", name="uq_vqscope_studies_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    config: Mapped[str] = mapped_column(Text, nullable=False)  # StudyConfig as JSON
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)  # whose scores the items carry
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class StudyItemRow(Base):
    __tablename__ = "vqscope_study_items"
    __table_args__ = (
        UniqueConstraint("id", name="uq_vqscope_study_items_id"),
        Index("ix_vqscope_study_items_study", "study_seq", "position"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_studies.seq", ondelete="CASCADE", name="fk_vqscope_study_items_study"),
        nullable=False)
    id: Mapped[str] = mapped_column(String(32), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # video | anchor | gold
    video: Mapped[str] = mapped_column(Text, nullable=False)  # the name people know it by
    source_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # upload | path | job | import
    source: Mapped[str | None] = mapped_column(Text, nullable=True)  # the original path, or None
    media: Mapped[str | None] = mapped_column(Text, nullable=True)  # the file raters are shown
    media_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    scaled_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[str | None] = mapped_column(String(32), nullable=True)  # an anchor's label
    gold: Mapped[float | None] = mapped_column(Float, nullable=True)  # a gold item's expected answer
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it was chosen
    info: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: probe figures, transcoding


class StudyPairRow(Base):
    __tablename__ = "vqscope_study_pairs"
    __table_args__ = (Index("ix_vqscope_study_pairs_study", "study_seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_studies.seq", ondelete="CASCADE", name="fk_vqscope_study_pairs_study"),
        nullable=False)
    first_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_study_items.seq", ondelete="CASCADE", name="fk_vqscope_study_pairs_first"),
        nullable=False)
    second_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_study_items.seq", ondelete="CASCADE", name="fk_vqscope_study_pairs_second"),
        nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class StudyRaterRow(Base):
    __tablename__ = "vqscope_study_raters"
    __table_args__ = (
        UniqueConstraint("id", name="uq_vqscope_study_raters_id"),
        UniqueConstraint("token_hash", name="uq_vqscope_study_raters_token"),
        Index("ix_vqscope_study_raters_study", "study_seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_studies.seq", ondelete="CASCADE", name="fk_vqscope_study_raters_study"),
        nullable=False)
    id: Mapped[str] = mapped_column(String(32), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)  # 0, 1, ... within the study
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # invited | imported
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    last_seen_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class StudyTaskRow(Base):
    __tablename__ = "vqscope_study_tasks"
    __table_args__ = (UniqueConstraint("rater_seq", "position", name="uq_vqscope_study_tasks_position"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rater_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_study_raters.seq", ondelete="CASCADE", name="fk_vqscope_study_tasks_rater"),
        nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    phase: Mapped[str] = mapped_column(String(16), nullable=False)  # training | main
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # training | main | repeat | gold
    item_seq: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("vqscope_study_items.seq", ondelete="CASCADE", name="fk_vqscope_study_tasks_item"),
        nullable=True)
    pair_seq: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("vqscope_study_pairs.seq", ondelete="CASCADE", name="fk_vqscope_study_tasks_pair"),
        nullable=True)
    swap: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class StudyRatingRow(Base):
    __tablename__ = "vqscope_study_ratings"
    __table_args__ = (
        UniqueConstraint("task_seq", name="uq_vqscope_study_ratings_task"),
        Index("ix_vqscope_study_ratings_study", "study_seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_studies.seq", ondelete="CASCADE", name="fk_vqscope_study_ratings_study"),
        nullable=False)
    rater_seq: Mapped[int] = mapped_column(
        Integer, ForeignKey("vqscope_study_raters.seq", ondelete="CASCADE", name="fk_vqscope_study_ratings_rater"),
        nullable=False)
    task_seq: Mapped[int | None] = mapped_column(  # None for imported ratings
        Integer, ForeignKey("vqscope_study_tasks.seq", ondelete="CASCADE", name="fk_vqscope_study_ratings_task"),
        nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # training | main | repeat | gold
    item_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # ACR / FineVD answers
    pair_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # pairwise answers
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5
    dimensions: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {dimension: 1-5}
    tags: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [distortion type]
    preferred_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the item preferred
    watched_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    submitted_at: Mapped[float] = mapped_column(Float, nullable=False)


STUDIES = StudyRow.__table__
ITEMS = StudyItemRow.__table__
PAIRS = StudyPairRow.__table__
RATERS = StudyRaterRow.__table__
TASKS = StudyTaskRow.__table__
RATINGS = StudyRatingRow.__table__


# -- plain values --------------------------------------------------------------------------------
@dataclass
class NewItem:
    """An item to add to a study (see items.py for how paths, uploads and jobs become one)."""

    video: str
    media: str | None
    source_kind: str
    source: str | None = None
    kind: str = "video"
    media_type: str | None = None
    job_id: str | None = None
    model_score: float | None = None
    scaled_score: float | None = None
    label: str | None = None
    gold: float | None = None
    reason: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudyItem:
    seq: int
    id: str
    position: int
    kind: str
    video: str
    source_kind: str
    source: str | None
    media: str | None
    media_type: str | None
    job_id: str | None
    model_score: float | None
    scaled_score: float | None
    label: str | None
    gold: float | None
    reason: str | None
    info: dict[str, Any]

    def record(self) -> Item:
        return Item(id=self.id, video=self.video, path=self.media, model_score=self.model_score,
                    scaled_score=self.scaled_score, job_id=self.job_id, gold=self.gold, label=self.label,
                    reason=self.reason, kind=self.kind)


@dataclass
class Study:
    seq: int
    id: str
    name: str
    method: str
    state: str
    config: StudyConfig
    model: str | None
    created_at: float
    closed_at: float | None
    items: int = 0
    raters: int = 0
    ratings: int = 0


@dataclass
class Rater:
    seq: int
    id: str
    number: int
    name: str
    source: str
    created_at: float
    last_seen_at: float | None
    done: int = 0  # tasks answered
    total: int = 0  # tasks on the list
    training_total: int = 0
    training_done: int = 0


@dataclass
class Invitation:
    """A new rater and their token (shown once: only its hash is stored)."""

    rater: Rater
    token: str

    @property
    def path(self) -> str:
        return f"/rate/{self.token}"


@dataclass
class Task:
    """A task as the rater's page sees it: items in the order shown."""

    seq: int
    position: int
    phase: str
    kind: str
    items: list[StudyItem]  # one (ACR, FineVD, training) or two (pairwise, left first)
    pair: int | None = None  # the pair's row (pairwise)
    answered: bool = False


@dataclass
class Answer:
    """What a rater submits for a task."""

    score: int | None = None
    dimensions: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    preferred: str | None = None  # pairwise: "first" (left) or "second" (right)
    watched_s: float | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- the repository ------------------------------------------------------------------------------
class StudyStore:
    """Every read and write of studies. Shares the job store's engine (and its migrations)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock

    # -- studies -------------------------------------------------------------------------------
    def create(self, name: str, config: StudyConfig, items: Sequence[NewItem], *, model: str | None = None,
               pairs: Sequence[tuple[int, int, str]] = ()) -> Study:
        """A study with its items (and, for pairwise, pairs of item indices into `items`),
        in one transaction: it exists whole or not at all."""
        name = name.strip()
        if not name or len(name) > 200:
            raise BadRatingError("a study needs a name of 1 to 200 characters")
        now = self.clock()
        with self.engine.begin() as conn:
            seq = int(conn.execute(insert(STUDIES).values(
                id=uuid.uuid4().hex[:12], name=name, method=config.method, state="open",
                config=json.dumps(config.to_dict()), model=model, created_at=now,
            )).inserted_primary_key[0])
            seqs = self._insert_items(conn, seq, items, start=0)
            for a, b, reason in pairs:
                conn.execute(insert(PAIRS).values(study_seq=seq, first_seq=seqs[a], second_seq=seqs[b],
                                                  reason=reason))
        return self.get(self._id_of(seq))

    def _insert_items(self, conn: Any, study_seq: int, items: Sequence[NewItem], start: int) -> list[int]:
        seqs = []
        for k, item in enumerate(items):
            if item.kind not in ITEM_KINDS:
                raise BadRatingError(f"unknown item kind {item.kind!r} (kinds: {', '.join(ITEM_KINDS)})")
            seqs.append(int(conn.execute(insert(ITEMS).values(
                study_seq=study_seq, id=uuid.uuid4().hex[:12], position=start + k, kind=item.kind,
                video=item.video, source_kind=item.source_kind, source=item.source, media=item.media,
                media_type=item.media_type, job_id=item.job_id, model_score=item.model_score,
                scaled_score=item.scaled_score, label=item.label, gold=item.gold, reason=item.reason,
                info=json.dumps(item.info),
            )).inserted_primary_key[0]))
        return seqs

    def add_items(self, study_id: str, items: Sequence[NewItem]) -> list[StudyItem]:
        """More items for a study no rater was invited to yet."""
        study = self.get(study_id)
        self._require_open(study)
        with self.engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(RATERS).where(RATERS.c.study_seq == study.seq)).scalar_one():
                raise StudyFrozenError(f"study {study_id} already has raters: its items are fixed "
                                       f"(make a new study for more videos)")
            start = conn.execute(select(func.count()).select_from(ITEMS).where(
                ITEMS.c.study_seq == study.seq)).scalar_one()
            seqs = self._insert_items(conn, study.seq, items, start=int(start))
        return [i for i in self.items(study_id) if i.seq in set(seqs)]

    def _id_of(self, seq: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(STUDIES.c.id).where(STUDIES.c.seq == seq)).scalar_one()

    def get(self, study_id: str) -> Study:
        with self.engine.connect() as conn:
            row = conn.execute(select(STUDIES).where(STUDIES.c.id == study_id)).mappings().first()
            if row is None:
                raise UnknownStudyError(f"no study {study_id!r}")
            return self._study(conn, row)

    def list(self) -> list[Study]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(STUDIES).order_by(STUDIES.c.seq.desc())).mappings().all()
            return [self._study(conn, r) for r in rows]

    @staticmethod
    def _study(conn: Any, row: Any) -> Study:
        def count(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(
                table.c.study_seq == row["seq"])).scalar_one())

        return Study(
            seq=row["seq"], id=row["id"], name=row["name"], method=row["method"], state=row["state"],
            config=StudyConfig.from_dict(json.loads(row["config"])), model=row["model"],
            created_at=row["created_at"], closed_at=row["closed_at"], items=count(ITEMS), raters=count(RATERS),
            ratings=count(RATINGS),
        )

    def close(self, study_id: str) -> Study:
        """No more ratings are taken (results and exports stay available)."""
        study = self.get(study_id)
        with self.engine.begin() as conn:
            conn.execute(update(STUDIES).where(STUDIES.c.seq == study.seq, STUDIES.c.state == "open").values(
                state="closed", closed_at=self.clock()))
        return self.get(study_id)

    @staticmethod
    def _require_open(study: Study) -> None:
        if study.state != "open":
            raise StudyClosedError(f"study {study.id} is closed")

    # -- items and pairs -----------------------------------------------------------------------
    def items(self, study_id: str) -> list[StudyItem]:
        study = self.get(study_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(ITEMS).where(ITEMS.c.study_seq == study.seq).order_by(
                ITEMS.c.position)).mappings().all()
        return [_item(r) for r in rows]

    def pairs(self, study_id: str) -> list[tuple[StudyItem, StudyItem, str | None]]:
        study = self.get(study_id)
        by_seq = {i.seq: i for i in self.items(study_id)}
        with self.engine.connect() as conn:
            rows = conn.execute(select(PAIRS).where(PAIRS.c.study_seq == study.seq).order_by(PAIRS.c.seq)).all()
        return [(by_seq[r.first_seq], by_seq[r.second_seq], r.reason) for r in rows]

    # -- raters --------------------------------------------------------------------------------
    def invite(self, study_id: str, names: Sequence[str]) -> list[Invitation]:
        """New raters with their task lists (drawn now, balanced against earlier raters')."""
        study = self.get(study_id)
        self._require_open(study)
        names = [n.strip() for n in names]
        if not names:
            raise BadRatingError("invite at least one rater")
        if any(not n or len(n) > 200 for n in names):
            raise BadRatingError("a rater's name is 1 to 200 characters")
        now = self.clock()
        out = []
        with self.engine.begin() as conn:
            items = conn.execute(select(ITEMS).where(ITEMS.c.study_seq == study.seq).order_by(
                ITEMS.c.position)).mappings().all()
            pairs = [r.seq for r in conn.execute(select(PAIRS.c.seq).where(
                PAIRS.c.study_seq == study.seq).order_by(PAIRS.c.seq))]
            if not any(i["kind"] == "video" for i in items):
                raise BadRatingError(f"study {study_id} has no videos to rate yet")
            if study.method == "pairwise" and not pairs:
                raise BadRatingError(f"study {study_id} has no pairs to compare")
            plan_items = [PlanItem(i["seq"], i["kind"], i["label"]) for i in items]
            coverage = Coverage(self._coverage(conn, study.seq))
            first = int(conn.execute(select(func.count()).select_from(RATERS).where(
                RATERS.c.study_seq == study.seq)).scalar_one())
            for k, name in enumerate(names):
                token = secrets.token_urlsafe(24)
                number = first + k
                rater_seq = int(conn.execute(insert(RATERS).values(
                    study_seq=study.seq, id=uuid.uuid4().hex[:12], number=number, name=name, source="invited",
                    token_hash=hash_token(token), created_at=now,
                )).inserted_primary_key[0])
                tasks = rater_tasks(study.config, plan_items, pairs, number, coverage)
                conn.execute(insert(TASKS), [
                    {"rater_seq": rater_seq, "position": p, "phase": t.phase, "kind": t.kind, "item_seq": t.item,
                     "pair_seq": t.pair, "swap": int(t.swap)}
                    for p, t in enumerate(tasks)
                ])
                out.append((rater_seq, token))
        raters = {r.seq: r for r in self.raters(study_id)}
        return [Invitation(raters[seq], token) for seq, token in out]

    @staticmethod
    def _coverage(conn: Any, study_seq: int) -> dict[int, int]:
        """Raters per item (or pair) among the study's main tasks so far."""
        rows = conn.execute(
            select(func.coalesce(TASKS.c.pair_seq, TASKS.c.item_seq), func.count())
            .select_from(TASKS.join(RATERS, RATERS.c.seq == TASKS.c.rater_seq))
            .where(RATERS.c.study_seq == study_seq, TASKS.c.kind == "main")
            .group_by(func.coalesce(TASKS.c.pair_seq, TASKS.c.item_seq))
        ).all()
        return {int(k): int(n) for k, n in rows}

    def raters(self, study_id: str) -> list[Rater]:
        study = self.get(study_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(RATERS).where(RATERS.c.study_seq == study.seq).order_by(
                RATERS.c.number)).mappings().all()
            return [self._rater(conn, r) for r in rows]

    @staticmethod
    def _rater(conn: Any, row: Any) -> Rater:
        tasks = conn.execute(
            select(TASKS.c.phase, func.count(TASKS.c.seq), func.count(RATINGS.c.seq))
            .select_from(TASKS.outerjoin(RATINGS, RATINGS.c.task_seq == TASKS.c.seq))
            .where(TASKS.c.rater_seq == row["seq"]).group_by(TASKS.c.phase)
        ).all()
        per_phase = {phase: (int(total), int(done)) for phase, total, done in tasks}
        imported = 0
        if row["source"] == "imported":
            imported = int(conn.execute(select(func.count()).select_from(RATINGS).where(
                RATINGS.c.rater_seq == row["seq"])).scalar_one())
        total = sum(t for t, _ in per_phase.values()) or imported
        done = sum(d for _, d in per_phase.values()) or imported
        training_total, training_done = per_phase.get("training", (0, 0))
        return Rater(seq=row["seq"], id=row["id"], number=row["number"], name=row["name"], source=row["source"],
                     created_at=row["created_at"], last_seen_at=row["last_seen_at"], done=done, total=total,
                     training_total=training_total, training_done=training_done)

    def rater_by_token(self, token: str) -> tuple[Study, Rater]:
        """The study and rater an invitation token belongs to (UnknownStudyError otherwise:
        the same answer for a wrong token and an unknown one)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(RATERS).where(RATERS.c.token_hash == hash_token(token))).mappings().first()
            if row is None:
                raise UnknownStudyError("this rating link is not valid (ask for a new one)")
            study = self._study(conn, conn.execute(select(STUDIES).where(
                STUDIES.c.seq == row["study_seq"])).mappings().one())
            rater = self._rater(conn, row)
        return study, rater

    def seen(self, rater: Rater) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(RATERS).where(RATERS.c.seq == rater.seq).values(last_seen_at=self.clock()))

    # -- tasks ---------------------------------------------------------------------------------
    def tasks(self, rater: Rater) -> list[Task]:
        """A rater's whole list, in order, with what they answered."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(TASKS, RATINGS.c.seq.label("rating_seq"))
                .select_from(TASKS.outerjoin(RATINGS, RATINGS.c.task_seq == TASKS.c.seq))
                .where(TASKS.c.rater_seq == rater.seq).order_by(TASKS.c.position)
            ).mappings().all()
            item_seqs = {r["item_seq"] for r in rows if r["item_seq"] is not None}
            pair_rows = {}
            pair_seqs = {r["pair_seq"] for r in rows if r["pair_seq"] is not None}
            if pair_seqs:
                for p in conn.execute(select(PAIRS).where(PAIRS.c.seq.in_(pair_seqs))):
                    pair_rows[p.seq] = (p.first_seq, p.second_seq)
                    item_seqs.update((p.first_seq, p.second_seq))
            items = {r["seq"]: _item(r) for r in conn.execute(
                select(ITEMS).where(ITEMS.c.seq.in_(item_seqs))).mappings()} if item_seqs else {}
        out = []
        for r in rows:
            if r["pair_seq"] is not None:
                a, b = pair_rows[r["pair_seq"]]
                shown = [items[b], items[a]] if r["swap"] else [items[a], items[b]]
            else:
                shown = [items[r["item_seq"]]]
            out.append(Task(seq=r["seq"], position=r["position"], phase=r["phase"], kind=r["kind"], items=shown,
                            pair=r["pair_seq"], answered=r["rating_seq"] is not None))
        return out

    def task(self, rater: Rater, position: int) -> Task:
        for task in self.tasks(rater):
            if task.position == position:
                return task
        raise NotAssignedError(f"task {position} is not on this rater's list")

    def submit(self, study: Study, rater: Rater, position: int, answer: Answer) -> Task:
        """Store one answer. Raises a typed StudyError for every reason it cannot be taken;
        an answer that is stored is committed before this returns."""
        self._require_open(study)
        tasks = self.tasks(rater)
        task = next((t for t in tasks if t.position == position), None)
        if task is None:
            raise NotAssignedError(f"task {position} is not on this rater's list")
        if task.answered:
            raise DuplicateRatingError(f"task {position} was already rated (ratings cannot be changed)")
        if task.phase == "main" and any(t.phase == "training" and not t.answered for t in tasks):
            raise OutOfOrderError("finish the training round first")
        values = self._answer_values(study, task, answer)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(RATINGS).values(
                    study_seq=study.seq, rater_seq=rater.seq, task_seq=task.seq, kind=task.kind,
                    submitted_at=self.clock(), watched_s=answer.watched_s, **values,
                ))
                conn.execute(update(RATERS).where(RATERS.c.seq == rater.seq).values(last_seen_at=self.clock()))
        except IntegrityError:
            raise DuplicateRatingError(f"task {position} was already rated (ratings cannot be changed)") from None
        task.answered = True
        return task

    @staticmethod
    def _answer_values(study: Study, task: Task, answer: Answer) -> dict[str, Any]:
        """The rating columns for `answer`, checked against what the study's form asks."""
        pairwise = len(task.items) == 2
        if pairwise:
            if answer.preferred not in ("first", "second"):
                raise BadRatingError('a comparison needs "preferred": "first" (left) or "second" (right)')
            if answer.score is not None or answer.dimensions or answer.tags:
                raise BadRatingError("a comparison takes only which video is better, not scores")
            chosen = task.items[0] if answer.preferred == "first" else task.items[1]
            # The pair as stored, whatever side each video was shown on.
            return {"pair_seq": task.pair, "preferred_seq": chosen.seq}
        if answer.preferred is not None:
            raise BadRatingError("this task rates one video: give a score, not a preference")
        try:
            score = check_score(answer.score, "score")
            dims = {str(k): check_score(v, str(k)) for k, v in (answer.dimensions or {}).items()}
        except ValueError as exc:
            raise BadRatingError(str(exc)) from None
        finevd = study.method == "finevd" and task.phase == "main"
        unknown = sorted(set(dims) - set(RATED_DIMENSIONS))
        if unknown:
            raise BadRatingError(f"unknown dimension {unknown[0]!r} (dimensions: {', '.join(RATED_DIMENSIONS)})")
        if finevd and set(dims) != set(RATED_DIMENSIONS):
            missing = [d for d in RATED_DIMENSIONS if d not in dims]
            raise BadRatingError(f"this study rates every dimension: {', '.join(missing)} missing")
        if not finevd and (dims or answer.tags):
            raise BadRatingError("this task takes one overall score (no dimensions or distortion types)")
        tags = sorted(set(answer.tags or []))
        bad = [t for t in tags if t not in DISTORTION_TYPES]
        if bad:
            raise BadRatingError(f"unknown distortion type {bad[0]!r}")
        return {"item_seq": task.items[0].seq, "score": score, "dimensions": json.dumps(dims) if dims else None,
                "tags": json.dumps(tags) if finevd else None}

    # -- what the analysis reads --------------------------------------------------------------
    def collected(self, study_id: str) -> tuple[list[Rating], list[Comparison]]:
        """Every rating of a study but the training round's, as analysis records."""
        study = self.get(study_id)
        with self.engine.connect() as conn:
            items = {r.seq: r.id for r in conn.execute(select(ITEMS.c.seq, ITEMS.c.id).where(
                ITEMS.c.study_seq == study.seq))}
            raters = {r.seq: r.id for r in conn.execute(select(RATERS.c.seq, RATERS.c.id).where(
                RATERS.c.study_seq == study.seq))}
            pairs = {r.seq: (r.first_seq, r.second_seq) for r in conn.execute(select(PAIRS).where(
                PAIRS.c.study_seq == study.seq))}
            rows = conn.execute(select(RATINGS).where(RATINGS.c.study_seq == study.seq, RATINGS.c.kind != "training")
                                .order_by(RATINGS.c.seq)).mappings().all()
        ratings, comparisons = [], []
        for r in rows:
            if r["pair_seq"] is not None:
                a, b = pairs[r["pair_seq"]]
                comparisons.append(Comparison(raters[r["rater_seq"]], items[a], items[b], items[r["preferred_seq"]],
                                              kind=r["kind"], at=r["submitted_at"]))
            else:
                ratings.append(Rating(raters[r["rater_seq"]], items[r["item_seq"]], int(r["score"]),
                                      json.loads(r["dimensions"]) if r["dimensions"] else {},
                                      tuple(json.loads(r["tags"])) if r["tags"] else (), kind=r["kind"],
                                      at=r["submitted_at"]))
        return ratings, comparisons

    # -- ratings collected elsewhere ----------------------------------------------------------
    def import_ratings(self, study_id: str, rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Ratings from outside (a crowdsourcing site's CSV, see exchange.py): each row has
        `rater`, `item` (an item id or video name of this study), `score` and optionally
        `dimensions`, `tags`, `kind`. Raters are created by name; a (rater, item, kind) the
        study already holds from an import is skipped, so importing a file twice adds nothing.
        All rows are checked before any is stored: a bad row stores none."""
        study = self.get(study_id)
        self._require_open(study)
        if study.method == "pairwise":
            raise BadRatingError("ratings can be imported into ACR and FineVD studies, not pairwise ones")
        items = self.items(study_id)
        by_key = {i.id: i for i in items}
        for i in items:
            by_key.setdefault(i.video, i)
        checked = []
        for n, row in enumerate(rows, start=1):
            item = by_key.get(str(row["item"]))
            if item is None:
                raise BadRatingError(f"row {n}: no video {row['item']!r} in study {study_id}")
            try:
                rating = Rating(str(row["rater"]), item.id, row["score"], dict(row.get("dimensions") or {}),
                                tuple(row.get("tags") or ()), kind=str(row.get("kind") or "main"))
            except (ValueError, TypeError) as exc:
                raise BadRatingError(f"row {n}: {exc}") from None
            if not rating.rater.strip() or len(rating.rater) > 200:
                raise BadRatingError(f"row {n}: a rater's name is 1 to 200 characters")
            if study.method == "finevd" and rating.kind == "main" and set(rating.dimensions) != set(RATED_DIMENSIONS):
                raise BadRatingError(f"row {n}: this study rates every dimension ({', '.join(RATED_DIMENSIONS)})")
            checked.append((rating, item))
        now = self.clock()
        added = skipped = 0
        with self.engine.begin() as conn:
            raters = {r.name: r.seq for r in conn.execute(select(RATERS.c.name, RATERS.c.seq).where(
                RATERS.c.study_seq == study.seq, RATERS.c.source == "imported"))}
            number = int(conn.execute(select(func.count()).select_from(RATERS).where(
                RATERS.c.study_seq == study.seq)).scalar_one())
            held = {(r.rater_seq, r.item_seq, r.kind) for r in conn.execute(
                select(RATINGS.c.rater_seq, RATINGS.c.item_seq, RATINGS.c.kind).where(
                    RATINGS.c.study_seq == study.seq, RATINGS.c.task_seq.is_(None)))}
            for rating, item in checked:
                if rating.rater not in raters:
                    raters[rating.rater] = int(conn.execute(insert(RATERS).values(
                        study_seq=study.seq, id=uuid.uuid4().hex[:12], number=number, name=rating.rater,
                        source="imported", token_hash=None, created_at=now)).inserted_primary_key[0])
                    number += 1
                key = (raters[rating.rater], item.seq, rating.kind)
                if key in held:
                    skipped += 1
                    continue
                held.add(key)
                conn.execute(insert(RATINGS).values(
                    study_seq=study.seq, rater_seq=key[0], task_seq=None, kind=rating.kind, item_seq=item.seq,
                    score=rating.score, dimensions=json.dumps(dict(rating.dimensions)) if rating.dimensions else None,
                    tags=json.dumps(list(rating.tags)) if rating.tags else None, submitted_at=now))
                added += 1
        return {"added": added, "skipped": skipped, "raters": len(raters)}


def _item(row: Any) -> StudyItem:
    return StudyItem(
        seq=row["seq"], id=row["id"], position=row["position"], kind=row["kind"], video=row["video"],
        source_kind=row["source_kind"], source=row["source"], media=row["media"], media_type=row["media_type"],
        job_id=row["job_id"], model_score=row["model_score"], scaled_score=row["scaled_score"], label=row["label"],
        gold=row["gold"], reason=row["reason"], info=json.loads(row["info"] or "{}"),
    )
