"""The rating page in headless Chromium: a rater goes through a study with the keyboard and
every answer lands in the store, as typed, in order.

Uses Debian's chromium (/usr/bin/chromium) through Playwright, as the dashboard test does; no
browser is downloaded. Skipped with a reason where either is missing.

The page must not take an answer before the video played through. To test that without a
race (a 1 s video could end before a key press lands on a busy machine), the test holds the
video's bytes back at the network: until it lets them through, the video cannot have played,
so any key that got through would be a bug, not bad luck.
"""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import select

from service_support import AUTH, TOKEN, LiveServer, tiny_model_file
from vqscope.service import ServiceConfig, create_app
from vqscope.studies.store import RATINGS

FPS = 24
WAIT_MS = 20_000




@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One live service for the module's studies (each test makes its own study)."""
    folder = tmp_path_factory.mktemp("rate-service")
    app = create_app(ServiceConfig(data_dir=folder / "data", model=tiny_model_file(folder), token=TOKEN,
                                   path_roots=None))  # studies of files wherever video_factory made them
    with LiveServer(app) as server:
        yield server.url, app.state.service.studies


def videos(video_factory, n: int, prefix: str) -> list[str]:
    """`n` distinct one-second videos (short, so each plays to its end quickly)."""
    return [video_factory(f"{prefix}{i}.mp4", n=FPS, seed=100 + i, speed=1 + i % 4) for i in range(n)]


def make_study(url: str, method: str, paths: list[str], anchors: tuple[tuple[str, str], ...] = (), **options) -> str:
    body = {"name": f"{method} test", "method": method, "paths": paths, "repeats": 0,
            "anchors": [{"path": p, "label": label} for p, label in anchors], **options}
    r = httpx.post(f"{url}/api/studies", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def invite(url: str, study_id: str) -> tuple[str, str]:
    r = httpx.post(f"{url}/api/studies/{study_id}/raters", json={"names": ["keyboard"]}, headers=AUTH, timeout=30)
    assert r.status_code == 201, r.text
    rater = r.json()["raters"][0]
    assert rater["link"].startswith(url + "/rate/")
    return rater["link"], rater["id"]


class Guard:
    """Watches a page: every request must stay on 127.0.0.1, no script or console errors;
    counts the answers sent; holds video bytes back while `hold` is set."""

    def __init__(self, page, hold: bool = False):
        self.page = page
        self.external: list[str] = []
        self.errors: list[str] = []
        self.posts: list[str] = []
        self.held: list = []
        self.hold = hold
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.posts.append(r.url) if r.method == "POST" else None)
        page.route("**/*", self._route)

    def _route(self, route):
        url = urlparse(route.request.url)
        if url.hostname != "127.0.0.1":
            self.external.append(route.request.url)
            return route.abort()
        if self.hold and "/media/" in url.path:
            self.held.append(route)  # answered by release()
            return None
        return route.continue_()

    def release(self, item: str | None = None) -> None:
        """Let the held video bytes through (of one item only, with `item`)."""
        if item is None:
            self.hold = False
        keep = []
        for route in self.held:
            if item is None or route.request.url.endswith(f"/media/{item}"):
                route.continue_()
            else:
                keep.append(route)
        self.held = keep

    def check(self, allowed_errors: tuple[str, ...] = ()) -> None:
        assert self.external == []
        unexpected = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        assert unexpected == []


def body(page) -> dict[str, str]:
    return page.evaluate("() => Object.assign({}, document.body.dataset)")


def wait_body(page, **attrs: str) -> None:
    selector = "body" + "".join(f"[data-{k}='{v}']" for k, v in attrs.items())
    page.wait_for_selector(selector, state="attached", timeout=WAIT_MS)


def shown_items(page) -> list[str]:
    return page.eval_on_selector_all("#videos video", "els => els.map(e => e.dataset.item)")


def assert_keys_do_nothing(page, guard: Guard, keys: list[str]) -> None:
    """Keys pressed while the video has not played through: no answer leaves the page."""
    before = body(page)
    assert before["locked"] == "1" and before["step"] == "answer"
    sent = len(guard.posts)
    for key in keys:
        page.keyboard.press(key)
    after = body(page)
    assert len(guard.posts) == sent
    assert (after["position"], after["saved"], after["step"]) == (before["position"], before["saved"], "answer")
    assert page.eval_on_selector_all(".answer button, .answer input", "els => els.every(e => e.matches(':disabled'))")


