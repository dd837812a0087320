"""TensorRT engines of a model's learned parts, and scoring through them. (ONNX Runtime's own
TensorRT and CUDA execution providers are chosen in providers.py.)

An engine folder is built from the ONNX export (`export_onnx`): one FP16 engine per learned
backbone and one for the heads, each with an optimisation profile over the batch dimension
(min / opt / max), and a `manifest.json` naming the model (id and file hash), the TensorRT
version and the GPU it was built for. Engines are specific to a TensorRT version and a GPU
architecture, so a folder is refused for another model, another TensorRT or another GPU.

Precision. TensorRT 10 and earlier build the FP32 ONNX graphs with `BuilderFlag.FP16`
("weak typing": TensorRT picks FP16 kernels where it likes). TensorRT 11 removed that flag:
networks are strongly typed, so for it the backbones are exported a second time as FP16 graphs
(weights and arithmetic in FP16, FP32 input and output) and built as they are. The heads are a
few thousand multiply-adds on the 0-100 score scale, where FP16 would cost a visible 0.05 point
for no speed: they stay FP32 either way.

The weight-free statistics backbones stay in PyTorch, as with ONNX Runtime.

Everything here that needs TensorRT imports it lazily; where TensorRT or a CUDA GPU is absent,
every entry point raises a one-line RuntimeUnavailableError (exit code 25) saying what is
missing and how to get it.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from ..backbones.weights import cache_dir
from ..errors import ConfigError, ModelFileError, RuntimeUnavailableError
from .onnx import MANIFEST, OPSET, _example_input, _Features, _model_sha256, export_onnx

if TYPE_CHECKING:
    from ..model import Model

WORKSPACE_BYTES = 2 << 30
INSTALL_HINT = "pip install tensorrt on a machine with an NVIDIA GPU and its driver (and a CUDA build of torch)"


# -- what is installed ----------------------------------------------------------------------
def _tensorrt() -> Any:
    """The `tensorrt` module, or a one-line typed error saying how to get it."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        raise RuntimeUnavailableError(f"TensorRT is not installed: {INSTALL_HINT}; or use --runtime onnx") from None
    except OSError as exc:  # the wheel is there, its CUDA libraries are not loadable
        raise RuntimeUnavailableError(
            f"TensorRT is installed but does not load ({str(exc).splitlines()[0] if str(exc) else exc!r}): "
            f"it needs an NVIDIA driver and CUDA libraries; {INSTALL_HINT}"
        ) from None


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise RuntimeUnavailableError(
            f"TensorRT needs a CUDA GPU and PyTorch sees none (torch {torch.__version__}, {build}): "
            f"{INSTALL_HINT}"
        )


def check_tensorrt() -> Any:
    """TensorRT and a CUDA GPU, both present, or RuntimeUnavailableError; returns `tensorrt`."""
    trt = _tensorrt()
    _require_cuda()
    return trt


def gpu_identity() -> dict[str, str]:
    """The GPU engines are built for: its name and compute capability (engines do not move
    between architectures)."""
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


