"""Helpers shared by the service tests: a tiny model file, a live server in a thread, a
throwaway PostgreSQL server, and a webhook receiver. No shipped model is used anywhere."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from glob import glob
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx is what we install
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

from test_model import tiny_model

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def tiny_model_file(folder: Path, seed: int = 0) -> str:
    return str(tiny_model(seed=seed).save(Path(folder) / f"tiny-{seed}.safetensors"))


class Clock:
    """A clock the test moves by hand (`clock.now += 60`), for stores and monitors."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def synthetic_result(video: str, score: float, scaled: float, grade: str, dims: dict[str, tuple[float, str]] | None = None,
                     clips: int = 3) -> dict[str, Any]:
    """A result-contract dict, for filling the store without scoring anything."""
    dims = {"overall": (score, grade), **(dims or {})}
    return {
        "video": video, "model": "tiny@1", "duration_s": float(clips), "width": 128, "height": 72, "fps": 24.0,
        "score": score, "scaled_score": scaled, "grade": grade,
        "dimensions": {k: {"score": s, "grade": g} for k, (s, g) in dims.items()},
        "distortions": {}, "description": "synthetic",
        "clips": [{"start_s": float(i), "end_s": float(i + 1), "score": score + i, "key_time_s": float(i),
                   "dimensions": {"overall": {"score": score + i, "grade": grade}}} for i in range(clips)],
    }


class LiveServer:
    """An ASGI app served by uvicorn in a background thread on a free port."""

    def __init__(self, app: Any):
        import uvicorn

        self.config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        wait_until(lambda: self.server.started, 30, what="uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


class WebhookReceiver:
    """Collects JSON POSTs on a local port (a stand-in for Slack, PagerDuty, ...)."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def file_server(folder: str) -> Iterator[str]:
    """Serve a folder over HTTP (for URL submissions)."""
    import functools

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- a real `vqscope serve` process ----------------------------------------------------------------
def start_server(data_dir: Path, model: str, port: int, *extra: str) -> tuple[subprocess.Popen, str]:
    """`python -m vqscope.cli serve` on a port of 127.0.0.1 (extra flags appended); returns the
    process (in its own session, so a kill reaches it alone) once /healthz answers."""
    cmd = [sys.executable, "-m", "vqscope.cli", "serve", "--data-dir", str(data_dir), "--model", model,
           "--token", TOKEN, "--port", str(port), "--torch-threads", "1", "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        import httpx

        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 90, 0.1, "the server to start")
    return proc, base


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


# -- PostgreSQL ---------------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free port; yields its URL.

    Skips the calling test with a reason where the server binaries, the psycopg driver, or (as
    root, which PostgreSQL refuses to run as) a `postgres` user to run it as are missing.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if not runuser:
            pytest.skip("running as root and runuser is missing")
        prefix = [runuser, "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="vqscope-pg-")
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = os.path.join(root, "data"), free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        subprocess.run(prefix + [initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, env=env, timeout=120)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(prefix + [pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-o", options, "-w", "-t", "60",
                                 "start"], check=True, capture_output=True, env=env, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = Path(root, "log").read_text(errors="replace")[-2000:] if Path(root, "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        stderr = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not start a PostgreSQL server: {stderr.decode(errors='replace')[-500:]} {log}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, env=env,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server (one per test keeps tests independent)."""
    import psycopg

    name = f"t_{os.getpid()}_{time.monotonic_ns()}"
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
