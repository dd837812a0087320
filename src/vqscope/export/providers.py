"""Which ONNX Runtime execution providers a session gets: TensorRT, then CUDA, then the CPU.

Shared by the ONNX export's scoring (onnx.py) and anything else that opens a session; it
needs neither TensorRT nor a GPU to decide (it asks ONNX Runtime what it offers and looks for
TensorRT's libraries), so the CPU machine and the GPU machine run the same code.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, RuntimeUnavailableError

PROVIDERS_ENV = "VQSCOPE_ORT_PROVIDERS"
_PROVIDER_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                   "cpu": "CPUExecutionProvider"}


def tensorrt_libraries_present() -> bool:
    """Whether TensorRT's libraries can be found (ONNX Runtime's TensorRT provider needs them)."""
    import ctypes.util

    return importlib.util.find_spec("tensorrt") is not None or ctypes.util.find_library("nvinfer") is not None


def onnx_providers(available: Sequence[str], *, tensorrt_present: bool, engine_cache: str | os.PathLike[str] | None = None,
                   wanted: str | None = None) -> list[Any]:
    """Execution providers for an ONNX Runtime session, fastest first, CPU always last.

    TensorRT (FP16, engines cached beside the ONNX files) when onnxruntime-gpu offers it and
    TensorRT's libraries are installed; CUDA when offered; then the CPU. `wanted` (or the
    VQSCOPE_ORT_PROVIDERS environment variable), a comma list of tensorrt/cuda/cpu, limits the
    choice, e.g. `cuda,cpu` to compare providers; naming one that is not available is an error.
    """
    order = ["tensorrt", "cuda", "cpu"]
    if wanted:
        names = [w.strip().lower() for w in wanted.split(",") if w.strip()]
        unknown = [n for n in names if n not in _PROVIDER_NAMES]
        if unknown:
            raise ConfigError(f"{PROVIDERS_ENV}: unknown provider {unknown[0]!r} (use tensorrt, cuda, cpu)")
        missing = [n for n in names if n != "cpu" and _PROVIDER_NAMES[n] not in available]
        if "tensorrt" in names and not tensorrt_present and "tensorrt" not in missing:
            missing.append("tensorrt")
        if missing:
            raise RuntimeUnavailableError(
                f"ONNX Runtime here offers no {_PROVIDER_NAMES[missing[0]]} (available: {', '.join(available)}): "
                "pip install onnxruntime-gpu (and tensorrt for the TensorRT provider) on a machine with an NVIDIA GPU"
            )
        order = [n for n in order if n in names]
    providers: list[Any] = []
    if "tensorrt" in order and _PROVIDER_NAMES["tensorrt"] in available and tensorrt_present:
        options: dict[str, Any] = {"trt_fp16_enable": True, "trt_engine_cache_enable": True}
        if engine_cache is not None:
            options["trt_engine_cache_path"] = str(engine_cache)
        providers.append((_PROVIDER_NAMES["tensorrt"], options))
    if "cuda" in order and _PROVIDER_NAMES["cuda"] in available:
        providers.append(_PROVIDER_NAMES["cuda"])
    if "cpu" in order or not providers:
        providers.append(_PROVIDER_NAMES["cpu"])
    return providers


def session_providers(ort: Any, onnx_path: Path) -> list[Any]:
    """`onnx_providers` for this ONNX Runtime install and this environment."""
    return onnx_providers(ort.get_available_providers(), tensorrt_present=tensorrt_libraries_present(),
                          engine_cache=onnx_path.parent / "ort-trt-cache", wanted=os.environ.get(PROVIDERS_ENV))
