"""ONNX export of a model, and scoring through ONNX Runtime.

What is exported: every backbone with learned weights (its input is always a fixed-size crop,
so only the batch dimension is dynamic), the prediction network (all heads, one output column
each), and every weight-free statistics backbone whose torch code ONNX can express. Each
statistics backbone is tried with `torch.onnx.export` (batch, height and width dynamic) and
kept only if ONNX Runtime then matches PyTorch on probe inputs of other sizes and contents
than the one traced: tracing freezes data-dependent steps (a median read with `.item()`, an
argmin turned into a Python index) into constants, which such a check exposes.

The statistics backbones of the shipped models do not pass (measured with torch 2.13, opset
17): their torch code uses operators ONNX has no export for (`aten::diff`, `aten::bincount`,
`aten::fft_fftfreq`, `aten::quantile`, `aten::median`), and the data-dependent steps would
not survive tracing anyway. They keep running in PyTorch, so an export of such a model is not
standalone: `vqscope score --onnx-dir` runs it (ONNX for the learned parts, PyTorch for the
statistics), a bare ONNX runtime cannot. The manifest says so (`standalone`, `statement`, and
per backbone `in_torch`: why), so does `vqscope export onnx`, and `--standalone` turns it
into an error before anything is written, never a silent partial model.

Decoding, the clip plan, frame preparation (`inputs` in the manifest) and calibration stay
in vqscope, so an ONNX model produces the same result contract and, within float tolerance,
the same scores.

An export is a folder: one `.onnx` file per exported backbone, `heads.onnx`, and
`manifest.json` naming the model it came from (id and file hash), so a folder is never used
with another model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
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
PARITY_ATOL = 1e-3  # |ONNX - PyTorch| allowed on a statistics backbone's probe inputs


@dataclass
class OnnxManifest:
    model: str
    model_sha256: str | None
    opset: int
    torch: str
    in_dim: int
    heads: list[str]
    backbones: dict[str, str] = field(default_factory=dict)  # learned: name -> file in the folder
    statistics: dict[str, str] = field(default_factory=dict)  # weight-free, exported: name -> file
    in_torch: dict[str, str] = field(default_factory=dict)  # weight-free, not exported: name -> why
    standalone: bool = True  # every backbone and the heads are ONNX files of this folder
    statement: str = ""  # one line: what runs where
    layout: list[list] = field(default_factory=list)  # [block, width] of the heads' input, in order
    inputs: dict[str, dict] = field(default_factory=dict)  # backbone -> the frames it reads (FrameInput)

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


# -- weight-free statistics backbones ---------------------------------------------------------
@contextlib.contextmanager
def _quiet_output():
    """Silence file descriptors 1 and 2 (the exporter logs a whole graph to stdout, from C++,
    when an operator has no ONNX export: an expected outcome here, reported in one line)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    saved: list[tuple[int, int]] = []
    try:
        with open(os.devnull, "w") as devnull:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(devnull.fileno(), fd)
                except OSError:  # no such descriptor (embedded): nothing to silence
                    pass
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _probe_inputs(name: str, model: "Model") -> list[torch.Tensor]:
    """Inputs of the sizes a statistics backbone meets (a full crop, a smaller video's crop or
    window), of 8-bit values with structure and noise, one bright, one dark: the first is
    traced, the other checks that nothing of the first (its size, its levels) was frozen into
    the graph."""
    spec = get_backbone_spec(name)
    channels = 1 if spec.frame_input.color == "luma" else 3
    generator = torch.Generator().manual_seed(0)
    if spec.role == "spatial":
        side = spec.frame_input.crop or 384
        shapes = [(1, channels, side, side), (2, channels, side // 2 + 8, side // 3 + 16)]
    else:
        frames, short = model.features.clip_plan.window_frames, spec.frame_input.short_side or 144
        shapes = [(1, frames, short, short * 16 // 9), (2, frames, short, short * 4 // 3)]
    out = []
    for shape, (low, high) in zip(shapes, ((0.1, 0.8), (0.02, 0.4))):  # a bright and a dark picture
        ramp = torch.linspace(low, high, shape[-1]).expand(*shape)
        noise = torch.rand(*shape, generator=generator) * 0.2
        out.append(((ramp + noise).clamp(0, 1) * 255).round() / 255)
    return out


def _export_statistics(name: str, model: "Model") -> tuple[bytes | None, str]:
    """(ONNX bytes, "") where the backbone exports and matches PyTorch, else (None, why)."""
    module = _Features(model.extractor.backbone(name)).eval()
    probes = _probe_inputs(name, model)
    axes = {0: "batch", 2: "height", 3: "width"}  # [N, C, H, W] crops and [N, T, H, W] windows alike
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_output():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (probes[0],), buffer, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": axes, "y": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the exporter's many error types; all mean "not expressible here"
        return None, _why_not(exc)
    try:
        _onnxruntime()
    except RuntimeUnavailableError:
        return None, "ONNX Runtime is not installed to check the exported graph against PyTorch"
    gap = _parity_gap(buffer.getvalue(), module, probes)
    if gap is None or gap > PARITY_ATOL:
        shown = "fails to run" if gap is None else f"differs by up to {gap:.3g}"
        return None, f"the traced graph {shown} from PyTorch on inputs other than the traced one"
    return buffer.getvalue(), ""


def _why_not(exc: Exception) -> str:
    """One line: the operator ONNX cannot express, or the exporter's first line."""
    text = str(exc)
    m = re.search(r"operator '([\w:.]+)' to ONNX opset version (\d+)", text)
    if m:
        return f"its torch code uses {m.group(1)}, which has no ONNX export at opset {m.group(2)}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"torch.onnx.export failed: {type(exc).__name__}: {first[:200]}"


def _parity_gap(data: bytes, module: torch.nn.Module, probes: list[torch.Tensor]) -> float | None:
    """Largest |ONNX Runtime - PyTorch| over the probes (None: the graph does not run)."""
    ort = _onnxruntime()
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        gap = 0.0
        with torch.no_grad():
            for x in probes:
                y = session.run(None, {"x": x.numpy()})[0]
                gap = max(gap, float(np.nanmax(np.abs(y - module(x).numpy()))))
        return gap
    except Exception:  # a graph that loads but cannot run these shapes
        return None


def _statement(model: "Model", in_torch: dict[str, str]) -> str:
    if not in_torch:
        return f"standalone: every backbone of {model.id} and its heads are ONNX files of this folder"
    return (f"not standalone: {', '.join(in_torch)} of {model.id} cannot be exported to ONNX (see in_torch) and run "
            f"in PyTorch: `vqscope score --onnx-dir` runs this folder, a bare ONNX runtime cannot")


def export_onnx(
    model: "Model", folder: str | os.PathLike[str], model_sha256: str | None = None, *, standalone: bool = False
) -> Path:
    """Write the model's backbones (learned ones always, statistics ones where ONNX can express
    them) and its heads as ONNX files; returns the folder. `standalone`: refuse, before writing
    anything, a model of which some part would stay in PyTorch (RuntimeUnavailableError)."""
    manifest = OnnxManifest(model=model.id, model_sha256=model_sha256 or _model_sha256(model),
                            opset=OPSET, torch=torch.__version__, in_dim=model.network.config.in_dim,
                            heads=model.network.output_names,
                            layout=[[n, w] for n, w in model.features.layout],
                            inputs={n: asdict(get_backbone_spec(n).frame_input)
                                    for n in model.features.spatial + model.features.temporal})
    learned = _learned(model)
    exported: dict[str, bytes] = {}
    for name in (n for n in model.features.spatial + model.features.temporal if n not in learned):
        data, why = _export_statistics(name, model)
        if data is None:
            manifest.in_torch[name] = why
        else:
            exported[name] = data
    manifest.standalone = not manifest.in_torch
    manifest.statement = _statement(model, manifest.in_torch)
    if standalone and manifest.in_torch:
        name, why = next(iter(manifest.in_torch.items()))
        raise RuntimeUnavailableError(f"{model.id} cannot be exported as a standalone ONNX model: {name}: {why}"
                                      + (f" (and {len(manifest.in_torch) - 1} more)" if len(manifest.in_torch) > 1 else ""))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in learned:
        _export(_Features(model.extractor.backbone(name)), _example_input(name, model), out / f"{name}.onnx")
        manifest.backbones[name] = f"{name}.onnx"
    for name, data in exported.items():
        (out / f"{name}.onnx").write_bytes(data)
        manifest.statistics[name] = f"{name}.onnx"
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
    from .providers import session_providers  # TensorRT, then CUDA where onnxruntime-gpu offers them, then CPU

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
    for name, file in {**manifest.backbones, **manifest.statistics}.items():
        model.extractor.replace_backbone(name, OnnxBackbone(target / file, threads))
    heads = _session(target / "heads.onnx", threads)

    def predict(matrix: np.ndarray) -> dict[str, np.ndarray]:
        y = heads.run(None, {"x": np.ascontiguousarray(matrix, dtype=np.float32)})[0].astype(np.float64)
        return {h: y[:, i] for i, h in enumerate(manifest.heads)}

    model.head_runtime = predict
    model.runtime = "onnx"
    return model
