"""Shared fixtures: small generated videos (the core suite needs no media files), and the
real clips of ../shared/media for the tests that use them (skipped where absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vqscope.data.encode import write_video

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def cli_without_file_access(argv: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run `vqscope ARGV` as root but held to file permission bits; return (exit code, stderr).

    Root reads a mode-000 file, so the "permission denied" path needs a process without the two
    capabilities that bypass permission bits (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). util-linux's
    setpriv drops them from the bounding set of a fresh interpreter, which still reads its own
    root-owned installation. A fresh process, not os.fork(): a forked copy of this
    multi-threaded test process (torch, PyAV, servers of earlier tests) can deadlock on a lock
    some other thread held at the fork, and once hung CI until its time ran out.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux's setpriv is missing to drop file-access capabilities")
    done = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m", "vqscope.cli", *argv],
        capture_output=True, text=True, timeout=timeout,
    )
    return done.returncode, done.stderr


def textured_frames(n: int, height: int, width: int, speed: int = 3, seed: int = 0) -> list[np.ndarray]:
    """A textured scene panning sideways: detail for codecs to damage, motion for windows."""
    rng = np.random.default_rng(seed)
    big_w = width + speed * n + 8
    yy, xx = np.mgrid[0:height, 0:big_w]
    base = np.stack(
        [
            128 + 90 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
            128 + 70 * np.cos(xx / 17.0 + yy / 11.0),
            128 + 60 * np.sin((xx + yy) / 7.0),
        ],
        axis=-1,
    )
    base += rng.normal(0, 12, size=base.shape)
    base[height // 4 : height // 2, ::24] = 250  # sharp edges
    base = np.clip(base, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(base[:, i * speed : i * speed + width]) for i in range(n)]


@pytest.fixture(autouse=True, scope="session")
def _private_result_cache(tmp_path_factory):
    """`ask`, `describe` and `score` reuse results from a cache in the user's folder: the suite
    keeps its own, so no test reads what an earlier run (or the user) left there."""
    saved = os.environ.get("VQSCOPE_RESULT_CACHE")
    os.environ["VQSCOPE_RESULT_CACHE"] = str(tmp_path_factory.mktemp("result-cache"))
    yield
    if saved is None:
        os.environ.pop("VQSCOPE_RESULT_CACHE", None)
    else:
        os.environ["VQSCOPE_RESULT_CACHE"] = saved


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory):
    """make(name, n=..., height=..., width=..., fps=..., **write_video options) -> path."""
    folder = tmp_path_factory.mktemp("videos")
    made: dict[tuple, str] = {}

    def make(name: str = "clip.mp4", n: int = 48, height: int = 72, width: int = 128, fps: float | int = 24,
             speed: int = 3, seed: int = 0, **options) -> str:
        key = (name, n, height, width, fps, speed, seed, tuple(sorted(options.items())))
        if key not in made:
            path = folder / f"{len(made)}_{name}"
            write_video(path, textured_frames(n, height, width, speed, seed), fps, **options)
            made[key] = str(path)
        return made[key]

    return make


@pytest.fixture
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_MEDIA} (../shared/media is absent)")
    return SHARED_MEDIA


# -- Debian's Chromium through Playwright ---------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests (skipped with a reason where it is missing)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# -- the job store on SQLite and PostgreSQL ------------------------------------------------------
@pytest.fixture(scope="module")
def pg_server():
    """A throwaway PostgreSQL server for the module (skipped with a reason where absent)."""
    from service_support import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """A database URL: a SQLite file, or a fresh database on the throwaway PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    from service_support import fresh_database

    return fresh_database(request.getfixturevalue("pg_server"))
