#!/usr/bin/env python3
"""Load and attacks on `vqscope serve`, on 127.0.0.1 only: the figures of issue 18, before and after.

    python bench/service_load.py [--json FILE] [--only load,a,b,c,d,e,f,g,h,i]
                                 [--src DIR] [--python EXE] [--model tiny|NAME|FILE]
                                 [--serve-args "--flag value ..."] [--url http://127.0.0.1:PORT --token T]

By default the bench starts every server it talks to itself: `python -m vqscope.cli serve` as a
subprocess in its own process group, on a free port of 127.0.0.1, with a data folder, a tiny
test model (weight-free features, random head) and a small video it makes in a temp folder
(`--model NAME` uses a shipped model instead). `--src DIR` puts that source tree first on the
servers' PYTHONPATH (and the bench's own, for the model and the video), so the same script
measures a checkout of an older commit: `--src /tmp/svc-before/src`. Flags only a newer
service knows go in `--serve-args`; the bench itself passes only flags every version has.

Every server it starts runs with a loopback-only guard (a `sitecustomize` on its PYTHONPATH,
inherited by any Python child process): name lookups other than `localhost` fail without a
DNS query, and connections to any address but loopback are refused before `connect`. So a
URL with credentials in it (which urllib passes to the resolver whole) cannot leak a query
off the machine; every listener the bench opens is on 127.0.0.1 or ::1.

What it measures (one line each; `--json FILE` writes all of it). Each result is a plain
observation, not a pass/fail: the same script runs against the old and the hardened service.
  load  GET /healthz, GET /api/jobs, POST /api/jobs (path jobs, with the token): requests per
        second, p50/p95 latency under `--clients` (8) threads, `--requests` each; server RSS
        before and after (VmRSS of the server process and of its whole process group)
  a     a `--big-mb` (100) MB JSON body without a token: time to the answer, peak server RSS
        while it is sent and parsed, /healthz latency meanwhile
  b     `--long-polls` (45) unauthenticated GET /api/jobs/{id}?wait=15 on a job kept queued
        behind a batch of `--queue-jobs` jobs: their statuses, and /healthz latency meanwhile
  c     a FIFO submitted as a path job: how long it holds a worker (up to `--attack-seconds`)
        and what /healthz says meanwhile; then the FIFO is opened for writing to free it
  d     a URL job to a bench listener on 127.0.0.1 that sends one byte every `--drip-seconds`:
        how long it holds a worker (up to `--attack-seconds`)
  e     URL jobs to http://127.0.0.1, http://localhost, http://[::1], http://2130706433 and a
        redirect to 127.0.0.1, each to a port the bench listens on: accepted? fetched?
  f     secrets in open reads: a URL with user:secret@ and ?sig=abc in GET /api/jobs, a
        server storage path in a failed upload's error, a webhook ?token=s3cr3t in
        GET /api/alert-rules
  g     storage: a server started on a 0-byte SQLite file, on random bytes, and on a copy of
        the load server's database with a few pages overwritten: exit code, message,
        /healthz, first API calls
  h     `serve --port 99999` and a port in use: exit code and message
  i     a NUL byte and an over-long name in a path, a 5 MB video name, clip_seconds 1e-9,
        a submit retried with the same Idempotency-Key: statuses, and one job or two

Bounded: every request has a timeout, every attack a time limit (`--attack-seconds`), and
every server and listener it starts is stopped and every temp folder removed on the way out,
errors and Ctrl-C included (the server's process group is killed). About 3 minutes on 2 cores
with the tiny model; the server peaks near 1.2 GB with the default 100 MB body (the issue's
400 MB, `--only a --big-mb 400`, took it to 3.7 GB before the fix).

A hardened service refuses loopback URLs and FIFOs at submission, so c, d and f then measure
the refusal. To see its job time limit and its redaction at work, let it fetch from the bench
and shorten the limit: `--only d,f --serve-args "--allow-fetch 127.0.0.1 --job-timeout 10"`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECTIONS = ("load", "a", "b", "c", "d", "e", "f", "g", "h", "i")
GUARD_ENV = "VQSCOPE_BENCH_LOOPBACK_ONLY"

# Installed as sitecustomize.py on the servers' PYTHONPATH: loopback-only networking.
LOOPBACK_GUARD = '''"""bench/service_load.py: the servers it starts may talk to loopback addresses only."""
import ipaddress
import os
import socket

if os.environ.get("@ENV@") == "1":
    _getaddrinfo = socket.getaddrinfo
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex

    def _is_loopback(ip):
        try:
            return ipaddress.ip_address(str(ip).split("%")[0]).is_loopback
        except ValueError:
            return False

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name is None:  # a listening socket
            return _getaddrinfo(host, port, family, type, proto, flags)
        if name.lower().rstrip(".") == "localhost":
            name = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        try:
            infos = _getaddrinfo(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: name lookups are off under the bench") from None
        if not all(_is_loopback(info[4][0]) for info in infos):
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: not a loopback address (bench guard)")
        return infos

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"bench guard: no connection to {address[0]} (loopback only)")

    def connect(self, address):
        _check(self, address)
        return _connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return _connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
'''.replace("@ENV@", GUARD_ENV)


# -- report -------------------------------------------------------------------------------------
@dataclass
class Report:
    """One printed line per measurement; the same measurements, as data, for --json."""

    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, section: str, name: str, text: str, **values: Any) -> None:
        print(f"[{section}] {name}: {text}", flush=True)
        self.data.setdefault(section, {})[name] = {"text": text, **values}


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of values, None for none."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def mb(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MB"


def counts(items: list[Any]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(items).items(), key=lambda kv: str(kv[0]))}


def one_line(text: str, limit: int = 240) -> str:
    """What a server said last, on one line: from its last `vqscope: ...` message (which may span
    lines), else its last line."""
    at = text.rfind("vqscope: ")
    if at >= 0:
        last = " ".join(text[at:].split())
    else:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 3] + "..."


# -- memory of a process (group) ----------------------------------------------------------------
def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def group_rss_kib(pgid: int) -> int | None:
    """Sum of VmRSS over the processes of a process group (a server with worker processes)."""
    total, found = 0, False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            rss = vm_rss_kib(int(entry))
            if rss is not None:
                total += rss
                found = True
    return total if found else None


class RssSampler(threading.Thread):
    """Peak RSS of a server (process and process group) while something runs, sampled at 20 Hz."""

    def __init__(self, pid: int | None, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop_event = threading.Event()
        self.peak_main: int | None = None
        self.peak_group: int | None = None

    def run(self) -> None:
        while self.pid and not self.stop_event.is_set():
            main, group = vm_rss_kib(self.pid), group_rss_kib(self.pid)
            self.peak_main = max(self.peak_main or 0, main or 0)
            self.peak_group = max(self.peak_group or 0, group or 0)
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


class HealthProbe(threading.Thread):
    """GET /healthz over and over while an attack runs: latency, status code, reported status."""

    def __init__(self, base: str, interval: float = 0.1, timeout: float = 60.0):
        super().__init__(daemon=True)
        self.base, self.interval, self.timeout = base, interval, timeout
        self.stop_event = threading.Event()
        self.latencies: list[float] = []
        self.statuses: list[str] = []
        self.last_body: Any = None

    def run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self.stop_event.is_set():
                started = time.perf_counter()
                try:
                    response = client.get(f"{self.base}/healthz")
                    status = str(response.status_code)
                    try:
                        self.last_body = response.json()
                    except ValueError:
                        self.last_body = response.text[:200]
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(status)
                self.stop_event.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.join(self.timeout + 5)
        return {"probes": len(self.latencies), "p50_s": pct(self.latencies, 50), "max_s": max(self.latencies, default=None),
                "statuses": counts(self.statuses)}


def probe_text(summary: dict[str, Any]) -> str:
    return (f"{summary['probes']} probes, p50 {ms(summary['p50_s'])}, max {ms(summary['max_s'])}, "
            f"statuses {summary['statuses']}")


# -- servers ------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    base: str
    port: int
    data_dir: Path | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def rss(self) -> tuple[int | None, int | None]:
        if not self.pid:
            return None, None
        return vm_rss_kib(self.pid), group_rss_kib(self.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)  # and any child left behind
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    """The temp folder, the model and video, and every server and listener started (for cleanup)."""

    def __init__(self, args: argparse.Namespace, tmp: Path, report: Report, stack: ExitStack):
        self.args, self.tmp, self.report, self.stack = args, tmp, report, stack
        self.media = tmp / "media"
        self.media.mkdir()
        self.guard_dir = tmp / "guard"
        self.guard_dir.mkdir()
        (self.guard_dir / "sitecustomize.py").write_text(LOOPBACK_GUARD, encoding="utf-8")
        self.src = Path(args.src).resolve()
        self.servers: list[Server] = []
        self.video = ""
        self.queue_video = ""
        self.model = ""
        self.load_db: Path | None = None  # the load server's database, for the storage checks

    # environment of every server: the code under test first, then the loopback guard
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = [str(self.src), str(self.guard_dir)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(path)
        env[GUARD_ENV] = "1"
        env.pop("VQSCOPE_TOKEN", None)
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        return env

    def serve_cmd(self, data_dir: Path, port: int | str, workers: int = 1, *, path_root: bool = True) -> list[str]:
        cmd = [self.args.python, "-m", "vqscope.cli", "serve", "--data-dir", str(data_dir), "--model", self.model,
               "--token", TOKEN, "--port", str(port), "--torch-threads", "1", "--log-level", "warning",
               "--workers", str(workers)]
        if path_root:
            cmd += ["--path-root", str(self.media)]
        return cmd + shlex.split(self.args.serve_args)

    def launch(self, name: str, data_dir: Path, port: int | str, workers: int = 1) -> Server:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(self.serve_cmd(data_dir, port, workers), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env(), cwd=str(self.tmp),
                                    start_new_session=True)
        server = Server(name, f"http://127.0.0.1:{port}", int(port) if str(port).isdigit() else 0, data_dir, proc,
                        log_path)
        self.servers.append(server)
        return server

    def wait_up(self, server: Server, timeout: float = 90.0) -> httpx.Response | None:
        """The first /healthz answer (any status), or None if the process exited or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.proc is not None and server.proc.poll() is not None:
                return None
            try:
                return httpx.get(f"{server.base}/healthz", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.1)
        return None

    def start(self, name: str, workers: int = 1) -> Server:
        """A server for load or attacks (or the one at --url); raises if it does not come up."""
        if self.args.url:
            return Server(name, self.args.url.rstrip("/"), 0)
        data_dir = self.tmp / f"data-{name}"
        started = time.perf_counter()
        server = self.launch(name, data_dir, free_port(), workers)
        response = self.wait_up(server)
        if response is None or response.status_code != 200:
            raise RuntimeError(f"server {name} did not start: {one_line(server.log_text(), 400)}")
        up = time.perf_counter() - started
        idle = []
        with httpx.Client(timeout=10) as client:
            for _ in range(20):
                t = time.perf_counter()
                client.get(f"{server.base}/healthz")
                idle.append(time.perf_counter() - t)
        main, group = server.rss()
        self.report.add(name, "server up", f"{up:.1f} s, RSS {mb(main)} (process group {mb(group)}), idle /healthz "
                        f"p50 {ms(pct(idle, 50))}", start_s=up, rss_kib=main, group_rss_kib=group,
                        idle_healthz_p50_s=pct(idle, 50))
        return server

    def listener(self, family: int = socket.AF_INET) -> Listener:
        listener = Listener(family)
        self.stack.callback(listener.close)
        return listener

    def cleanup(self) -> None:
        for server in self.servers:
            server.stop(grace=10)


