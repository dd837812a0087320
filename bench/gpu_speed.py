#!/usr/bin/env python3
"""The GPU path: decode-only and scoring frames per second, by decoder and by runtime.

    python bench/gpu_speed.py [VIDEO...] [--model vqscope-lite] [--repeat 3] [--json]

Needs a CUDA GPU visible to PyTorch; without one it says so and exits with code 2 (nothing
here measures a CPU). Without VIDEO it generates a 10-second 1280x720 and a 10-second
1920x1080 clip. For each video it measures, warm (a first untimed run builds and loads
everything), the median of --repeat runs:

- decode only: PyAV on the CPU (every frame, frame threads, no conversion) and torchcodec on
  CUDA (NVDEC; every frame as RGB on the GPU, synchronised);
- score: `model.score(VIDEO)` with each decoder (pyav, torchcodec on CUDA) and each runtime:
  torch-cpu, torch-cuda (learned backbones moved to the GPU), onnx-cuda and onnx-tensorrt
  (ONNX Runtime with VQSCOPE_ORT_PROVIDERS=cuda,cpu or tensorrt,cuda,cpu) and tensorrt
  (vqscope's own FP16 engines, built into the cache on first use);
  with the video score, so runtimes can be compared for agreement as well as speed.

A configuration whose library is missing is reported as skipped with the reason; install
`torchcodec`, `onnxruntime-gpu` and `tensorrt` (with a CUDA build of torch) for all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

RUNTIMES = ("torch-cpu", "torch-cuda", "onnx-cuda", "onnx-tensorrt", "tensorrt")
DECODERS = ("pyav", "torchcodec")


def no_gpu_message() -> str | None:
    if torch.cuda.is_available():
        return None
    build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, but no GPU or driver"
    return (f"gpu_speed: no CUDA GPU visible to PyTorch (torch {torch.__version__}, {build}). This benchmark "
            "measures the GPU path: run it on a machine with an NVIDIA GPU and driver, a CUDA build of torch, "
            "and `pip install torchcodec tensorrt onnxruntime-gpu`. For CPU figures see bench/score_speed.py.")


def make_videos(folder: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import textured_frames

    from vqscope.data.encode import write_video

    paths = []
    for h, w in ((720, 1280), (1080, 1920)):
        path = folder / f"generated_{w}x{h}_10s.mp4"
        if not path.exists():
            # 10 s at 25 fps; the pan repeats every 50 frames to keep generation quick
            base = textured_frames(50, h, w)
            write_video(path, (base[i % 50] for i in range(250)), 25, crf=23)
        paths.append(str(path))
    return paths


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    value = fn()  # warm: engines, sessions, CUDA context, caches
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        value = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def decode_pyav(path: str) -> int:
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for _ in c.decode(s))


def decode_torchcodec(path: str, chunk: int = 8) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, device="cuda", dimension_order="NCHW", seek_mode="exact")
    n = 0
    for start in range(0, len(decoder), chunk):
        n += decoder.get_frames_in_range(start, min(len(decoder), start + chunk)).data.shape[0]
    return n


class CudaTorchBackbone:
    """A learned backbone run by PyTorch on the GPU (the extractor hands it CPU tensors)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module.to("cuda").eval()

    @torch.inference_mode()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.features(x.to("cuda", non_blocking=True)).float().cpu()


def load(model_name: str, runtime: str, decoder: str) -> Any:
    import vqscope
    from vqscope.export.onnx import _learned

    model = vqscope.load_model(model_name)
    if runtime == "torch-cuda":
        for name in _learned(model):
            model.extractor.replace_backbone(name, CudaTorchBackbone(model.extractor.backbone(name)))
    elif runtime.startswith("onnx-"):
        from vqscope.export import use_onnx

        os.environ["VQSCOPE_ORT_PROVIDERS"] = "cuda,cpu" if runtime == "onnx-cuda" else "tensorrt,cuda,cpu"
        use_onnx(model)
    elif runtime == "tensorrt":
        from vqscope.export import use_tensorrt

        use_tensorrt(model)
    model.extractor.decoder = ("torchcodec", "cuda") if decoder == "torchcodec" else "pyav"
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*")
    ap.add_argument("--model", default="vqscope-lite")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = ap.parse_args()
    message = no_gpu_message()
    if message:
        print(message, file=sys.stderr)
        return 2
    from vqscope.errors import VQScopeError
    from vqscope.video import probe

    videos = args.videos or make_videos(Path(tempfile.gettempdir()) / "vqscope-gpu-bench")
    rows: list[dict[str, Any]] = []
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CPU cores {os.cpu_count()}",
          file=sys.stderr)
    for video in videos:
        info = probe(video)
        label = f"{Path(video).name} ({info.width}x{info.height}, {info.frame_count} frames)"
        for name, fn in (("decode pyav", decode_pyav), ("decode torchcodec-cuda", decode_torchcodec)):
            try:
                seconds, frames = timed(lambda: fn(video), args.repeat)
                rows.append({"video": label, "what": name, "seconds": seconds, "frames_per_s": frames / seconds})
            except Exception as exc:  # a missing or failing library: reported, not fatal
                rows.append({"video": label, "what": name, "skipped": f"{type(exc).__name__}: {exc}"[:200]})
            print(json.dumps(rows[-1]), file=sys.stderr)
        for decoder in DECODERS:
            for runtime in RUNTIMES:
                what = f"score {decoder} + {runtime}"
                try:
                    model = load(args.model, runtime, decoder)
                    seconds, result = timed(lambda: model.score(video), args.repeat)
                    rows.append({"video": label, "what": what, "seconds": seconds,
                                 "frames_per_s": info.frame_count / seconds, "score": round(result.score, 3),
                                 "clips": len(result.clips)})
                except (VQScopeError, ImportError, RuntimeError, OSError) as exc:
                    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    rows.append({"video": label, "what": what, "skipped": str(text)[:200]})
                print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| video | measure | time (s) | frames/s | score |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['video']} | {r['what']} | skipped: {r['skipped']} | | |")
        else:
            print(f"| {r['video']} | {r['what']} | {r['seconds']:.3f} | {r['frames_per_s']:.0f} | "
                  f"{r.get('score', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
