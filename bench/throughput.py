#!/usr/bin/env python3
"""Batch throughput: scoring a folder against decoding it, with the same number of processes.

    python bench/throughput.py [FOLDER] [--workers 2] [--runtime torch|onnx] [--model vqscope-lite]
                               [--repeat 3] [--no-cold] [--per-video]
    python bench/throughput.py --make-videos DIR [--count 20] [--seconds 4]   # then bench DIR

FOLDER defaults to ../shared/media (its readable videos). `--make-videos` writes a folder of
synthetic 1280x720 25 fps H.264 clips (a textured pan with film grain, about 1 Mbit/s, like
camera footage after a platform's transcode) so the bench runs without ../shared.

It prints videos per minute and decoded frames per second for:
- decode only: PyAV decoding every frame of every file (frame threads, no conversion), in
  `--workers` processes, one video per process at a time. This is the honest ceiling: a
  scorer must at least decode. Where scoring decodes fewer frames than all (long videos
  thinned to 32 clips), a second baseline decodes only the frames the clip plans need.
- score, warm: `vqscope.features.pipeline.ScoringPipeline` in this process, model loaded and
  decode workers started (a service or a long batch), best of `--repeat`;
- score, cold: `vqscope score FOLDER --workers N --out ...` as a fresh process (interpreter
  start, imports, model and worker start included), best of `--repeat`;
- with --per-video: the former scheme, one process per video at a time each running
  Model.score, warm, for comparison.
and each as a share of decode-only throughput (issue target on 2 cores with the default
model: >= 70%). Every line also gives the CPU seconds its best run took, all processes
together, and the share in CPU seconds: on a shared, loaded machine wall-clock shares mostly
measure the scheduler (a decoder with frame threads gets more of a contended CPU than a
single-threaded one), while CPU seconds say what the wall share becomes where the cores are
free. Every line reports the load average it ran under.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "media"
sys.path.insert(0, str(ROOT / "src"))


# -- test videos -----------------------------------------------------------------------------
def make_videos(folder: Path, count: int = 20, seconds: float = 4.0, width: int = 1280, height: int = 720,
                fps: int = 25) -> list[str]:
    """Synthetic camera-like clips: a textured scene panning sideways, with temporal grain."""
    import numpy as np

    from vqscope.data.encode import write_video

    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    paths = []
    for k in range(count):
        rng = np.random.default_rng(k)
        speed = int(rng.integers(2, 7))
        yy, xx = np.mgrid[0:height, 0 : width + speed * n + 8].astype(np.float32)
        f1, f2, f3 = rng.uniform(6, 40, 3)
        scene = np.stack([128 + 80 * np.sin(xx / f1) * np.cos(yy / f2), 128 + 60 * np.cos(xx / f3 + yy / f1),
                          128 + 50 * np.sin((xx + yy) / f2)], axis=-1)
        scene += rng.normal(0, 6, scene.shape).astype(np.float32)
        grain = [rng.normal(0, 4, (height, width, 1)).astype(np.float32) for _ in range(7)]
        frames = (np.clip(scene[:, i * speed : i * speed + width] + grain[i % 7], 0, 255).astype(np.uint8)
                  for i in range(n))
        paths.append(write_video(folder / f"clip_{k:02d}.mp4", frames, fps, crf=23))
    return paths


# -- baselines -------------------------------------------------------------------------------
def decode_all(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))
    except Exception:  # unreadable files count as zero frames, as scoring records them as failures
        return 0


def decode_needed(path: str) -> int:
    """Decode what scoring decodes (the clip plan's windows, seeking over gaps), convert nothing."""
    from vqscope.errors import VQScopeError
    from vqscope.sampling import ClipAssembler, plan_clips
    from vqscope.video import VideoReader

    try:
        with VideoReader(path) as reader:
            plan = plan_clips(reader.info.duration_s, reader.info.fps)
            for _ in ClipAssembler(plan, lambda f: {}, lambda f: {}).run(reader):
                pass
            return reader.stats.frames
    except VQScopeError:
        return 0


def _noop(_: int) -> int:
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of live processes (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0
    return total


def pool_pids(pool: ProcessPoolExecutor) -> list[int]:
    return [p.pid for p in (pool._processes or {}).values()]  # a bench may peek


@dataclass
class Timing:
    wall_s: float  # best of the runs
    cpu_s: float  # CPU seconds of the best run, all processes together (load-independent)
    count: int  # frames decoded or videos scored


def timed(run, pids, repeat: int, own_cpu: bool = False) -> Timing:
    """Best wall time of `repeat` runs of run() -> count, with the CPU time the run took."""
    best = Timing(float("inf"), 0.0, 0)
    for _ in range(repeat):
        c0 = cpu_seconds(pids()) + (time.process_time() if own_cpu else 0.0)
        t = time.perf_counter()
        count = run()
        wall = time.perf_counter() - t
        cpu = cpu_seconds(pids()) + (time.process_time() if own_cpu else 0.0) - c0
        if wall < best.wall_s:
            best = Timing(wall, cpu, count)
    return best


def timed_map(pool: ProcessPoolExecutor, fn, videos: list[str], repeat: int) -> Timing:
    return timed(lambda: sum(pool.map(fn, videos)), lambda: pool_pids(pool), repeat)


# -- scoring ---------------------------------------------------------------------------------
def score_warm(videos: list[str], model_name: str, runtime: str, workers: int, repeat: int) -> Timing:
    from vqscope.features.pipeline import ScoringPipeline
    from vqscope.zoo import load_model

    model = load_model(model_name)
    if runtime == "onnx":
        from vqscope.export import use_onnx

        use_onnx(model)
    with ScoringPipeline(model, decode_workers=workers) as pipeline:
        list(pipeline.score(videos[: 2 * workers]))  # warm-up: workers started, kernels primed

        def run() -> int:
            return sum(1 for _, r in pipeline.score(videos) if not isinstance(r, Exception))

        return timed(run, lambda: pool_pids(pipeline._ensure_pool()), repeat, own_cpu=True)


_PER_VIDEO_MODEL = None


def _per_video_init(model_name: str) -> None:
    global _PER_VIDEO_MODEL
    import torch

    from vqscope.zoo import load_model

    torch.set_num_threads(1)
    _PER_VIDEO_MODEL = load_model(model_name)
    _PER_VIDEO_MODEL.extractor.torch_threads = 1


def _per_video_score(path: str) -> int:
    try:
        _PER_VIDEO_MODEL.score(path)
        return 1
    except Exception:
        return 0


def score_per_video(videos: list[str], model_name: str, workers: int, repeat: int) -> Timing:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_per_video_init,
                             initargs=(model_name,)) as pool:
        list(pool.map(_per_video_score, videos[: 2 * workers]))
        return timed_map(pool, _per_video_score, videos, repeat)


def score_cold(videos: list[str], model_name: str, runtime: str, workers: int, repeat: int) -> Timing:
    import resource

    best = Timing(float("inf"), 0.0, 0)
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scores.jsonl"
            cmd = [sys.executable, "-m", "vqscope.cli", "score", *videos, "--model", model_name, "--out", str(out),
                   "--workers", str(workers), "--runtime", runtime, "--no-progress"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, check=False, capture_output=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI and its decode workers
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            scored = sum(1 for line in out.read_text().splitlines() if '"status": "ok"' in line) if out.exists() else 0
        if wall < best.wall_s:
            best = Timing(wall, cpu, scored)
    return best


# -- report ----------------------------------------------------------------------------------
def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def line(label: str, t: Timing, videos: int, frames: int, baseline: Timing | None = None) -> str:
    text = (f"{label:<26}{t.wall_s:6.2f} s: {60 * videos / t.wall_s:6.1f} videos/min, {frames / t.wall_s:5.0f} frames/s"
            f" | cpu {t.cpu_s:5.2f} s")
    if baseline is not None:
        text += f" | share {100 * baseline.wall_s / t.wall_s:3.0f}% wall, {100 * baseline.cpu_s / max(t.cpu_s, 1e-9):3.0f}% cpu"
    return f"{text}   [{load()}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    ap.add_argument("--model", default="vqscope-lite")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold `vqscope score` runs")
    ap.add_argument("--per-video", action="store_true", help="also time one process per video (the former scheme)")
    ap.add_argument("--make-videos", metavar="DIR", default=None, help="write test clips into DIR and exit")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    if args.make_videos:
        t = time.perf_counter()
        made = make_videos(Path(args.make_videos), args.count, args.seconds)
        print(f"wrote {len(made)} clips to {args.make_videos} in {time.perf_counter() - t:.0f} s")
        return 0
    from vqscope.output import expand_inputs

    videos = expand_inputs([args.folder])
    if not videos:
        print(f"no videos in {args.folder}", file=sys.stderr)
        return 2
    with ProcessPoolExecutor(args.workers) as pool:
        list(pool.map(_noop, range(args.workers)))  # workers started before timing
        decode = timed_map(pool, decode_all, videos, args.repeat)
        needed = timed_map(pool, decode_needed, videos, args.repeat)
    n, frames = len(videos), decode.count
    thinned = needed.count < 0.95 * frames  # the plans skip a real share of the frames (long videos)
    print(f"folder                    {args.folder}: {n} videos, {frames} frames "
          f"(scoring decodes {needed.count} of them)")
    print(f"machine                   {os.cpu_count()} CPUs, {args.workers} workers, runtime {args.runtime}, "
          f"best of {args.repeat}")
    print(line("decode only, all frames", decode, n, frames))
    if thinned:
        print(line("decode only, plan frames", needed, n, frames) + "  (second baseline: only what scoring needs)")
    warm = score_warm(videos, args.model, args.runtime, args.workers, args.repeat)
    print(line(f"score, warm ({warm.count} ok)", warm, n, frames, decode))
    if thinned:
        print(line(f"score, warm ({warm.count} ok)", warm, n, frames, needed) + "  (against the plan's frames)")
    if args.per_video:
        per_video = score_per_video(videos, args.model, args.workers, args.repeat)
        print(line(f"per-video procs ({per_video.count} ok)", per_video, n, frames, decode))
    if not args.no_cold:
        cold = score_cold(videos, args.model, args.runtime, args.workers, args.repeat)
        print(line(f"score, cold ({cold.count} ok)", cold, n, frames, decode))
    print("target                    >= 70% of decode-only throughput (2 cores, default model). 'cpu' shares")
    print("                          compare CPU seconds: what the wall share becomes on a quiet machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
