"""`vqscope describe --llm`: key frames and findings to an OpenAI-compatible server, and its failures.

The server is a small fake started on 127.0.0.1:0 that checks the request's shape the way a
real chat completions endpoint would need it, and answers with a canned completion.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from fine_results import fine_model, fine_result
from vqscope.cli import main
from vqscope.errors import LLMError
from vqscope.llm import build_messages, describe_with_llm, findings, key_times

CANNED = "The picture is soft between 2 and 5 seconds from motion blur, and blocky throughout."


class FakeLLM(http.server.ThreadingHTTPServer):
    """Records requests; `mode` picks the answer: ok, error500, not_json, no_choices, slow."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.mode = "ok"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeLLM

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path, dict(self.headers), None))
        if self.path == "/v1/models":
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-vl", "object": "model"}]}).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, dict(self.headers), body))
        mode = self.server.mode
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        if mode == "error500":
            return self._send(500, b'{"error": {"message": "model overloaded"}}')
        if mode == "not_json":
            return self._send(200, b"<html>proxy error</html>", "text/html")
        if mode == "no_choices":
            return self._send(200, b'{"choices": []}')
        if mode == "slow":
            time.sleep(2.0)
        problem = _check_request(body)
        if problem:
            return self._send(400, json.dumps({"error": {"message": problem}}).encode())
        self._send(200, json.dumps({
            "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": CANNED}}],
        }).encode())


def _check_request(body: dict) -> str | None:
    """What a chat completions endpoint with vision needs: a model, messages, image parts that decode."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model missing"
    messages = body.get("messages")
    if not isinstance(messages, list) or messages[0].get("role") != "system" or messages[-1].get("role") != "user":
        return "messages must be system then user"
    parts = messages[-1]["content"]
    if not any(p.get("type") == "text" and "vqscope findings" in p.get("text", "") for p in parts):
        return "findings missing"
    for p in parts:
        if p.get("type") == "image_url":
            url = p["image_url"]["url"]
            if not url.startswith("data:image/jpeg;base64,"):
                return "image is not a JPEG data URL"
            if not base64.b64decode(url.split(",", 1)[1]).startswith(b"\xff\xd8"):
                return "image data is not JPEG"
        elif p.get("type") != "text":
            return f"unknown part type {p.get('type')}"
    return None


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fine(monkeypatch):
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    return model


@pytest.fixture
def video(video_factory):
    return video_factory("six_s.mp4", n=144, fps=24)


def _posts(server: FakeLLM) -> list[dict]:
    return [body for method, path, _, body in server.requests if method == "POST"]


def test_describe_llm_sends_frames_and_findings_and_prints_the_answer(capsys, fine, llm, video):
    assert main(["describe", video, "--llm", llm.url, "--no-progress"]) == 0
    assert capsys.readouterr().out == CANNED + "\n"
    (body,) = _posts(llm)
    assert body["model"] == "fake-vl"  # the server's only model, found through /v1/models
    parts = body["messages"][1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 4
    sent = json.loads(parts[0]["text"].split("\n", 1)[1].split("\n\n")[0])
    blur = next(d for d in sent["distortions"] if d["type"] == "motion_blur")
    assert blur["likely"] and blur["time_ranges_s"] == [[2.0, 5.0]]
    assert sent["dimensions"]["blur"]["grade"] == "fair"
    assert [p["text"] for p in parts if p["type"] == "text"][1].startswith("Frame at ")


def test_named_model_json_output_and_api_key(capsys, fine, llm, video, monkeypatch):
    monkeypatch.setenv("VQSCOPE_LLM_API_KEY", "sk-test")
    assert main(["describe", video, "--llm", llm.url + "/v1/", "--llm-model", "big-vl", "--frames", "2",
                 "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["llm"] == {"url": llm.url + "/v1/", "model": "big-vl", "text": CANNED}
    assert data["dimensions"]["blur"].startswith("Blur is fair")
    assert [(m, p) for m, p, _, _ in llm.requests] == [("POST", "/v1/chat/completions")]  # no model lookup
    headers = llm.requests[0][2]
    assert headers.get("Authorization") == "Bearer sk-test"
    assert sum(p["type"] == "image_url" for p in llm.requests[0][3]["messages"][1]["content"]) == 2


@pytest.mark.parametrize("mode, message", [
    ("error500", "answered HTTP 500: {\"error\": {\"message\": \"model overloaded\"}}"),
    ("not_json", "answered with something that is not JSON"),
    ("no_choices", "unexpected answer (no choices[0].message.content)"),
])
def test_server_failures_are_one_line_typed_errors(capsys, fine, llm, video, mode, message):
    llm.mode = mode
    assert main(["describe", video, "--llm", llm.url, "--llm-model", "m", "--no-progress"]) == LLMError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error: ") and message in err and err.count("\n") == 1


def test_timeout_and_unreachable_server(llm, video):
    llm.mode = "slow"
    with pytest.raises(LLMError, match=r"no answer within 0.3 s"):
        describe_with_llm(fine_result(), video, llm.url, "m", frames=1, timeout=0.3)
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(LLMError, match="cannot reach the language model server"):
        describe_with_llm(fine_result(), video, f"http://127.0.0.1:{port}", "m", frames=0, timeout=2)


def test_bad_url_is_refused_before_scoring(capsys, fine, video, monkeypatch):
    monkeypatch.setattr(fine, "score", lambda *a, **k: pytest.fail("scored anyway"))
    assert main(["describe", video, "--llm", "localhost:8000"]) == 2
    assert "give the server's http:// or https:// URL" in capsys.readouterr().err


def test_key_times_spread_over_the_video_and_include_the_worst_clip():
    r = fine_result(clips=12)
    r.clips[6].score = 1.0
    times = key_times(r, 4)
    assert len(times) == 4 and times[0] == 0.5 and times[-1] == 11.5
    assert 6.5 in times
    assert key_times(fine_result(clips=3), 4) == [0.5, 1.5, 2.5]
    assert key_times(r, 0) == []


def test_findings_and_messages_carry_what_vqscope_measured():
    r = fine_result()
    f = findings(r)
    assert f["score"] == round(r.score, 1) and f["distortions"][0]["type"] == "motion_blur"
    assert "time_ranges_s" not in next(d for d in f["distortions"] if d["type"] == "noise")
    messages = build_messages(r, [(1.0, "data:image/jpeg;base64,AAAA")])
    assert messages[0]["role"] == "system" and "Do not invent distortions" in messages[0]["content"]
    assert messages[1]["content"][-1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
