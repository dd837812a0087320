#!/usr/bin/env python3
"""Batch throughput: scoring a folder against decoding it, with the same number of processes.

    python bench/throughput.py [FOLDER] [--workers 2] [--runtime torch|onnx] [--model vqscope-lite]

FOLDER defaults to ../shared/media (its readable videos). Prints, for decode-only (PyAV, every
frame, one process per video at a time, `--workers` at once) and for `vqscope score FOLDER
--workers N --out ...` (a cold run: worker start and model loading included):
videos per minute, decoded frames per second, and scoring throughput as a share of decode-only
throughput (issue target on 2 cores with the default model: >= 70%).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "media"


def decode_all(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))
    except Exception:  # unreadable files count as zero frames, as scoring records them as failures
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    ap.add_argument("--model", default="vqscope-lite")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from vqscope.output import expand_inputs

    videos = expand_inputs([args.folder])
    if not videos:
        print(f"no videos in {args.folder}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        frames = sum(pool.map(decode_all, videos))
    decode_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.jsonl"
        cmd = [sys.executable, "-m", "vqscope.cli", "score", *videos, "--model", args.model, "--out", str(out),
               "--workers", str(args.workers), "--runtime", args.runtime, "--no-progress"]
        t = time.perf_counter()
        subprocess.run(cmd, check=False, capture_output=True)
        score_s = time.perf_counter() - t
        scored = sum(1 for line in out.read_text().splitlines() if '"status": "ok"' in line) if out.exists() else 0
    print(f"folder           {args.folder}: {len(videos)} videos ({scored} scored), {frames} frames")
    print(f"machine          {os.cpu_count()} CPUs, {args.workers} workers, runtime {args.runtime}")
    print(f"decode only      {decode_s:.2f} s: {60 * len(videos) / decode_s:.1f} videos/min, {frames / decode_s:.0f} frames/s")
    print(f"score (cold)     {score_s:.2f} s: {60 * len(videos) / score_s:.1f} videos/min, {frames / score_s:.0f} frames/s")
    print(f"share            {100 * decode_s / score_s:.0f}% of decode-only throughput (target >= 70%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
