#!/usr/bin/env python3
"""Scoring speed and memory against decoding alone.

    python bench/score_speed.py [VIDEO] [--model vqscope-lite] [--repeat 3] [--long-video] [--runtime torch|onnx]

For VIDEO (default: ../shared/media/kinetics_HyZMiWeJyMw_000072_000082.mp4) it prints:
- decode-only time: PyAV decoding every frame, with the decoder settings the scorer uses
  (frame threads), no conversion;
- score time: `model.score(VIDEO)` with the model already loaded (warm), the number that
  matters for a service or a batch;
- their ratio (target: <= 2.0 on 2 cores), and peak resident memory of a fresh process that
  loads the model and scores the video once (target: <= 1.5 GB).
With --long-video it also generates a 5-minute 1280x720 video and reports the same peak
memory for it (target: no higher than for the short video).
Each measurement runs in its own process, so one does not warm caches for another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "media" / "kinetics_HyZMiWeJyMw_000072_000082.mp4"

_DECODE = r"""
import json, sys, time, av
path, repeat = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(repeat):
    t = time.perf_counter()
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = sum(1 for _ in c.decode(s))
    times.append(time.perf_counter() - t)
print(json.dumps({"frames": n, "times": times}))
"""

_SCORE = r"""
import json, resource, sys, time
import vqscope
path, model_name, repeat, runtime = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t = time.perf_counter()
model = vqscope.load_model(model_name)
if runtime == "onnx":
    from vqscope.export import use_onnx
    use_onnx(model)  # exported into the cache on first use
result = model.score(path)  # first call also builds the backbones
first = time.perf_counter() - t
times = []
for _ in range(repeat):
    t = time.perf_counter()
    result = model.score(path)
    times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first_s": first, "times": times, "peak_rss_mb": rss, "clips": len(result.clips),
                  "score": result.score, "model": result.model}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_long_video(path: Path, seconds: int = 300, fps: int = 24) -> None:
    import numpy as np

    from vqscope.data.encode import write_video

    rng = np.random.default_rng(0)
    h, w = 720, 1280
    texture = rng.integers(0, 255, (h, w * 2, 3), dtype=np.uint8)
    texture = ((texture.astype(np.uint16) + np.roll(texture, 1, 1) + np.roll(texture, 1, 0)) // 3).astype(np.uint8)

    def frames():
        for i in range(seconds * fps):
            x = (i * 4) % w
            yield texture[:, x : x + w]

    write_video(path, frames(), fps, preset="ultrafast", crf=23)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--model", default="vqscope-lite")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runtime", choices=("torch", "onnx"), default="torch", help="where backbones and heads run")
    ap.add_argument("--long-video", action="store_true", help="also measure memory on a generated 5-minute video")
    args = ap.parse_args()
    if not os.path.isfile(args.video):
        print(f"video not found: {args.video}", file=sys.stderr)
        return 2

    decode = run(_DECODE, args.video, str(args.repeat))
    score = run(_SCORE, args.video, args.model, str(args.repeat), args.runtime)
    d, s = statistics.median(decode["times"]), statistics.median(score["times"])
    print(f"video            {args.video}")
    print(f"machine          {os.cpu_count()} CPUs, runtime {args.runtime}")
    print(f"frames           {decode['frames']}, clips scored {score['clips']}, model {score['model']}")
    print(f"decode only      {d:.3f} s (median of {args.repeat}; {decode['frames'] / d:.0f} frames/s)")
    print(f"score (warm)     {s:.3f} s (median of {args.repeat}; first call incl. model load {score['first_s']:.2f} s)")
    print(f"ratio            {s / d:.2f} x decode-only (target <= 2.0)")
    print(f"peak RSS         {score['peak_rss_mb']:.0f} MB (target <= 1536 MB)")
    if args.long_video:
        with tempfile.TemporaryDirectory() as tmp:
            long_path = Path(tmp) / "five_minutes.mp4"
            make_long_video(long_path)
            long = run(_SCORE, str(long_path), args.model, "1", args.runtime)
            print(f"5-minute video   peak RSS {long['peak_rss_mb']:.0f} MB, score {statistics.median(long['times']):.2f} s, "
                  f"{long['clips']} clips (10-second video: {score['peak_rss_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
