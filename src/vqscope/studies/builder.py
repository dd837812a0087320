"""Making a study: what `vqscope study create` and `POST /api/studies` both run.

A study's videos come from server paths, uploads (added afterwards), scored jobs named by id,
or a query over scored jobs ("120 videos from the last 7 days, tag X"); with `select`, the
N that teach a model most are chosen from the candidates (select.py) and each item keeps the
reason it was chosen. Anchors (the training round's labelled examples) and gold items (a
known answer) come from paths or jobs the same way. Everything is checked before anything is
stored: a study is created whole, or not at all, and the error names the video at fault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..service.sources import check_path
from ..service.store import JobFilter, JobStore
from .design import StudyConfig, close_call_pairs
from .items import Skipped, item_from_file, items_from_jobs
from .ratings import ACR_LABELS, check_score
from .store import NewItem, Study, StudyStore

#: How many scored jobs a query may draw from at most (selection runs over all of them).
MAX_QUERY_JOBS = 20_000


@dataclass
class Extra:
    """An anchor (label) or a gold item (expected score), from a path or a job."""

    path: str | None = None
    job: str | None = None
    label: str | None = None  # anchors: one of the ACR labels
    score: int | None = None  # gold: the expected 1-5 answer


@dataclass
class StudySpec:
    name: str
    config: StudyConfig = field(default_factory=StudyConfig)
    paths: list[str] = field(default_factory=list)  # server paths of videos
    jobs: list[str] = field(default_factory=list)  # ids of scored jobs
    query: JobFilter | None = None  # scored jobs matching this filter (done ones only)
    query_limit: int = 1000  # newest first, at most this many candidates
    select: int | None = None  # choose this many from the candidates
    bands: int = 5  # score bands of the selection
    anchors: list[Extra] = field(default_factory=list)
    gold: list[Extra] = field(default_factory=list)
    pairs: int | None = None  # pairwise: close-call pairs (default: about one per video)
    copy: bool = False  # copy path videos into the data folder


@dataclass
class Built:
    study: Study
    skipped: list[Skipped]


def build_study(
    spec: StudySpec,
    *,
    jobs: JobStore,
    studies: StudyStore,
    media_dir: Path,
    path_roots: tuple[Path, ...] = (),
    model: str | None = None,
    score_paths: Callable[[list[str]], list[dict[str, Any]]] | None = None,
) -> Built:
    """Check every source, choose, and create the study in one transaction.

    `score_paths` (the CLI passes one) scores path videos so that `select` can choose among
    them too; without it, selection draws only on scored jobs.
    """
    if spec.select is not None and spec.select < 1:
        raise ConfigError("select must be at least 1")
    if not 1 <= spec.query_limit <= MAX_QUERY_JOBS:
        raise ConfigError(f"a query draws on 1 to {MAX_QUERY_JOBS} jobs")
    skipped: list[Skipped] = []
    candidates = _job_candidates(spec, jobs)
    reasons: dict[str, str] = {}
    paths = [check_path(os.path.abspath(p), path_roots) for p in spec.paths]
    path_results: dict[str, dict[str, Any]] = {}
    if spec.select is not None:
        if paths:
            if score_paths is None:
                raise ConfigError("select chooses among scored videos: submit the files as jobs first, "
                                  "or give job ids or a query")
            for path, result in zip(paths, score_paths(paths)):
                if result.get("status", "ok") != "ok":
                    skipped.append(Skipped(path, str(result.get("message") or result.get("error"))))
                else:
                    path_results[path] = result
            paths = list(path_results)
        chosen = _choose(candidates, path_results, spec.select, spec.bands, spec.config.seed)
        reasons = {key: reason for key, reason in chosen}
        keep = set(reasons)
        candidates = [j for j in candidates if j.id in keep]
        paths = [p for p in paths if p in keep]
    items, bad = items_from_jobs(candidates, media_dir, reasons)
    skipped += bad
    for path in paths:
        result = path_results.get(path)
        job = {"score": result["score"], "scaled_score": result.get("scaled_score")} if result else None
        items.append(item_from_file(path, media_dir, copy=spec.copy, reason=reasons.get(path), job=job))
    if not items:
        first = f" ({skipped[0].source}: {skipped[0].reason})" if skipped else ""
        raise ConfigError(f"no video to rate: give paths, job ids or a query that finds scored jobs{first}")
    items += [_extra(e, "anchor", jobs, media_dir, path_roots, spec.copy) for e in spec.anchors]
    items += [_extra(e, "gold", jobs, media_dir, path_roots, spec.copy) for e in spec.gold]
    pairs = _pairs(spec, items)
    study = studies.create(spec.name, spec.config, items, model=model, pairs=pairs)
    return Built(study, skipped)


def _job_candidates(spec: StudySpec, jobs: JobStore) -> list[Any]:
    out = []
    for job_id in spec.jobs:
        job = jobs.get(job_id)
        if job is None:
            raise ConfigError(f"no job {job_id}")
        out.append(job)
    if spec.query is not None:
        flt = JobFilter(**{**spec.query.__dict__, "states": ("done",)})
        found, _ = jobs.list(flt, limit=spec.query_limit, with_result=spec.select is not None)
        if not found:
            raise ConfigError("the query found no scored (done) jobs")
        seen = {j.id for j in out}
        out += [j for j in found if j.id not in seen]
    if spec.select is not None:  # selection reads each candidate's result
        out = [jobs.get(j.id) if j.result is None else j for j in out]
    return out


def _choose(jobs: Sequence[Any], path_results: dict[str, dict[str, Any]], n: int, bands: int,
            seed: int) -> list[tuple[str, str]]:
    """(key, reason) of the chosen candidates: job ids and paths."""
    from .select import Candidate, choose_items, embedding_from_result

    pool = [Candidate(j.id, float(j.result["score"]), embedding_from_result(j.result)) for j in jobs if j.result]
    pool += [Candidate(p, float(r["score"]), embedding_from_result(r)) for p, r in path_results.items()]
    if not pool:
        raise ConfigError("select: none of the candidates has a score")
    try:
        return [(c.id, c.reason) for c in choose_items(pool, n, bands=bands, seed=seed)]
    except ValueError as exc:
        raise ConfigError(f"select: {exc}") from None


def _extra(extra: Extra, kind: str, jobs: JobStore, media_dir: Path, roots: tuple[Path, ...],
           copy: bool) -> NewItem:
    if kind == "anchor" and extra.label not in ACR_LABELS:
        raise ConfigError(f"an anchor's label is one of {', '.join(ACR_LABELS)}, not {extra.label!r}")
    gold = None
    if kind == "gold":
        try:
            gold = float(check_score(extra.score, "a gold item's score"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if (extra.path is None) == (extra.job is None):
        raise ConfigError(f"give an {kind} as a path or a job id, not both or neither")
    if extra.job is not None:
        job = jobs.get(extra.job)
        if job is None:
            raise ConfigError(f"no job {extra.job}")
        made, bad = items_from_jobs([job], media_dir)
        if bad:
            raise ConfigError(f"{kind} {extra.job}: {bad[0].reason}")
        item = made[0]
    else:
        path = check_path(os.path.abspath(extra.path), roots)
        item = item_from_file(path, media_dir, copy=copy)
    item.kind, item.label, item.gold = kind, extra.label, gold
    return item


def _pairs(spec: StudySpec, items: list[NewItem]) -> list[tuple[int, int, str]]:
    """Close-call pairs of a pairwise study, as indices into `items`: the videos whose model
    scores are nearest (items without a score are paired by position)."""
    if spec.config.method != "pairwise":
        if spec.pairs:
            raise ConfigError("pairs are for pairwise studies (method pairwise)")
        return []
    videos = [k for k, item in enumerate(items) if item.kind == "video"]
    if len(videos) < 2:
        raise ConfigError("a pairwise study needs at least two videos")
    scores = {k: (items[k].model_score if items[k].model_score is not None else float(n))
              for n, k in enumerate(videos)}
    wanted = spec.pairs if spec.pairs is not None else len(videos)
    if wanted < 1:
        raise ConfigError("pairs must be at least 1")
    return close_call_pairs(scores, wanted)