# -- building engines ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts (min..max) and is tuned for (opt)."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(f"batch sizes must satisfy 1 <= min <= opt <= max (got {self.min}, {self.opt}, {self.max})")

    def shapes(self, rest: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        rest = tuple(int(r) for r in rest)
        return (self.min, *rest), (self.opt, *rest), (self.max, *rest)


#: The heads see one row per clip; a batch of videos has hundreds of clips.
HEADS_PROFILE = BatchProfile(1, 64, 4096)


@dataclass
class EngineManifest:
    model: str
    model_sha256: str | None
    tensorrt: str
    gpu: str
    compute_capability: str
    typing: str  # "weak" (FP32 graph + BuilderFlag.FP16) or "strong" (FP16 graph)
    in_dim: int
    heads: list[str]
    batch: dict[str, int]  # min, opt, max of the backbones
    heads_batch: dict[str, int]
    backbones: dict[str, str] = field(default_factory=dict)  # name -> engine file
    heads_engine: str = "heads.engine"
    precision: dict[str, str] = field(default_factory=dict)  # engine file -> fp16 / fp32
    opset: int = OPSET
    torch: str = torch.__version__

    @classmethod
    def read(cls, folder: Path) -> "EngineManifest":
        try:
            return cls(**json.loads((folder / MANIFEST).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{folder}: not a TensorRT export of a vqscope model ({exc})", str(folder)) from None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2))

    def check(self, folder: Path, model_id: str, model_sha256: str | None, tensorrt_version: str,
              compute_capability: str) -> None:
        """Refuse engines of another model, another TensorRT or another GPU architecture."""
        if self.model != model_id or (model_sha256 and self.model_sha256 and self.model_sha256 != model_sha256):
            raise ModelFileError(f"{folder}: built from {self.model}, not from this {model_id} file", str(folder))
        if self.tensorrt != tensorrt_version:
            raise ModelFileError(
                f"{folder}: engines built with TensorRT {self.tensorrt}, this is {tensorrt_version}: "
                "rebuild them with `vqscope export tensorrt`", str(folder))
        if self.compute_capability != compute_capability:
            raise ModelFileError(
                f"{folder}: engines built for compute capability {self.compute_capability} ({self.gpu}), this GPU "
                f"is {compute_capability}: rebuild them with `vqscope export tensorrt` on this machine", str(folder))


def weak_fp16_supported(trt: Any) -> bool:
    """TensorRT <= 10 has BuilderFlag.FP16; TensorRT 11 removed it (strong typing only)."""
    return hasattr(trt.BuilderFlag, "FP16")


def _major(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def _network_flags(trt: Any, strong: bool) -> int:
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if creation is None:
        return 0
    if _major(trt) < 10 and hasattr(creation, "EXPLICIT_BATCH"):
        flags |= 1 << int(creation.EXPLICIT_BATCH)  # implicit batch was the default before 10
    if strong and _major(trt) < 11 and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)  # the default (and only mode) from 11
    return flags


def build_engine(trt: Any, onnx_path: Path, engine_path: Path, input_rest: Sequence[int], profile: BatchProfile,
                 *, fp16_flag: bool, strong: bool, workspace: int = WORKSPACE_BYTES) -> Path:
    """Parse one ONNX file and write its serialized engine (input "x", batch per `profile`)."""
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except (RuntimeError, TypeError) as exc:
        raise RuntimeUnavailableError(f"TensorRT cannot start a builder, no usable CUDA GPU? ({exc})") from None
    if builder is None:
        raise RuntimeUnavailableError("TensorRT cannot start a builder: no usable CUDA GPU or driver")
    network = builder.create_network(_network_flags(trt, strong))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "unknown error"
        raise RuntimeUnavailableError(f"{onnx_path.name}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape("x", *profile.shapes(input_rest))
    config.add_optimization_profile(optimisation)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeUnavailableError(f"{onnx_path.name}: TensorRT could not build an engine (see its log above)")
    engine_path.write_bytes(bytes(serialized))
    return engine_path


class _Half(torch.nn.Module):
    """FP16 weights and arithmetic inside, FP32 in and out (for strongly typed TensorRT)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(module).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()


def export_fp16_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    """An ONNX file whose graph computes in FP16 between FP32 input and output."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(_Half(module).eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    return path


def export_tensorrt(model: "Model", folder: str | os.PathLike[str], *, batch: BatchProfile | None = None,
                    heads_batch: BatchProfile | None = None, model_sha256: str | None = None,
                    trt: Any = None, identity: Mapping[str, str] | None = None) -> Path:
    """Build FP16 engines of the model's learned backbones and FP32 heads into `folder`.

    `trt` and `identity` (GPU name and compute capability) default to the installed TensorRT
    and the current GPU; both must be present.
    """
    trt = trt if trt is not None else check_tensorrt()
    identity = dict(identity) if identity is not None else gpu_identity()
    batch = batch or BatchProfile()
    heads_batch = heads_batch or HEADS_PROFILE
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model_sha256 = model_sha256 or _model_sha256(model)
    onnx_dir = export_onnx(model, out / "onnx", model_sha256)
    onnx = json.loads((onnx_dir / MANIFEST).read_text())
    weak = weak_fp16_supported(trt)
    manifest = EngineManifest(
        model=model.id, model_sha256=model_sha256, tensorrt=str(trt.__version__), gpu=identity["gpu"],
        compute_capability=identity["compute_capability"], typing="weak" if weak else "strong",
        in_dim=int(onnx["in_dim"]), heads=list(onnx["heads"]), batch=asdict(batch), heads_batch=asdict(heads_batch),
    )
    for name, file in onnx["backbones"].items():
        example = _example_input(name, model)
        source = onnx_dir / file
        if not weak:
            (out / "onnx-fp16").mkdir(exist_ok=True)
            source = export_fp16_onnx(_Features(model.extractor.backbone(name)), example, out / "onnx-fp16" / file)
        engine = f"{name}.engine"
        build_engine(trt, source, out / engine, example.shape[1:], batch, fp16_flag=weak, strong=not weak)
        manifest.backbones[name] = engine
        manifest.precision[engine] = "fp16"
    build_engine(trt, onnx_dir / "heads.onnx", out / manifest.heads_engine, (manifest.in_dim,), heads_batch,
                 fp16_flag=False, strong=not weak)
    manifest.precision[manifest.heads_engine] = "fp32"
    manifest.write(out)
    return out


# -- running engines ------------------------------------------------------------------------------
def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32}
    for name, value in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return value
    raise RuntimeUnavailableError(f"engine tensor type {dtype} is not one vqscope feeds")


class TrtEngine:
    """One deserialized engine with input "x" and output "y"; runs CPU or CUDA tensors in
    chunks of at most `max_batch` rows and returns FP32 CPU tensors."""

    def __init__(self, trt: Any, path: Path, max_batch: int, runtime: Any = None):
        self.trt = trt
        self.max_batch = max(1, int(max_batch))
        self.runtime = runtime or trt.Runtime(trt.Logger(trt.Logger.WARNING))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read the engine ({exc.strerror or exc})", str(path)) from None
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise ModelFileError(f"{path}: TensorRT cannot load this engine (built by another version?)", str(path))
        self.context = self.engine.create_execution_context()
        self.in_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype("x"))
        self.out_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype("y"))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        stream = torch.cuda.current_stream()
        for chunk in x.split(self.max_batch):
            inp = chunk.to(device="cuda", dtype=self.in_dtype).contiguous()
            self.context.set_input_shape("x", tuple(inp.shape))
            out = torch.empty(tuple(self.context.get_tensor_shape("y")), dtype=self.out_dtype, device="cuda")
            self.context.set_tensor_address("x", inp.data_ptr())
            self.context.set_tensor_address("y", out.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeUnavailableError("TensorRT failed to run an engine (see its log above)")
            stream.synchronize()
            outputs.append(out.float().cpu())
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


class TrtBackbone:
    """Stands in for a PyTorch backbone in the feature extractor: `features(x) -> Tensor`."""

    def __init__(self, engine: TrtEngine):
        self.engine = engine

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.run(x)


def default_folder(model: "Model", model_sha256: str | None, tensorrt_version: str, compute_capability: str) -> Path:
    """Engines built on the fly live in the cache, one folder per model file, TensorRT and GPU."""
    key = model_sha256[:16] if model_sha256 else model.id.replace("@", "-")
    return (cache_dir().parent / "tensorrt" /
            f"{model.id.replace('@', '-')}-{key}-trt{tensorrt_version}-sm{compute_capability.replace('.', '')}")


def use_tensorrt(model: "Model", folder: str | os.PathLike[str] | None = None, *, trt: Any = None,
                 identity: Mapping[str, str] | None = None) -> "Model":
    """Switch `model` to TensorRT engines for its learned parts (building them first if no
    folder is given and the cache has none)."""
    trt = trt if trt is not None else check_tensorrt()  # before building anything
    identity = dict(identity) if identity is not None else gpu_identity()
    expected = _model_sha256(model)
    version = str(trt.__version__)
    target = Path(folder) if folder is not None else default_folder(model, expected, version,
                                                                    identity["compute_capability"])
    if not (target / MANIFEST).is_file():
        if folder is not None:
            raise ModelFileError(f"{target}: no {MANIFEST}; run `vqscope export tensorrt` first", str(target))
        export_tensorrt(model, target, model_sha256=expected, trt=trt, identity=identity)
    manifest = EngineManifest.read(target)
    manifest.check(target, model.id, expected, version, identity["compute_capability"])
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    for name, file in manifest.backbones.items():
        engine = TrtEngine(trt, target / file, manifest.batch["max"], runtime)
        model.extractor.replace_backbone(name, TrtBackbone(engine))
    heads = TrtEngine(trt, target / manifest.heads_engine, manifest.heads_batch["max"], runtime)

    def predict(matrix: np.ndarray) -> dict[str, np.ndarray]:
        y = heads.run(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))).numpy().astype(np.float64)
        return {h: y[:, i] for i, h in enumerate(manifest.heads)}

    model.head_runtime = predict
    model.runtime = "tensorrt"
    return model


__all__ = ["BatchProfile", "EngineManifest", "export_tensorrt", "use_tensorrt", "check_tensorrt",
           "export_fp16_onnx", "build_engine", "weak_fp16_supported"]