# -- bench listeners (loopback only) --------------------------------------------------------------
class Listener:
    """An HTTP listener on 127.0.0.1 or ::1 that records every path asked for (404 to all,
    a redirect for paths ending in -redirect)."""

    def __init__(self, family: int = socket.AF_INET):
        seen: list[str] = []
        self.seen = seen
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                if self.path.split("?")[0].endswith("-redirect"):
                    self.send_response(302)
                    target = f"{self.path.split('?')[0]}-target"  # on this listener, by address
                    self.send_header("Location", listener.url(target).replace("[::1]", "127.0.0.1"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"not here"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                seen.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server6(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.httpd = Server6((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def reached(self, path: str) -> bool:
        return any(p.split("?")[0] == path for p in self.seen)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DripServer:
    """Answers 200 with a large Content-Length, then sends one byte every `every` seconds."""

    def __init__(self, every: float):
        self.every = every
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stop_event = threading.Event()
        self.connections = 0
        self.bytes_sent = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n")
            while not self.stop_event.wait(self.every):
                conn.sendall(b"\0")
                self.bytes_sent += 1
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop_event.set()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.sock.close()
        self._thread.join(2)


# -- helpers ------------------------------------------------------------------------------------
def make_inputs(bench: Bench) -> None:
    """The tiny model (unless --model names one) and a 2 s 128x72 video, with the code under test."""
    sys.path.insert(0, str(bench.src))
    import numpy as np

    from vqscope.data.encode import write_video

    def panning(n: int, height: int = 72, width: int = 128, speed: int = 3) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:height, 0:width + speed * n + 8]
        base = np.stack([128 + 90 * np.sin(xx / 9.0) * np.cos(yy / 13.0), 128 + 70 * np.cos(xx / 17.0 + yy / 11.0),
                         128 + 60 * np.sin((xx + yy) / 7.0)], axis=-1) + rng.normal(0, 12, size=(*xx.shape, 3))
        base = np.clip(base, 0, 255).astype(np.uint8)
        return [np.ascontiguousarray(base[:, i * speed: i * speed + width]) for i in range(n)]

    bench.video = write_video(bench.media / "clip.mp4", panning(48), 24)  # 2 s: the load test's jobs
    bench.queue_video = write_video(bench.media / "queue.mp4", panning(720, speed=1), 24)  # 30 s: the queue's
    if bench.args.model != "tiny":
        bench.model = bench.args.model
        return
    import torch

    from vqscope.calibration import Calibration
    from vqscope.features import FeatureConfig
    from vqscope.heads import HeadConfig, PredictionNetwork
    from vqscope.model import Model, ModelInfo

    torch.manual_seed(0)
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(16,)))
    calibration = Calibration.fit(np.linspace(20, 80, 50), "bench set", "f" * 64)
    info = ModelInfo("tiny", 1, "bench model", training={"data": "none"}, card={"summary": "bench"})
    bench.model = str(Model(info, features, network, calibration).save(bench.tmp / "tiny.safetensors"))


def timed_requests(base: str, n: int, clients: int, call: Callable[[httpx.Client], httpx.Response]) -> dict[str, Any]:
    """n calls spread over `clients` threads, each with its own connection: rate and latency."""
    local = threading.local()
    made: list[httpx.Client] = []
    lock = threading.Lock()

    def one(_: int) -> tuple[float, str]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=60)
            with lock:
                made.append(client)
        started = time.perf_counter()
        try:
            status = str(call(client).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return time.perf_counter() - started, status

    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(min(n, 2 * clients))))  # warm-up: connections, first imports
            started = time.perf_counter()
            results = list(pool.map(one, range(n)))
            wall = time.perf_counter() - started
    finally:
        for client in made:
            client.close()
    latencies = [lat for lat, _ in results]
    return {"requests": n, "clients": clients, "wall_s": wall, "rps": n / wall if wall else None,
            "p50_s": pct(latencies, 50), "p95_s": pct(latencies, 95), "max_s": max(latencies),
            "statuses": counts([s for _, s in results])}


