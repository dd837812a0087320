"""End to end in headless Chromium: after jobs ran, the dashboard's charts show their data.

Uses Debian's chromium (/usr/bin/chromium) through Playwright; no browser is downloaded.
Skipped with a reason where either is missing.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import httpx
import pytest

from service_support import AUTH, TOKEN, LiveServer, synthetic_result, tiny_model_file
from vqscope.service import ServiceConfig, create_app
from vqscope.service.alerts import AlertRule
from vqscope.service.store import NewJob





def backfill(store, hours_ago: float, score: float, grade: str, blur: float, noise: float) -> None:
    """A finished job from earlier today, so the trend has more than one point."""
    job = store.submit([NewJob("path", "/archive/old.mp4", f"old-{hours_ago}h.mp4", tags=("archive",))])[0]
    claimed = store.claim("backfill", 30)
    assert claimed.id == job.id
    dims = {"blur": (blur, "fair"), "noise": (noise, "good")}
    store.complete(claimed, synthetic_result(claimed.video, score, score, grade, dims, clips=4))
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE vqscope_jobs SET finished_at = finished_at - :d WHERE seq = :s"),
                     {"d": hours_ago * 3600, "s": job.seq})


def test_dashboard_charts_show_the_jobs(browser, tmp_path, video_factory):
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        shutil.copy(video_factory(f"d{i}.mp4", n=48 + 12 * i, seed=10 + i, speed=1 + 2 * i), media / f"d{i}.mp4")
    config = ServiceConfig(data_dir=tmp_path / "data", model=tiny_model_file(tmp_path), token=TOKEN, poll_s=0.05,
                           path_roots=(media,))
    app = create_app(config)
    store = app.state.service.store
    # earlier results, one per 30-minute bucket of the 24 h view so the lines join up; written
    # before the server (and its workers) start, so no worker picks up these fake jobs
    for h, (score, grade) in zip((0.5, 1.0, 1.5), [(15.0, "bad"), (35.0, "poor"), (55.0, "fair")]):
        backfill(store, h, score, grade, blur=score + 5, noise=score + 10)
    with LiveServer(app) as server:
        items = [{"path": str(media / f"d{i}.mp4"), "tags": ["live"]} for i in range(3)]
        batch = httpx.post(f"{server.url}/api/batches", json={"items": items}, headers=AUTH).json()
        for job in batch["jobs"]:
            assert httpx.get(f"{server.url}/api/jobs/{job['id']}", params={"wait": 30},
                             timeout=40).json()["state"] == "done"
        rule = AlertRule(name="low-quality", metric="grade_share", grades=["bad", "poor"], threshold=0.1,
                         window_s=86400)
        store.put_rule(rule.name, rule.model_dump(mode="json"))
        app.state.service.monitor.evaluate_once()
        data = httpx.get(f"{server.url}/api/dashboard", params={"window": "24h"}).json()

        page = browser.new_page()
        external, errors = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def only_local(route):
            if urlparse(route.request.url).hostname not in ("127.0.0.1", "localhost"):
                external.append(route.request.url)
                return route.abort()
            return route.continue_()

        page.route("**/*", only_local)
        page.goto(f"{server.url}/dashboard?window=24h")
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)

        # trend: one point per bucket with videos, at the API's means; lines and band drawn
        points = [p for p in data["trend"] if p["count"]]
        assert len(points) >= 4  # three backfilled buckets + now (+1 if now straddles a boundary)
        drawn = page.eval_on_selector_all("#trend-chart circle.pt", "els => els.map(e => Number(e.dataset.mean))")
        assert drawn == pytest.approx([p["mean"] for p in points])
        assert page.get_attribute("#trend-chart", "data-jobs") == "6"
        assert page.get_attribute("#trend-chart path.line-p50", "d").count("L") >= 1
        assert page.locator("#trend-chart .band").count() >= 1

        # grades: one bar per grade, heights from the counts
        bars = page.eval_on_selector_all(
            "#grade-chart rect.bar", "els => els.map(e => [e.dataset.grade, Number(e.dataset.count), "
                                     "e.getBBox().height])")
        assert {g: n for g, n, _ in bars} == {g["grade"]: g["count"] for g in data["grades"]}
        assert sum(n for _, n, _ in bars) == 6
        tallest = max(bars, key=lambda b: b[1])
        assert tallest[2] > 50 and all(h < 1 for _, n, h in bars if n == 0)

        # dimensions: a line per dimension the results report
        dims = page.eval_on_selector_all("#dimension-chart path.dim-line", "els => els.map(e => e.dataset.dimension)")
        assert dims == ["overall", "noise", "blur"] == list(data["dimensions"])  # the taxonomy's order
        assert page.locator("#dimension-chart circle.dim-pt[data-dimension=blur]").count() == 3

        # worst recent videos, lowest first, each with its clip timeline
        rows = page.eval_on_selector_all(
            "#worst tr.worst-row", "els => els.map(e => [e.dataset.job, e.querySelectorAll('rect.clip').length])")
        assert [r[0] for r in rows] == [w["id"] for w in data["worst"]]
        assert [r[1] for r in rows] == [len(w["clips"]) for w in data["worst"]]
        assert page.locator("#worst tr.worst-row").first.inner_text().startswith("old-0.5h.mp4")

        # alerts and summary
        assert page.get_attribute("#alert-rules li.rule", "data-state") == "firing"
        assert page.locator("#alert-events li.event").count() == 1
        assert page.inner_text("#tile-done .value") == "6"

        # the tag filter redraws from the API
        page.fill("#tag", "live")
        page.dispatch_event("#tag", "change")
        page.wait_for_selector("body[data-ready='2']", state="attached", timeout=20_000)
        assert page.get_attribute("#trend-chart", "data-jobs") == "3"
        assert external == [] and errors == []
        page.close()