def test_rate_five_videos_with_the_keyboard(browser, service, video_factory):
    url, studies = service
    paths = videos(video_factory, 6, "acr")
    study_id = make_study(url, "acr", paths[:5], anchors=((paths[5], "poor"),))
    link, rater_id = invite(url, study_id)
    typed = [4, 1, 5, 2, 3]

    page = browser.new_page(viewport={"width": 360, "height": 740})  # a phone's width
    guard = Guard(page, hold=True)
    page.goto(link)

    # training: the anchor, its label as feedback, then on
    wait_body(page, state="task", phase="training", position="0")
    assert "Practice" in page.inner_text("#task-heading")
    assert page.inner_text("#progress-text") == "Practice 1 of 1"
    assert_keys_do_nothing(page, guard, ["1", "2", "3", "4", "5"])
    guard.release()
    wait_body(page, locked="0")
    page.keyboard.press("2")
    wait_body(page, step="feedback")
    assert "This example was labelled: poor" in page.inner_text("#feedback-text")
    guard.hold = True
    page.keyboard.press("Enter")

    seen: list[str] = []
    saved = 1
    for n, score in enumerate(typed, start=1):
        wait_body(page, state="task", phase="main", position=str(n), step="answer")
        assert page.inner_text("#progress-text") == f"{n} of 5"
        assert_keys_do_nothing(page, guard, [str(score), "3", "5"])
        guard.release()
        wait_body(page, locked="0")
        seen += shown_items(page)
        guard.hold = True
        page.keyboard.press(str(score))
        saved += 1
        wait_body(page, saved=str(saved))
        if n == 2:  # reload mid-way (as after closing the browser): the study resumes at task 3
            guard.held = []  # the old page's video requests go with it
            page.reload()
            saved = 0
            wait_body(page, state="task", position="3")
            assert page.inner_text("#progress-text") == "3 of 5"
    wait_body(page, state="done")
    assert "Thank you" in page.inner_text("#done-heading")
    assert page.inner_text("#progress-text") == "5 of 5 rated"

    ratings, comparisons = studies.collected(study_id)
    assert comparisons == []
    assert [(r.rater, r.item, r.score, r.kind) for r in ratings] == [(rater_id, i, s, "main") for i, s in
                                                                       zip(seen, typed)]
    assert len(set(seen)) == 5
    rater = studies.raters(study_id)[0]
    assert (rater.done, rater.total, rater.training_done) == (6, 6, 1)
    with studies.engine.connect() as conn:  # each answer came after its (1 s) video had ended
        watched = conn.execute(select(RATINGS.c.watched_s).where(RATINGS.c.rater_seq == rater.seq)).scalars().all()
    assert len(watched) == 6 and all(w is not None and w >= 0.8 for w in watched), watched
    guard.check()
    page.close()


def test_finevd_form_filled_and_submitted(browser, service, video_factory):
    url, studies = service
    study_id = make_study(url, "finevd", videos(video_factory, 1, "fine"))
    link, _ = invite(url, study_id)
    page = browser.new_page(viewport={"width": 900, "height": 900})
    guard = Guard(page)
    page.goto(link)
    wait_body(page, state="task", form="finevd")
    wait_body(page, locked="0")
    assert page.is_disabled("#finevd-submit")
    for key in "43521":  # color, noise, artifact, blur, temporal: each key fills the next empty row
        page.keyboard.press(key)
    assert page.is_disabled("#finevd-submit")  # overall is still empty
    page.keyboard.press("4")  # overall
    page.check("#finevd-tag-list input[data-tag=noise]")
    page.check("#finevd-tag-list input[data-tag=compression]")
    page.focus("#finevd-rows input[data-dimension=blur][data-score='2']")
    page.keyboard.press("3")  # a key sets the focused row: blur 2 -> 3
    assert page.is_enabled("#finevd-submit")
    page.click("#finevd-submit")
    wait_body(page, state="done", saved="1")

    ratings, _ = studies.collected(study_id)
    assert len(ratings) == 1
    r = ratings[0]
    assert r.score == 4
    assert dict(r.dimensions) == {"color": 4, "noise": 3, "artifact": 5, "blur": 3, "temporal": 1}
    assert sorted(r.tags) == ["compression", "noise"]
    guard.check()
    page.close()


