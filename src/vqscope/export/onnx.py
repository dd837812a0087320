"""ONNX export of a model's learned parts, and scoring through ONNX Runtime.

What is exported: every backbone with learned weights (its input is always a fixed-size crop,
so only the batch dimension is dynamic) and the prediction network (all heads, one output
column each). What stays in PyTorch: the weight-free statistics backbones (frame_stats,
motion_stats), which are a few milliseconds of tensor arithmetic, not a network a runtime
could speed up. Decoding, the clip plan and calibration do not change, so an ONNX model
produces the same result contract and, within float tolerance, the same scores.

An export is a folder: one `.onnx` file per backbone, `heads.onnx`, and `manifest.json`
naming the model it came from (id and file hash), so a folder is never used with another model.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..backbones import get_backbone_spec
from ..backbones.weights import cache_dir
from ..errors import ModelFileError, RuntimeUnavailableError
from ..hashing import file_sha256

if TYPE_CHECKING:
    from ..model import Model

OPSET = 17
MANIFEST = "manifest.json"


@dataclass
class OnnxManifest:
    model: str
    model_sha256: str | None
    opset: int
    torch: str
    in_dim: int
    heads: list[str]
    backbones: dict[str, str] = field(default_factory=dict)  # name -> file in the folder

    @classmethod
    def read(cls, folder: Path) -> "OnnxManifest":
        try:
            return cls(**json.loads((folder / MANIFEST).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{folder}: not an ONNX export of a vqscope model ({exc})", str(folder)) from None


def _learned(model: "Model") -> list[str]:
    return [n for n in model.features.spatial + model.features.temporal if get_backbone_spec(n).weights is not None]


def _example_input(name: str, model: "Model") -> torch.Tensor:
    spec = get_backbone_spec(name)
    side = spec.frame_input.crop
    if not side:
        raise RuntimeUnavailableError(f"backbone {name!r} takes variable-size input; it cannot be exported")
    channels = 1 if spec.frame_input.color == "luma" else 3
    if spec.role == "spatial":
        return torch.zeros(1, channels, side, side)
    return torch.zeros(1, channels, model.features.clip_plan.window_frames, side, side)


class _Features(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(x)


class _Heads(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, heads: Sequence[str]):
        super().__init__()
        self.network, self.heads = network, list(heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x, heads=self.heads)
        return torch.stack([out[h] for h in self.heads], dim=1)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    # The tracer warns that shape arithmetic (TensorFlow "same" padding) becomes constant: that
    # is intended, since every backbone input has the fixed crop size the example has.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=OPSET, dynamo=False)


def _model_sha256(model: "Model") -> str | None:
    return file_sha256(model.path) if model.path else None


def export_onnx(model: "Model", folder: str | os.PathLike[str], model_sha256: str | None = None) -> Path:
    """Write the model's learned backbones and its heads as ONNX files; returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    manifest = OnnxManifest(model=model.id, model_sha256=model_sha256 or _model_sha256(model),
                            opset=OPSET, torch=torch.__version__, in_dim=model.network.config.in_dim,
                            heads=model.network.output_names)
    for name in _learned(model):
        _export(_Features(model.extractor.backbone(name)), _example_input(name, model), out / f"{name}.onnx")
        manifest.backbones[name] = f"{name}.onnx"
    _export(_Heads(model.network, manifest.heads), torch.zeros(2, manifest.in_dim), out / "heads.onnx")
    (out / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
    return out


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeUnavailableError("ONNX Runtime is not installed: pip install 'vqscope[onnx]'") from None
    return onnxruntime


def _session(path: Path, threads: int | None):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    from .tensorrt import session_providers  # TensorRT, then CUDA where onnxruntime-gpu offers them, then CPU

    return ort.InferenceSession(str(path), options, providers=session_providers(ort, Path(path)))


class OnnxBackbone:
    """Stands in for a PyTorch backbone in the feature extractor: `features(x) -> Tensor`."""

    def __init__(self, path: Path, threads: int | None = None):
        self.session = _session(path, threads)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {"x": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(y)


def default_folder(model: "Model", model_sha256: str | None) -> Path:
    """Exports made on the fly live in the cache, one folder per model file content."""
    key = model_sha256[:16] if model_sha256 else model.id.replace("@", "-")
    return cache_dir().parent / "onnx" / f"{model.id.replace('@', '-')}-{key}"


def use_onnx(model: "Model", folder: str | os.PathLike[str] | None = None, threads: int | None = None) -> "Model":
    """Switch `model` to ONNX Runtime for its learned parts (exporting first if needed)."""
    _onnxruntime()  # before exporting anything: an export nobody can run is wasted
    expected = _model_sha256(model)
    target = Path(folder) if folder is not None else default_folder(model, expected)
    if not (target / MANIFEST).is_file():
        if folder is not None:
            raise ModelFileError(f"{target}: no {MANIFEST}; run `vqscope export onnx` first", str(target))
        export_onnx(model, target, expected)
    manifest = OnnxManifest.read(target)
    if manifest.model != model.id or (expected and manifest.model_sha256 and manifest.model_sha256 != expected):
        raise ModelFileError(f"{target}: exported from {manifest.model}, not from this {model.id} file", str(target))
    threads = threads or model.extractor.torch_threads
    for name, file in manifest.backbones.items():
        model.extractor.replace_backbone(name, OnnxBackbone(target / file, threads))
    heads = _session(target / "heads.onnx", threads)

    def predict(matrix: np.ndarray) -> dict[str, np.ndarray]:
        y = heads.run(None, {"x": np.ascontiguousarray(matrix, dtype=np.float32)})[0].astype(np.float64)
        return {h: y[:, i] for i, h in enumerate(manifest.heads)}

    model.head_runtime = predict
    model.runtime = "onnx"
    return model
