"""End to end in headless Chromium: after jobs ran, the dashboard's charts show their data;
its header names the model's calibration set once, its time axes tick on round UTC times, its
failures are listed with their reason, and nothing it loads answers 404.

Uses Debian's chromium (/usr/bin/chromium) through Playwright; no browser is downloaded.
Skipped with a reason where either is missing. Every request the page makes is routed: one to
anything but the test's server on 127.0.0.1 is aborted and fails the test.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from itertools import pairwise
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from service_support import AUTH, TOKEN, Clock, LiveServer, synthetic_result, tiny_model_file
from test_model import tiny_model
from vqscope.calibration import Calibration
from vqscope.service import ServiceConfig, create_app
from vqscope.service.alerts import AlertRule
from vqscope.calibration import calibration_set
from vqscope.service.dashboard import build_dashboard
from vqscope.service.store import JobStore, NewJob

# a fixed "now" that is on no round time: 2027-01-14 13:47:20 UTC
NOW = datetime(2027, 1, 14, 13, 47, 20, tzinfo=timezone.utc).timestamp()
SECRET_URL = "https://alice:s3cret@cdn.example.com/clips/v.mp4?X-Amz-Signature=deadbeef"


def watch(page, server_url: str) -> dict[str, list]:
    """Route every request of `page`: anything not for the test's server is aborted and noted;
    every response's status, console errors and page errors are recorded."""
    seen: dict[str, list] = {"external": [], "responses": [], "errors": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("response", lambda r: seen["responses"].append((r.status, r.url)))

    def only_ours(route):
        if not route.request.url.startswith(server_url + "/"):
            seen["external"].append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", only_ours)
    return seen

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


# -- the header, the time axis, the failures, no 404 ----------------------------------------------------
def fill(store: JobStore, clock: Clock) -> list[str]:
    """Done jobs over the last day and three failures (newest last); returns the failures' ids."""
    failed = []
    plan = [(20.0, "done", 30.0), (14.0, "done", 60.0), (9.5, "fail-damaged", None), (6.0, "done", 45.0),
            (3.0, "fail-url", None), (1.2, "done", 70.0), (0.4, "fail-timeout", None)]
    for hours_ago, what, score in plan:
        clock.now = NOW - hours_ago * 3600
        url = what == "fail-url"
        job = store.submit([NewJob("url" if url else "path", SECRET_URL if url else f"/media/{what}.mp4",
                                   SECRET_URL if url else f"{what}-{hours_ago}h.mp4", tags=("dash",))])[0]
        claimed = store.claim("test-worker", 30)
        assert claimed.id == job.id
        if score is not None:
            dims = {"blur": (score + 5, "fair"), "noise": (score - 5, "fair")}
            assert store.complete(claimed, synthetic_result(claimed.video, score, score, "fair", dims))
            continue
        kind, message = {
            "fail-damaged": ("corrupt_video", ("fail-damaged-9.5h.mp4: the video stream is damaged\n"
                                               "  (decoder: invalid NAL unit at 0x3f2)")),
            "fail-url": ("fetch_failed", f"{SECRET_URL}: HTTP 403 Forbidden"),
            "fail-timeout": ("timeout", "scoring took longer than its limit of 600 s"),
        }[what]
        assert store.fail(claimed, kind, message)
        failed.append(job.id)
    clock.now = NOW
    return failed


def test_the_calibration_set_is_named_with_its_size_once():
    assert calibration_set("vqscope synthetic fine corpus v7 (8904 videos)", 8904) == \
        "vqscope synthetic fine corpus v7 (8904 videos)"
    assert calibration_set("unit-test set", 50) == "unit-test set (50 videos)"
    assert calibration_set("set of 8,904 videos", 8904) == "set of 8,904 videos"
    assert calibration_set("KoNViD-1k", 1200) == "KoNViD-1k (1200 videos)"
    assert calibration_set("corpus (9000 videos)", 8904) == "corpus (9000 videos); 8904 used"
    assert calibration_set("corpus of 18904 videos", 8904) == "corpus of 18904 videos; 8904 used"
    assert calibration_set(None, None) is None


def test_dashboard_json_lists_failures_newest_first_with_their_redacted_reason(tmp_path):
    clock = Clock(NOW)
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    try:
        ids = fill(store, clock)
        model = {"id": "m@1", "calibrated": True, "benchmark": "set (50 videos)", "benchmark_size": 50}
        data = build_dashboard(store, 86400, model=model)
        assert data["summary"]["failed"] == 3 and data["model"]["calibration_set"] == "set (50 videos)"
        assert model == {"id": "m@1", "calibrated": True, "benchmark": "set (50 videos)", "benchmark_size": 50}
        assert [f["id"] for f in data["failed"]] == ids[::-1]  # most recent first
        newest, url, damaged = data["failed"]
        assert (newest["error"], newest["message"]) == ("timeout", "scoring took longer than its limit of 600 s")
        assert newest["finished_at"] == datetime.fromtimestamp(NOW - 0.4 * 3600, timezone.utc) \
            .isoformat(timespec="seconds").replace("+00:00", "Z")
        assert url["error"] == "fetch_failed"
        assert url["video"] == "https://redacted@cdn.example.com/clips/v.mp4?redacted"
        assert url["message"] == "https://redacted@cdn.example.com/clips/v.mp4?redacted: HTTP 403 Forbidden"
        assert damaged["message"] == ("fail-damaged-9.5h.mp4: the video stream is damaged "
                                      "(decoder: invalid NAL unit at 0x3f2)")  # one line
        assert set(newest) == {"id", "video", "finished_at", "tags", "error", "message"}
        assert [f["id"] for f in build_dashboard(store, 86400, failed_n=2)["failed"]] == ids[:0:-1]
        assert build_dashboard(store, 3600)["failed"] == [data["failed"][0]]  # the window's only
        assert build_dashboard(store, 86400, tag="other")["failed"] == []
    finally:
        store.close()


def round_ticks(page, chart: str) -> tuple[int, list[tuple[int, str]]]:
    step = int(page.get_attribute(chart, "data-tick-step"))
    ticks = page.eval_on_selector_all(f"{chart} text.tick",
                                      "els => els.map(e => [Number(e.dataset.ts), e.textContent])")
    assert len(ticks) >= 4, ticks
    # round UTC times: multiples of a step within a day; midnight for steps of days, Mondays for weeks
    assert all(ts % min(step, 86400) == 0 for ts, _ in ticks), ticks
    if step % (7 * 86400) == 0:
        assert {datetime.fromtimestamp(ts, timezone.utc).weekday() for ts, _ in ticks} == {0}
    assert [b - a for (a, _), (b, _) in pairwise(ticks)] == [step] * (len(ticks) - 1)
    # the labels (and the "UTC" before them) neither touch nor leave the chart
    boxes = sorted(page.eval_on_selector_all(f"{chart} text.tz, {chart} text.tick",
                                      "els => els.map(e => { const b = e.getBBox(); return [b.x, b.x + b.width]; })"))
    width = page.eval_on_selector(chart, "e => e.viewBox.baseVal.width")
    assert boxes[0][0] >= 0 and boxes[-1][1] <= width, boxes
    assert all(right + 4 <= left for (_, right), (left, _) in pairwise(boxes)), boxes  # a visible gap
    for ts, label in ticks:  # each label reads the UTC time (or date) of its tick
        t = datetime.fromtimestamp(ts, timezone.utc)
        expected = f"{t:%b} {t.day}" if step >= 86400 or (t.hour, t.minute) == (0, 0) else f"{t:%H:%M}"
        assert label == expected, (ts, label, expected)
    return step, ticks


def test_dashboard_header_axis_failures_and_no_404(browser, tmp_path):
    model = tiny_model()
    model.calibration = Calibration.fit(np.linspace(20, 80, 50), "synthetic test corpus (50 videos)", "f" * 64)
    config = ServiceConfig(data_dir=tmp_path / "data", model=str(model.save(tmp_path / "m.safetensors")),
                           token=TOKEN)
    clock = Clock(NOW)
    app = create_app(config, clock=clock, background=False)  # no workers: the jobs are written here
    ids = fill(app.state.service.store, clock)
    with LiveServer(app) as server:
        data = httpx.get(f"{server.url}/api/dashboard", params={"window": "24h"}).json()
        assert [f["id"] for f in data["failed"]] == ids[::-1]
        # a browser far from UTC: the axis must still tick on round UTC times, and say UTC
        page = browser.new_page(timezone_id="Asia/Kolkata", viewport={"width": 1280, "height": 1400})
        seen = watch(page, server.url)
        page.goto(f"{server.url}/dashboard?window=24h")
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)

        # the header: the model, and its calibration set with its size once
        header = page.inner_text("#model")
        assert header == "model tiny@1 · calibrated on synthetic test corpus (50 videos)"
        assert header.count("50 videos") == 1

        # 24 h: ticks every 2, 3 or 4 h on the hour, labelled in UTC, midnight by its date
        step, ticks = round_ticks(page, "#trend-chart")
        assert step in (2 * 3600, 3 * 3600, 4 * 3600)
        assert "Jan 14" in [label for _, label in ticks]
        assert all(re.fullmatch(r"\d\d:00|Jan 14", label) for _, label in ticks)
        assert page.text_content("#trend-chart text.tz") == "UTC"
        dim_step, _ = round_ticks(page, "#dimension-chart")  # the narrower chart: fewer, still round
        assert dim_step % 3600 == 0 and dim_step >= step

        # the failures: most recent first, each with its error kind and one-line, redacted reason
        rows = page.eval_on_selector_all("#failed tr.failed-row", "els => els.map(e => [e.dataset.job, "
                                         "e.querySelector('td.kind').textContent, "
                                         "e.querySelector('td.message').textContent])")
        assert [r[0] for r in rows] == ids[::-1]
        assert rows[0][1:] == ["timeout", "scoring took longer than its limit of 600 s"]
        assert rows[1][1:] == ["fetch_failed",
                               "https://redacted@cdn.example.com/clips/v.mp4?redacted: HTTP 403 Forbidden"]
        assert rows[2][1] == "corrupt_video" and "\n" not in rows[2][2]
        assert "s3cret" not in page.content() and "deadbeef" not in page.content()
        assert page.inner_text("#tile-failed .value") == "3"
        assert "3 failed jobs" in page.inner_text("#failed-hint")

        # the other windows: 1 h every 10 or 15 min, 7 d daily at midnight, 30 d every few days
        for n, (window, steps) in enumerate([("1h", (600, 900)), ("7d", (86400,)),
                                             ("30d", (2 * 86400, 3 * 86400, 7 * 86400))], start=2):
            page.select_option("#window", window)
            page.wait_for_selector(f"body[data-ready='{n}']", state="attached", timeout=20_000)
            step = round_ticks(page, "#trend-chart")[0]
            assert step in steps, window
            assert round_ticks(page, "#dimension-chart")[0] >= step, window  # narrower: fewer ticks, still round
        page.select_option("#window", "24h")
        page.wait_for_selector("body[data-ready='5']", state="attached", timeout=20_000)
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # nothing answered 404 (or any error), the icon included; nothing left 127.0.0.1
        assert page.locator("link[rel=icon]").count() == 1  # else the browser asks for /favicon.ico
        icon = page.get_attribute("link[rel=icon]", "href")
        assert (200, f"{server.url}{icon}") in seen["responses"]
        assert [s for s in seen["responses"] if s[0] >= 400] == []
        assert seen["errors"] == [] and seen["external"] == []
        for path in (icon, "/favicon.ico"):  # pages that name no icon (the JSON API) get one too
            r = httpx.get(f"{server.url}{path}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        page.close()