def test_pairwise_answered_with_the_arrow_keys(browser, service, video_factory):
    url, studies = service
    study_id = make_study(url, "pairwise", videos(video_factory, 3, "pair"), pairs=2)
    link, _ = invite(url, study_id)
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    guard = Guard(page, hold=True)
    page.goto(link)
    shown = []
    for n, key in enumerate(["ArrowLeft", "ArrowRight"], start=1):
        wait_body(page, state="task", form="pairwise", step="answer")
        left, right = shown_items(page)
        shown.append((left, right))
        # the left video plays to its end; the right one has not started: still locked
        guard.release(left)
        page.wait_for_selector(f"#videos figure[data-item='{left}'][data-ended='1']", state="attached", timeout=WAIT_MS)
        assert_keys_do_nothing(page, guard, ["ArrowLeft", "ArrowRight", "1", "2"])
        assert page.inner_text("#lock-hint").startswith("The buttons unlock when both videos")
        guard.release()
        wait_body(page, locked="0")
        guard.hold = True
        page.keyboard.press(key)
        wait_body(page, saved=str(n))
    wait_body(page, state="done")

    _, comparisons = studies.collected(study_id)
    assert len(comparisons) == 2
    assert comparisons[0].preferred == shown[0][0]  # ArrowLeft: the left (first) video
    assert comparisons[1].preferred == shown[1][1]  # ArrowRight: the right (second) video
    for c, (left, right) in zip(comparisons, shown):
        assert {c.first, c.second} == {left, right}
    guard.check()
    page.close()


def test_lost_reply_and_network_error_keep_the_answer(browser, service, video_factory):
    """A save whose reply is lost is retried and its 409 counts as saved; a save that never
    reached the server is retried with the same answer. (full_view off: no waiting.)"""
    url, studies = service
    study_id = make_study(url, "acr", videos(video_factory, 2, "net"), full_view=False)
    link, _ = invite(url, study_id)
    page = browser.new_page(viewport={"width": 800, "height": 800})
    guard = Guard(page)
    mode = {"next": None}

    def flaky(route):
        what, mode["next"] = mode["next"], None
        if what == "lose_reply":  # the server stores it, the page never hears back
            route.fetch()
            return route.abort()
        if what == "fail":  # the request never reaches the server
            return route.abort()
        return route.fallback()

    page.route("**/tasks/*", flaky)  # routes added later are asked first
    page.goto(link)

    wait_body(page, state="task", position="0", step="answer", locked="0")
    mode["next"] = "lose_reply"
    page.keyboard.press("5")
    wait_body(page, step="retry")
    assert page.is_visible("#retry") and "kept" in page.inner_text("#problem-text")
    assert [r.score for r in studies.collected(study_id)[0]] == [5]  # stored despite the lost reply
    page.keyboard.press("Enter")  # the Retry button has the focus; the server answers 409
    wait_body(page, state="task", position="1", step="answer", saved="1")

    mode["next"] = "fail"
    page.keyboard.press("2")
    wait_body(page, step="retry")
    assert len(studies.collected(study_id)[0]) == 1
    assert page.get_attribute("#acr-buttons [data-score='2']", "data-chosen") == "1"
    page.click("#retry")
    wait_body(page, state="done", saved="2")

    assert [r.score for r in studies.collected(study_id)[0]] == [5, 2]
    guard.check(allowed_errors=("Failed to load resource",))  # the aborted request and the 409
    page.close()


def test_a_study_closed_while_rating_says_so(browser, service, video_factory):
    url, studies = service
    study_id = make_study(url, "acr", videos(video_factory, 2, "closed"), full_view=False)
    link, _ = invite(url, study_id)
    page = browser.new_page(viewport={"width": 360, "height": 700})
    guard = Guard(page)
    page.goto(link)
    wait_body(page, state="task", position="0", step="answer")
    assert httpx.post(f"{url}/api/studies/{study_id}/close", headers=AUTH, timeout=10).status_code == 200
    page.keyboard.press("4")  # refused with 409 study_closed: the page asks where the rater stands
    wait_body(page, state="done", closed="1")
    assert "closed" in page.inner_text("#done-heading")
    assert body(page)["saved"] == "0" and studies.collected(study_id) == ([], [])
    guard.check(allowed_errors=("Failed to load resource",))  # the 409
    page.close()