def job_state(base: str, job_id: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{base}/api/jobs/{job_id}", headers=AUTH, timeout=30)
        return response.json() if response.status_code == 200 else {"state": f"HTTP {response.status_code}"}
    except (httpx.HTTPError, ValueError) as exc:
        return {"state": type(exc).__name__}


def wait_finished(base: str, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = job_state(base, job_id)
        if job.get("state") in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def submit(base: str, body: dict[str, Any], headers: dict[str, str] | None = None,
           timeout: float = 60) -> tuple[int | str, dict[str, Any]]:
    try:
        response = httpx.post(f"{base}/api/jobs", json=body, headers={**AUTH, **(headers or {})}, timeout=timeout)
    except httpx.HTTPError as exc:
        return type(exc).__name__, {}
    try:
        payload = response.json()
    except ValueError:
        payload = {"text": response.text[:200]}
    return response.status_code, payload if isinstance(payload, dict) else {"body": payload}


def refusal(payload: dict[str, Any]) -> str:
    """The error kind and message of a refused request, short."""
    if not payload.get("error"):
        return ""
    message = str(payload.get("message", ""))
    return f" ({payload['error']}: {message[:120]}{'...' if len(message) > 120 else ''})"


def job_error(job: dict[str, Any]) -> str:
    error = job.get("error") or {}
    return f"{error.get('kind')}: {str(error.get('message'))[:160]}" if error else ""


def hold_worker(base: str, job_id: str, bound: float) -> dict[str, Any]:
    """Poll a job and /healthz once a second for `bound` seconds: how long it runs, what health says."""
    started = time.monotonic()
    running_since: float | None = None
    finished_at: float | None = None
    health: list[str] = []
    body: Any = None
    job: dict[str, Any] = {}
    while time.monotonic() - started < bound:
        job = job_state(base, job_id)
        now = time.monotonic()
        if job.get("state") == "running" and running_since is None:
            running_since = now
        if job.get("state") in ("done", "failed"):
            finished_at = now
            break
        try:
            response = httpx.get(f"{base}/healthz", timeout=10)
            body = response.json()
            health.append(f"{response.status_code}/{body.get('status')}")
        except (httpx.HTTPError, ValueError) as exc:
            health.append(type(exc).__name__)
        time.sleep(max(0.0, min(1.0, bound - (time.monotonic() - started))))
    end = finished_at or time.monotonic()
    return {"state": job.get("state"), "attempts": job.get("attempts"), "error": job_error(job),
            "held_s": (end - running_since) if running_since else 0.0, "ended_by_itself": finished_at is not None,
            "healthz": counts(health), "healthz_last": body}


# -- load -----------------------------------------------------------------------------------------
def run_load(bench: Bench) -> None:
    args, report = bench.args, bench.report
    server = bench.start("load", workers=args.workers)
    try:
        before = server.rss()
        job = {"path": bench.video, "max_clips": 1, "tags": ["bench-load"]}
        plan = [
            ("GET /healthz", args.requests, lambda c: c.get("/healthz")),
            ("GET /api/jobs", args.requests, lambda c: c.get("/api/jobs", headers=AUTH)),
            ("POST /api/jobs", args.submit_requests, lambda c: c.post("/api/jobs", json=job, headers=AUTH)),
            ("GET /api/jobs (after submits)", args.requests, lambda c: c.get("/api/jobs", headers=AUTH)),
        ]
        for name, n, call in plan:
            r = timed_requests(server.base, n, args.clients, call)
            report.add("load", name, f"{r['requests']} requests, {r['clients']} clients: {r['rps']:.0f} req/s, "
                       f"p50 {ms(r['p50_s'])}, p95 {ms(r['p95_s'])}, max {ms(r['max_s'])}, statuses {r['statuses']}",
                       **r)
        after = server.rss()
        report.add("load", "server RSS", f"before {mb(before[0])}, after {mb(after[0])} (process group "
                   f"{mb(before[1])} -> {mb(after[1])})", before_kib=before[0], after_kib=after[0],
                   group_before_kib=before[1], group_after_kib=after[1])
    finally:
        if server.proc is not None:
            server.stop()
            db = server.data_dir / "vqscope.db" if server.data_dir else None
            if db and db.exists():
                bench.load_db = db


# -- a: a big body without a token ----------------------------------------------------------------
def big_json_body(size: int, shape: str) -> tuple[int, Iterator[bytes]]:
    """A JSON job request of exactly `size` bytes: many short tags ("list") or one long name ("string")."""
    if shape == "string":
        head, tail = b'{"path": "/bench/none.mp4", "video": "', b'"}'
        filler = b"v" * (1 << 20)
        n = size - len(head) - len(tail)

        def chunks() -> Iterator[bytes]:
            yield head
            left = n
            while left > 0:
                yield filler[: min(left, len(filler))]
                left -= min(left, len(filler))
            yield tail

        return size, chunks()
    head, item, last_open, tail = b'{"path": "/bench/none.mp4", "tags": [', b'"abcdefgh",', b'"', b'"]}'
    room = size - len(head) - len(last_open) - len(tail)
    count = max(0, room // len(item))
    pad = room - count * len(item)
    block = item * ((1 << 20) // len(item))

    def chunks() -> Iterator[bytes]:
        yield head
        left = count
        per_block = len(block) // len(item)
        while left > 0:
            take = min(left, per_block)
            yield block[: take * len(item)]
            left -= take
        yield last_open + b"z" * pad + tail

    return size, chunks()


def run_big_body(bench: Bench, server: Server) -> None:
    args = bench.args
    size, chunks = big_json_body(int(args.big_mb * 1024 * 1024), args.big_shape)
    rss_before = server.rss()
    sampler = RssSampler(server.pid)
    probe = HealthProbe(server.base, interval=0.1, timeout=60)
    sent = {"bytes": 0, "done_s": None, "error": ""}
    sock = socket.create_connection(("127.0.0.1", server.port or int(server.base.rsplit(":", 1)[1])), timeout=30)
    t0 = time.perf_counter()

    def send() -> None:
        try:
            sock.sendall((f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode())
            for chunk in chunks:
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
            sent["done_s"] = time.perf_counter() - t0
        except OSError as exc:
            sent["error"] = type(exc).__name__

    sampler.start()
    probe.start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    status, answered_s, answer = "no answer", None, b""
    deadline = time.monotonic() + max(60.0, 2 * args.attack_seconds)
    try:
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                status = type(exc).__name__
                break
            if not chunk:
                break
            if answered_s is None:
                answered_s = time.perf_counter() - t0
            answer += chunk
        if answer:
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 2)[1]
        bytes_at_answer = sent["bytes"]
    finally:
        sock.close()
        sender.join(10)
    health = probe.stop()
    time.sleep(2.0)  # what the server keeps once the request is over
    sampler.stop()
    rss_after = server.rss()
    bench.report.add(
        "a", f"{args.big_mb:g} MB JSON body ({args.big_shape}), no token",
        f"status {status} after {ms(answered_s)} ({bytes_at_answer / 2**20:.0f} of {size / 2**20:.0f} MB sent by "
        f"then{', send ' + sent['error'] if sent['error'] else ''}); server RSS {mb(rss_before[0])} -> peak "
        f"{mb(sampler.peak_main)} (group peak {mb(sampler.peak_group)}), {mb(rss_after[0])} 2 s later; "
        f"/healthz meanwhile: {probe_text(health)}",
        status=status, answered_s=answered_s, body_bytes=size, bytes_sent_at_answer=bytes_at_answer,
        body_sent_s=sent["done_s"], send_error=sent["error"], rss_before_kib=rss_before[0],
        rss_peak_kib=sampler.peak_main, group_rss_peak_kib=sampler.peak_group, rss_after_kib=rss_after[0],
        healthz=health)


# -- b: long polls on a queued job ------------------------------------------------------------------
def run_long_polls(bench: Bench, server: Server) -> None:
    args, report = bench.args, bench.report
    items = [{"path": bench.queue_video, "tags": ["bench-queue"]}] * args.queue_jobs
    try:
        response = httpx.post(f"{server.base}/api/batches", json={"items": items}, headers=AUTH, timeout=120)
        queue_status = str(response.status_code)
    except httpx.HTTPError as exc:
        queue_status = type(exc).__name__
    if queue_status != "202":  # a server with a smaller batch limit: one by one
        r = timed_requests(server.base, args.queue_jobs, args.clients,
                           lambda c: c.post("/api/jobs", json=items[0], headers=AUTH))
        queue_status = f"batch {queue_status}, then one by one {r['statuses']}"
    status, target = submit(server.base, {"path": bench.video, "tags": ["bench-wait"]})
    job_id = target.get("id")
    state_before = job_state(server.base, job_id).get("state") if job_id else None
    report.add("b", "queue", f"{args.queue_jobs} jobs ahead: {queue_status}; target job: status {status}, "
               f"state {state_before}", queue=queue_status, target_status=status, target_state=state_before)
    if not job_id:
        return
    probe = HealthProbe(server.base, interval=0.2, timeout=60)

    def wait_once(_: int) -> tuple[float, str]:
        started = time.perf_counter()
        try:
            r = httpx.get(f"{server.base}/api/jobs/{job_id}", params={"wait": args.wait}, timeout=args.wait + 45)
            status = str(r.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return time.perf_counter() - started, status

    probe.start()
    time.sleep(0.5)
    with ThreadPoolExecutor(args.long_polls) as pool:
        results = list(pool.map(wait_once, range(args.long_polls)))
    health = probe.stop()
    durations = [d for d, _ in results]
    state_after = job_state(server.base, job_id).get("state")
    report.add("b", f"{args.long_polls} unauthenticated GET /api/jobs/{{id}}?wait={args.wait:g}",
               f"statuses {counts([s for _, s in results])}, took p50 {pct(durations, 50):.1f} s, "
               f"max {max(durations):.1f} s; target still {state_after}; /healthz meanwhile: {probe_text(health)}",
               statuses=counts([s for _, s in results]), wait_p50_s=pct(durations, 50), wait_max_s=max(durations),
               target_state_after=state_after, healthz=health)


# -- c, d: a stuck open and a slow download ----------------------------------------------------------
def run_fifo(bench: Bench, server: Server) -> None:
    fifo = bench.media / "stuck.mp4"
    os.mkfifo(fifo)
    status, payload = submit(server.base, {"path": str(fifo)})
    job_id = payload.get("id")
    if not job_id:
        bench.report.add("c", "FIFO path job", f"status {status}{refusal(payload)}", status=status,
                         error=payload.get("error"))
        return
    held = hold_worker(server.base, job_id, bench.args.attack_seconds)
    released = {"state": held["state"]}
    if held["state"] not in ("done", "failed"):  # open the write end: the reader's open() returns, reads EOF
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            released = job_state(server.base, job_id)
            if released.get("state") in ("done", "failed"):
                break
            time.sleep(0.3)
    bench.report.add(
        "c", "FIFO path job",
        f"status {status}; held a worker {held['held_s']:.0f} s (bound {bench.args.attack_seconds:g} s, "
        f"{'ended by itself' if held['ended_by_itself'] else 'still ' + str(held['state'])}"
        f"{', ' + held['error'] if held['error'] else ''}), attempts {held['attempts']}; /healthz meanwhile "
        f"{held['healthz']}, last {json.dumps(held['healthz_last'])}; after opening the FIFO: "
        f"{released.get('state')}", status=status, **held, state_after_release=released.get("state"))


def run_slow_url(bench: Bench, server: Server) -> None:
    drip = DripServer(bench.args.drip_seconds)
    bench.stack.callback(drip.close)
    url = f"http://127.0.0.1:{drip.port}/slow.mp4"
    status, payload = submit(server.base, {"url": url})
    job_id = payload.get("id")
    if not job_id:
        bench.report.add("d", f"URL job, one byte every {bench.args.drip_seconds:g} s",
                         f"status {status}{refusal(payload)}; connections to the listener {drip.connections}",
                         status=status, error=payload.get("error"), connections=drip.connections)
        drip.close()
        return
    held = hold_worker(server.base, job_id, bench.args.attack_seconds)
    drip.close()
    after = wait_finished(server.base, job_id, 15)
    bench.report.add(
        "d", f"URL job, one byte every {bench.args.drip_seconds:g} s",
        f"status {status}; held a worker {held['held_s']:.0f} s (bound {bench.args.attack_seconds:g} s, "
        f"{'ended by itself' if held['ended_by_itself'] else 'still ' + str(held['state'])}"
        f"{', ' + held['error'] if held['error'] else ''}); {drip.bytes_sent} byte(s) dripped over "
        f"{drip.connections} connection(s); /healthz meanwhile {held['healthz']}; after closing the listener: "
        f"{after.get('state')} {job_error(after)}", status=status, **held, connections=drip.connections,
        bytes_dripped=drip.bytes_sent, state_after_close=after.get("state"))


# -- e: internal addresses ----------------------------------------------------------------------------
def run_internal_urls(bench: Bench, server: Server) -> None:
    v4 = bench.listener(socket.AF_INET)
    try:
        v6: Listener | None = bench.listener(socket.AF_INET6)
    except OSError:
        v6 = None
    cases = [
        ("127.0.0.1", v4, f"http://127.0.0.1:{v4.port}/e-127", "/e-127"),
        ("localhost", v4, f"http://localhost:{v4.port}/e-localhost", "/e-localhost"),
        ("[::1]", v6, v6.url("/e-ipv6") if v6 else None, "/e-ipv6"),
        ("2130706433 (decimal 127.0.0.1)", v4, f"http://2130706433:{v4.port}/e-decimal", "/e-decimal"),
        ("redirect to 127.0.0.1", v4, f"http://127.0.0.1:{v4.port}/e-redirect", "/e-redirect-target"),
    ]
    submitted = []
    for name, listener, url, path in cases:
        if url is None:
            bench.report.add("e", f"URL job to {name}", "not tried: no IPv6 loopback here", status=None)
            continue
        status, payload = submit(server.base, {"url": url})
        submitted.append((name, listener, url, path, status, payload))
    for name, listener, url, path, status, payload in submitted:
        job = wait_finished(server.base, payload["id"], 20) if payload.get("id") else {}
        reached = listener.reached(path)
        first_hop = listener.reached("/e-redirect") if path == "/e-redirect-target" else reached
        extra = f", first hop reached {first_hop}" if path == "/e-redirect-target" else ""
        bench.report.add("e", f"URL job to {name}",
                         f"status {status}{refusal(payload)}; reached the bench listener: {reached}{extra}; job "
                         f"{job.get('state', '-')} {job_error(job)}".rstrip(),
                         url=url, status=status, error=payload.get("error"), reached=reached, first_hop=first_hop,
                         job_state=job.get("state"), job_error=job_error(job))


# -- f: secrets in open reads --------------------------------------------------------------------------
def run_secrets(bench: Bench, server: Server) -> None:
    report, base = bench.report, server.base
    listener = bench.listener(socket.AF_INET)
    url = f"http://user:secret@127.0.0.1:{listener.port}/v.mp4?sig=abc"
    status, payload = submit(base, {"url": url})
    job_id = payload.get("id")
    job = wait_finished(base, job_id, 20) if job_id else {}
    try:
        listing = httpx.get(f"{base}/api/jobs", timeout=30)
        one = httpx.get(f"{base}/api/jobs/{job_id}", timeout=30) if job_id else None
        text = listing.text + (one.text if one is not None else "")
        list_status = f"{listing.status_code}" + (f"/{one.status_code}" if one is not None else "")
    except httpx.HTTPError as exc:
        text, list_status = "", type(exc).__name__
    report.add("f", "URL with user:secret@ and ?sig=abc",
               f"submit {status}{refusal(payload)}; unauthenticated GET /api/jobs, /api/jobs/{{id}} {list_status}: "
               f"'secret' shown {'secret' in text}, 'sig=abc' shown {'sig=abc' in text}; job {job.get('state', '-')}, "
               f"reached the listener {listener.reached('/v.mp4')}", status=status, read_status=list_status,
               secret_shown="secret" in text, signature_shown="sig=abc" in text, job_state=job.get("state"))

    # a failed upload: does its error name the server's storage path?
    try:
        up = httpx.post(f"{base}/api/jobs/upload", files={"file": ("holiday.mp4", b"this is not a video" * 10)},
                        headers=AUTH, timeout=30)
        up_status, up_id = up.status_code, up.json().get("id")
    except (httpx.HTTPError, ValueError) as exc:
        up_status, up_id = type(exc).__name__, None
    failed = wait_finished(base, up_id, 20) if up_id else {}
    message = job_error(failed)
    storage = str(server.data_dir) if server.data_dir else "/uploads/"
    shown = storage in json.dumps(failed) or "/uploads/" in json.dumps(failed)
    report.add("f", "failed upload's error", f"upload {up_status}; job {failed.get('state', '-')}: {message!r}; "
               f"server storage path shown {shown}", status=up_status, job_state=failed.get("state"),
               message=message, storage_path_shown=shown)

    # a webhook with a secret in its query
    rule = {"name": "bench-secret", "metric": "queued_jobs", "op": ">", "threshold": 1e9,
            "webhook": f"http://127.0.0.1:{listener.port}/hook?token=s3cr3t"}
    try:
        put = httpx.put(f"{base}/api/alert-rules/bench-secret", json=rule, headers=AUTH, timeout=30)
        rules = httpx.get(f"{base}/api/alert-rules", timeout=30)
        put_status, read_status = put.status_code, rules.status_code
        shown_put, shown_read = "s3cr3t" in put.text, "s3cr3t" in rules.text
    except httpx.HTTPError as exc:
        put_status, read_status, shown_put, shown_read = type(exc).__name__, "-", False, False
    report.add("f", "webhook ?token=s3cr3t", f"PUT {put_status} (secret in its answer {shown_put}); unauthenticated "
               f"GET /api/alert-rules {read_status}: secret shown {shown_read}", put_status=put_status,
               read_status=read_status, secret_in_put_answer=shown_put, secret_shown=shown_read)


# -- g: storage -----------------------------------------------------------------------------------------
def corrupt_copy(source: Path, target: Path, pages: int = 3) -> str:
    """Copy an SQLite file (and its WAL, if any) and overwrite `pages` pages past the first third."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    data = target.read_bytes()
    page = int.from_bytes(data[16:18], "big") or 65536
    total = len(data) // page
    rng = random.Random(18)
    chosen = sorted({max(2, int(total * f)) for f in (0.4, 0.6, 0.8)})[:pages]
    with open(target, "r+b") as fh:
        for index in chosen:
            if index < total:
                fh.seek(index * page)
                fh.write(bytes(rng.getrandbits(8) for _ in range(page)))
    return f"pages {', '.join(str(i + 1) for i in chosen)} of {total} ({page} B each) overwritten"


def populated_db(bench: Bench) -> Path:
    """The load server's database, else a new one with some jobs in it."""
    if bench.load_db is not None:
        return bench.load_db
    data_dir = bench.tmp / "data-populate"
    server = bench.launch("populate", data_dir, free_port())
    try:
        if bench.wait_up(server) is None:
            raise RuntimeError(f"could not start a server to fill a database: {one_line(server.log_text())}")
        httpx.post(f"{server.base}/api/batches", json={"items": [{"path": bench.video}] * 40}, headers=AUTH,
                   timeout=60)
        time.sleep(5)
    finally:
        server.stop()
    return data_dir / "vqscope.db"


def run_storage(bench: Bench) -> None:
    cases: list[tuple[str, Callable[[Path], str]]] = [
        ("0-byte SQLite file", lambda db: (db.write_bytes(b""), "0 bytes")[1]),
        ("random bytes", lambda db: (db.write_bytes(os.urandom(256 * 1024)), "256 KiB of random bytes")[1]),
        ("a few corrupt pages", lambda db: corrupt_copy(populated_db(bench), db)),
    ]
    for index, (name, make) in enumerate(cases):
        data_dir = bench.tmp / f"data-storage-{index}"
        data_dir.mkdir()
        db = data_dir / "vqscope.db"
        how = make(db)
        server = bench.launch(f"storage-{index}", data_dir, free_port())
        try:
            health = bench.wait_up(server, timeout=60)
            code = server.proc.poll() if server.proc else None
            calls: list[str] = []
            if health is not None:
                try:
                    body = health.json()
                    calls.append(f"/healthz {health.status_code} {body.get('status')} jobs {body.get('jobs')}")
                except ValueError:
                    calls.append(f"/healthz {health.status_code}")
                for path in ("/api/jobs", "/api/jobs?results=true&limit=1000", "/api/dashboard"):
                    try:
                        r = httpx.get(f"{server.base}{path}", headers=AUTH, timeout=30)
                        detail = ""
                        try:
                            answer = r.json()
                            detail = f" total {answer.get('total')}" if "total" in answer else f"{refusal(answer)}"
                        except (ValueError, AttributeError):
                            detail = f" {r.text[:60]!r}"
                        calls.append(f"GET {path} {r.status_code}{detail}")
                    except httpx.HTTPError as exc:
                        calls.append(f"GET {path} {type(exc).__name__}")
                outcome = "started; " + "; ".join(calls)
            else:
                log = server.log_text()
                outcome = (f"exited {code}: {one_line(log)!r}" if code is not None else "no answer in 60 s")
                outcome += f" (traceback {'Traceback' in log})"
            bench.report.add("g", name, f"{how}: {outcome}", setup=how, started=health is not None, exit_code=code,
                             calls=calls, message=one_line(server.log_text()),
                             traceback="Traceback" in server.log_text())
        finally:
            server.stop(grace=10)


# -- h: start-up errors -----------------------------------------------------------------------------------
def run_startup_errors(bench: Bench) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    try:
        for name, port in (("serve --port 99999", "99999"), ("serve on a port in use", str(busy))):
            server = bench.launch(f"startup-{port}", bench.tmp / f"data-startup-{port}", port)
            try:
                try:
                    code: int | str | None = server.proc.wait(60) if server.proc else None
                except subprocess.TimeoutExpired:
                    code = "still running after 60 s"
                log = server.log_text()
                bench.report.add("h", name, f"exit {code}: {one_line(log)!r} (traceback {'Traceback' in log}, "
                                 f"{len(log.splitlines())} line(s) of output)", exit_code=code, message=one_line(log),
                                 traceback="Traceback" in log, output_lines=len(log.splitlines()))
            finally:
                server.stop(grace=5)
    finally:
        blocker.close()


# -- i: input bounds --------------------------------------------------------------------------------------
def run_inputs(bench: Bench, server: Server) -> None:
    report, base, media = bench.report, server.base, bench.media
    checks = [
        ("NUL byte in a path", {"path": f"{media}/a\u0000b.mp4"}),
        ("5000-character file name", {"path": f"{media}/{'a' * 5000}.mp4"}),
        ("clip_seconds 1e-9", {"path": bench.video, "clip_seconds": 1e-9, "tags": ["bench-tiny-clip"]}),
    ]
    for name, body in checks:
        status, payload = submit(base, body)
        report.add("i", name, f"status {status}{refusal(payload)}", status=status, error=payload.get("error"))

    status, payload = submit(base, {"path": bench.video, "video": "v" * 5_000_000, "tags": ["bench-long-name"]})
    try:
        listing = httpx.get(f"{base}/api/jobs", params={"tag": "bench-long-name"}, headers=AUTH, timeout=60)
        listed = f"GET /api/jobs?tag=... {listing.status_code}, {len(listing.content) / 1e6:.1f} MB"
    except httpx.HTTPError as exc:
        listed = f"GET /api/jobs {type(exc).__name__}"
    report.add("i", "5 MB video name", f"status {status}{refusal(payload)}; {listed}", status=status,
               error=payload.get("error"), listing=listed)

    key, tag = uuid.uuid4().hex, f"bench-idem-{uuid.uuid4().hex[:8]}"
    answers = [submit(base, {"path": bench.video, "tags": [tag]}, {"Idempotency-Key": key}) for _ in range(2)]
    ids = [p.get("id") for _, p in answers]
    try:
        total = httpx.get(f"{base}/api/jobs", params={"tag": tag}, headers=AUTH, timeout=30).json().get("total")
    except (httpx.HTTPError, ValueError):
        total = None
    report.add("i", "same Idempotency-Key twice", f"statuses {[s for s, _ in answers]}, same id {ids[0] == ids[1]}, "
               f"jobs with its tag {total}", statuses=[s for s, _ in answers], same_id=ids[0] == ids[1], jobs=total)


# -- main -------------------------------------------------------------------------------------------------
def describe_code(bench: Bench) -> str:
    probe = subprocess.run([bench.args.python, "-c", "import vqscope; print(vqscope.__file__, vqscope.__version__)"],
                           capture_output=True, text=True, env=bench.env(), timeout=120, cwd=str(bench.tmp),
                           check=False)
    where = probe.stdout.strip() or one_line(probe.stderr)
    commit = subprocess.run(["git", "-C", str(bench.src), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, timeout=30, check=False).stdout.strip()
    return f"{where} (commit {commit or '?'})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, comma-separated ({','.join(SECTIONS)})")
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--src", default=str(ROOT / "src"), help="source tree of the service under test (default: this "
                                                             "checkout's src)")
    p.add_argument("--python", default=sys.executable, help="Python that runs the servers (default: this one)")
    p.add_argument("--model", default="tiny", help="'tiny' (a test model the bench makes) or a shipped name / file")
    p.add_argument("--serve-args", default="", help="extra `vqscope serve` flags for every server, one string")
    p.add_argument("--url", default=None, help="bench a running server instead (127.0.0.1 only; skips g and h)")
    p.add_argument("--token", default=None, help="its write token (with --url)")
    p.add_argument("--workers", type=int, default=1, help="workers of the load server (default 1)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients in the load test (default 8)")
    p.add_argument("--requests", type=int, default=1000, help="requests per GET endpoint (default 1000)")
    p.add_argument("--submit-requests", type=int, default=300, help="POST /api/jobs requests (default 300)")
    p.add_argument("--big-mb", type=float, default=100, help="size of the unauthenticated JSON body (default 100)")
    p.add_argument("--big-shape", choices=("list", "string"), default="list",
                   help="the big body: a list of short tags (default) or one long string")
    p.add_argument("--long-polls", type=int, default=45, help="concurrent unauthenticated long polls (default 45)")
    p.add_argument("--wait", type=float, default=15, help="their ?wait= in seconds (default 15)")
    p.add_argument("--queue-jobs", type=int, default=400,
                   help="30 s videos queued ahead of the long-polled job (default 400, about a minute of work)")
    p.add_argument("--attack-seconds", type=float, default=30, help="bound of the stuck-worker attacks (default 30)")
    p.add_argument("--drip-seconds", type=float, default=5, help="the slow URL sends a byte this often (default 5)")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))} (sections: {', '.join(SECTIONS)})")
    if args.url:
        host = httpx.URL(args.url).host
        if host not in ("127.0.0.1", "::1", "localhost"):
            p.error("--url must be on 127.0.0.1, ::1 or localhost")
        if args.token:
            AUTH["Authorization"] = f"Bearer {args.token}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    report = Report()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vqscope-service-load-"))
    bench: Bench | None = None
    try:
        with ExitStack() as stack:
            bench = Bench(args, tmp, report, stack)
            make_inputs(bench)
            report.add("setup", "service", f"{describe_code(bench)}; model {args.model}; python "
                       f"{platform.python_version()}; {os.cpu_count()} CPUs; serve args {args.serve_args!r}",
                       src=str(bench.src), model=args.model, serve_args=args.serve_args, cpus=os.cpu_count())
            want = set(args.sections)
            if "load" in want:
                run_load(bench)
            if want & {"a", "b", "f", "i"}:
                server = bench.start("attacks")
                try:
                    if "a" in want:
                        run_big_body(bench, server)
                    if "f" in want:
                        run_secrets(bench, server)
                    if "b" in want:
                        run_long_polls(bench, server)
                    if "i" in want:  # after b: the jobs it accepts wait behind the queue, never scored
                        run_inputs(bench, server)
                finally:
                    server.stop(grace=10)
            if want & {"c", "d", "e"}:
                server = bench.start("workers")
                try:
                    if "c" in want:
                        run_fifo(bench, server)
                    if "d" in want:
                        run_slow_url(bench, server)
                    if "e" in want:
                        run_internal_urls(bench, server)
                finally:
                    server.stop(grace=10)
            if args.url and want & {"g", "h"}:
                report.add("setup", "g, h", "skipped: they start their own servers (not with --url)")
            else:
                if "g" in want:
                    run_storage(bench)
                if "h" in want:
                    run_startup_errors(bench)
    finally:
        if bench is not None:
            bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    report.add("setup", "total", f"{time.perf_counter() - started:.0f} s", seconds=time.perf_counter() - started)
    if args.json:
        Path(args.json).write_text(json.dumps(report.data, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
