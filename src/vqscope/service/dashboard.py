"""What the dashboard shows, computed on the server: one JSON document per refresh.

The page (static/dashboard.html + dashboard.js) only draws; every number comes from here, so
what the charts show is exactly what `GET /api/dashboard` returns and can be tested without a
browser. Percentiles are computed in Python over the window's rows (SQLite has no percentile
function); a window holds at most `ROW_LIMIT` jobs. Video names that are URLs are shown without
their credentials or query (redact.py); so are the failed jobs' messages (the same text as
`GET /api/jobs/ID` shows).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..calibration import GRADES, calibration_set
from .alerts import iso
from .redact import redact_text
from .schemas import public_error, public_video
from .store import JobStore

WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
_BUCKETS = (60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
ROW_LIMIT = 200_000
FAILED_N = 5  # the most recent failed jobs listed with their reason
MESSAGE_CHARS = 300  # a failure's message as listed: one line, at most this long


def one_line(text: str | None, limit: int = MESSAGE_CHARS) -> str:
    """A message on one line (runs of whitespace, newlines included, become one space), cut to `limit`."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def bucket_seconds(window_s: float, max_buckets: int = 48) -> int:
    """The smallest round bucket that splits the window into at most `max_buckets` points."""
    for b in _BUCKETS:
        if window_s / b <= max_buckets:
            return b
    return _BUCKETS[-1]


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p10": None, "p50": None, "p90": None}
    arr = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = np.percentile(arr, [10, 50, 90])
    return {"mean": round(float(arr.mean()), 2), "p10": round(float(p10), 2), "p50": round(float(p50), 2),
            "p90": round(float(p90), 2)}


def build_dashboard(
    store: JobStore,
    window_s: float,
    *,
    now: float | None = None,
    tag: str | None = None,
    worst_n: int = 10,
    failed_n: int = FAILED_N,
    grade_labels: tuple[str, ...] = GRADES,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = store.clock() if now is None else now
    bucket = bucket_seconds(window_s)
    start = (now - window_s) // bucket * bucket  # aligned, so buckets do not shift on refresh
    rows = store.finished_since(now - window_s, tag=tag, limit=ROW_LIMIT)
    done = [r for r in rows if r.state == "done"]
    basis = "scaled_score" if any(r.scaled_score is not None for r in done) else "score"

    by_bucket: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_bucket[int((r.finished_at - start) // bucket)].append(r)
    trend = []
    for i in range(int((now - start) // bucket) + 1):
        members = by_bucket.get(i, [])
        ok = [r for r in members if r.state == "done"]
        values = [getattr(r, basis) for r in ok if getattr(r, basis) is not None]
        point = {"t": iso(start + i * bucket), "ts": start + i * bucket, "count": len(ok),
                 "failed": len(members) - len(ok)}
        point.update(_stats(values))
        scores = [r.score for r in ok if r.score is not None]
        point["mean_score"] = round(float(np.mean(scores)), 2) if scores else None
        trend.append(point)

    counts: dict[str, int] = {g: 0 for g in grade_labels}
    for r in done:
        counts[r.grade or "?"] = counts.get(r.grade or "?", 0) + 1
    grades = [{"grade": g, "count": n} for g, n in counts.items()]

    dim_buckets: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for finished_at, name, score, _grade in store.dimensions_since(now - window_s, tag=tag):
        dim_buckets[name][int((finished_at - start) // bucket)].append(score)
    order = [d for d in ("overall", "color", "noise", "artifact", "blur", "temporal") if d in dim_buckets]
    order += sorted(set(dim_buckets) - set(order))
    dimensions = {
        name: [
            {"t": iso(start + i * bucket), "ts": start + i * bucket, "count": len(v),
             "mean": round(float(np.mean(v)), 2)}
            for i, v in sorted(dim_buckets[name].items())
        ]
        for name in order
    }

    worst = []
    for job in store.worst_since(now - window_s, worst_n, tag=tag):
        result = job.result or {}
        worst.append({
            "id": job.id, "video": redact_text(job.video), "score": job.score, "scaled_score": job.scaled_score,
            "grade": job.grade, "finished_at": iso(job.finished_at), "tags": job.tags,
            "duration_s": result.get("duration_s"), "description": result.get("description", ""),
            "clips": [
                {"start_s": c.get("start_s"), "end_s": c.get("end_s"), "score": c.get("score"),
                 "grade": ((c.get("dimensions") or {}).get("overall") or {}).get("grade")}
                for c in result.get("clips", [])
            ],
        })

    # the most recent failures of the window (and tag), newest first, with the reason each one gave
    failed = []
    for row in reversed([r for r in rows if r.state == "failed"][-failed_n:] if failed_n > 0 else []):
        job = store.get(row.id)
        if job is None:  # removed between the two reads
            continue
        failed.append({
            "id": job.id, "video": public_video(job), "finished_at": iso(job.finished_at), "tags": job.tags,
            "error": job.error_kind, "message": one_line(public_error(job)),
        })

    values = [getattr(r, basis) for r in done if getattr(r, basis) is not None]
    summary = {
        "finished": len(rows), "done": len(done), "failed": len(rows) - len(done),
        "mean": _stats(values)["mean"],
        "mean_score": round(float(np.mean([r.score for r in done])), 2) if done else None,
        "low_share": round(sum(r.grade in grade_labels[:2] for r in done) / len(done), 4) if done else None,
        "low_grades": list(grade_labels[:2]),
        "queue": store.counts(),
    }
    rules = [
        {"name": r.name, "state": r.state, "since": iso(r.since), "value": r.last_value, "count": r.last_count,
         "metric": r.spec.get("metric"), "op": r.spec.get("op"), "threshold": r.spec.get("threshold"),
         "window_s": r.spec.get("window_s"), "description": r.spec.get("description", "")}
        for r in store.rules()
    ]
    events = [
        {"rule": e.rule, "status": e.status, "at": iso(e.at), "message": e.message, "delivered": e.delivered}
        for e in store.events(limit=20)
    ]
    model = dict(model or {})
    if model:
        model["calibration_set"] = calibration_set(model.get("benchmark"), model.get("benchmark_size"))
    return {
        "generated_at": iso(now), "window_s": window_s, "bucket_s": bucket, "since": iso(start), "tag": tag,
        "basis": basis, "model": model, "summary": summary, "trend": trend, "grades": grades,
        "dimensions": dimensions, "worst": worst, "failed": failed, "alerts": {"rules": rules, "events": events},
    }
