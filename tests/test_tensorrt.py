"""TensorRT export and runtime, tested without a GPU.

This machine has neither TensorRT nor a CUDA GPU, so what is checked is vqscope's own
behaviour around them: the one-line errors (CLI exit code 25) where they are missing, which
ONNX Runtime execution providers are chosen, how engines are built (a recording stand-in for
the `tensorrt` module takes the builder, parser, flag and optimisation-profile calls and says
what a TensorRT 10 or 11 would have been asked), the FP16 ONNX graphs built for TensorRT 11
(real files, run here through ONNX Runtime), and the manifest that ties engines to a model
file, a TensorRT version and a GPU architecture. Running engines needs a GPU: see
bench/gpu_speed.py.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="the ONNX export needs onnx (pip install 'vqscope[onnx]')")

from vqscope.calibration import Calibration  # noqa: E402
from vqscope.cli import main  # noqa: E402
from vqscope.errors import ConfigError, ModelFileError, RuntimeUnavailableError  # noqa: E402
from vqscope.export import providers  # noqa: E402
from vqscope.export import tensorrt as trtmod  # noqa: E402
from vqscope.features import FeatureConfig  # noqa: E402
from vqscope.heads import HeadConfig, PredictionNetwork  # noqa: E402
from vqscope.model import Model, ModelInfo  # noqa: E402

IDENTITY = {"gpu": "NVIDIA H200", "compute_capability": "9.0"}


# -- a recording stand-in for the tensorrt module -------------------------------------------------
def fake_tensorrt(version: str, *, weak: bool, log: list) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    class BuilderFlag:
        pass

    if weak:
        BuilderFlag.FP16 = "FP16"

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 5

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    class DataType:
        FLOAT = "float32"
        HALF = "float16"

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            log.append(("profile", name, tuple(mn), tuple(opt), tuple(mx)))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            log.append(("workspace", pool, size))

        def set_flag(self, flag):
            log.append(("flag", flag))

        def add_optimization_profile(self, profile):
            log.append(("add_profile",))

    class Network:
        def __init__(self, flags):
            self.flags = flags

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            log.append(("parse", Path(path).parent.name + "/" + Path(path).name, self.network.flags))
            return Path(path).is_file()

        def get_error(self, i):
            return "missing"

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            log.append(("build",))
            return b"fake-engine"

    class Engine:
        def get_tensor_dtype(self, name):
            return DataType.FLOAT

        def create_execution_context(self):
            return object()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            log.append(("deserialize", data))
            return Engine() if data == b"fake-engine" else None

    for item in (Logger, BuilderFlag, NetworkDefinitionCreationFlag, MemoryPoolType, DataType, OnnxParser, Builder,
                 Runtime):
        setattr(trt, item.__name__, item)
    return trt


def small_model(seed: int) -> Model:
    torch.manual_seed(seed)
    features = FeatureConfig(spatial=("efficientnet_lite0_native", "frame_stats"), temporal=())
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(8,), heads=("overall",)))
    info = ModelInfo(f"trt-test-{seed}", 1, "test", training={"data": "none"}, card={"summary": "test"})
    return Model(info, features, network, Calibration.fit(np.linspace(20, 80, 50), "unit", "f" * 64))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trt-models")
    return [str(small_model(s).save(folder / f"trt-test-{s}-1.safetensors")) for s in (1, 2)]


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError


# -- missing TensorRT / GPU -----------------------------------------------------------------------
def test_cli_export_without_tensorrt_is_one_line_exit_25(no_tensorrt, tmp_path, capsys):
    out = tmp_path / "engines"
    assert main(["export", "tensorrt", "--out", str(out)]) == 25
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vqscope: error: TensorRT is not installed")
    assert "pip install tensorrt" in err and "NVIDIA GPU" in err and "Traceback" not in err
    assert not out.exists()  # nothing exported for a runtime that cannot run


def test_cli_score_with_tensorrt_runtime_without_tensorrt(no_tensorrt, video_factory, capsys):
    video = video_factory("trt.mp4", n=30)
    for extra in (["--runtime", "tensorrt"], ["--trt-dir", "somewhere"]):
        assert main(["score", video, "--no-progress", *extra]) == 25
        err = capsys.readouterr().err
        assert "TensorRT is not installed" in err and "pip install tensorrt" in err and err.count("\n") == 1


def test_tensorrt_without_a_cuda_gpu(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.9.0", weak=True, log=[]))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeUnavailableError, match="needs a CUDA GPU and PyTorch sees none"):
        trtmod.check_tensorrt()
    assert main(["export", "tensorrt", "--out", str(tmp_path / "e")]) == 25
    assert "CUDA GPU" in capsys.readouterr().err


def test_batch_profile_is_checked(capsys):
    with pytest.raises(ConfigError):
        trtmod.BatchProfile(4, 2, 8)
    assert trtmod.BatchProfile(1, 8, 32).shapes((3, 224, 224)) == ((1, 3, 224, 224), (8, 3, 224, 224),
                                                                     (32, 3, 224, 224))
    assert main(["export", "tensorrt", "--out", "x", "--min-batch", "0"]) == 2


# -- ONNX Runtime's providers -----------------------------------------------------------------------
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def test_provider_choice():
    assert providers.onnx_providers([CPU], tensorrt_present=False) == [CPU]
    assert providers.onnx_providers([CUDA, CPU], tensorrt_present=False) == [CUDA, CPU]
    # onnxruntime-gpu lists TensorRT even where its libraries are absent: not chosen then
    assert providers.onnx_providers([TRT, CUDA, CPU], tensorrt_present=False) == [CUDA, CPU]
    chosen = providers.onnx_providers([TRT, CUDA, CPU], tensorrt_present=True, engine_cache="/c")
    assert chosen[1:] == [CUDA, CPU] and chosen[0][0] == TRT
    assert chosen[0][1] == {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": "/c"}
    assert providers.onnx_providers([TRT, CUDA, CPU], tensorrt_present=True, wanted="cuda,cpu") == [CUDA, CPU]
    assert providers.onnx_providers([TRT, CUDA, CPU], tensorrt_present=True, wanted="cuda") == [CUDA]
    with pytest.raises(RuntimeUnavailableError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        providers.onnx_providers([CPU], tensorrt_present=False, wanted="cuda")
    with pytest.raises(RuntimeUnavailableError, match="TensorrtExecutionProvider"):
        providers.onnx_providers([TRT, CPU], tensorrt_present=False, wanted="tensorrt")
    with pytest.raises(ConfigError, match="unknown provider"):
        providers.onnx_providers([CPU], tensorrt_present=False, wanted="rocm")


def test_sessions_get_the_chosen_providers(monkeypatch, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from vqscope.export.onnx import _session

    path = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False)
    seen = {}
    real = ort.InferenceSession

    def spy(p, options, providers):
        seen["providers"] = providers
        return real(p, options, providers=[CPU])

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(providers, "tensorrt_libraries_present", lambda: True)
    monkeypatch.delenv(providers.PROVIDERS_ENV, raising=False)
    _session(path, 1)
    assert [p if isinstance(p, str) else p[0] for p in seen["providers"]] == [TRT, CUDA, CPU]
    assert seen["providers"][0][1]["trt_engine_cache_path"] == str(tmp_path / "ort-trt-cache")
    monkeypatch.setenv(providers.PROVIDERS_ENV, "cpu")
    _session(path, 1)
    assert seen["providers"] == [CPU]


# -- building engines ---------------------------------------------------------------------------------
def test_tensorrt10_builds_fp32_graphs_with_the_fp16_flag(saved, tmp_path):
    log: list = []
    trt = fake_tensorrt("10.9.0", weak=True, log=log)
    model = Model.load(saved[0])
    out = trtmod.export_tensorrt(model, tmp_path / "e10", batch=trtmod.BatchProfile(1, 4, 16), trt=trt,
                                 identity=IDENTITY)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == model.id and manifest["model_sha256"] and len(manifest["model_sha256"]) == 64
    assert manifest["tensorrt"] == "10.9.0" and manifest["compute_capability"] == "9.0"
    assert manifest["typing"] == "weak" and manifest["backbones"] == {
        "efficientnet_lite0_native": "efficientnet_lite0_native.engine"}
    assert manifest["precision"] == {"efficientnet_lite0_native.engine": "fp16", "heads.engine": "fp32"}
    assert (out / "efficientnet_lite0_native.engine").read_bytes() == b"fake-engine"
    parsed = [e for e in log if e[0] == "parse"]
    assert [p[1] for p in parsed] == ["onnx/efficientnet_lite0_native.onnx", "onnx/heads.onnx"]
    assert all(p[2] == 0 for p in parsed)  # explicit batch is the default from TensorRT 10
    # FP16 for the backbone only, then the heads in FP32
    builds = [i for i, e in enumerate(log) if e[0] == "build"]
    flags = [i for i, e in enumerate(log) if e == ("flag", "FP16")]
    assert len(builds) == 2 and len(flags) == 1 and flags[0] < builds[0]
    profiles = [e for e in log if e[0] == "profile"]
    assert profiles[0] == ("profile", "x", (1, 3, 224, 224), (4, 3, 224, 224), (16, 3, 224, 224))
    in_dim = manifest["in_dim"]
    assert profiles[1] == ("profile", "x", (1, in_dim), (64, in_dim), (4096, in_dim))
    assert ("workspace", "WORKSPACE", trtmod.WORKSPACE_BYTES) in log


def test_tensorrt11_builds_fp16_graphs_strongly_typed(saved, tmp_path):
    log: list = []
    trt = fake_tensorrt("11.4.0", weak=False, log=log)
    out = trtmod.export_tensorrt(Model.load(saved[0]), tmp_path / "e11", trt=trt, identity=IDENTITY)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["typing"] == "strong"
    assert [e[1] for e in log if e[0] == "parse"] == ["onnx-fp16/efficientnet_lite0_native.onnx", "onnx/heads.onnx"]
    assert not [e for e in log if e[0] == "flag"]  # no BuilderFlag.FP16 in TensorRT 11


def test_fp16_onnx_graph_is_fp16_inside_and_matches_fp32(saved, tmp_path):
    onnx = pytest.importorskip("onnx")
    from vqscope.export.onnx import _example_input, _Features

    model = Model.load(saved[0])
    module = _Features(model.extractor.backbone("efficientnet_lite0_native"))
    path = trtmod.export_fp16_onnx(module, _example_input("efficientnet_lite0_native", model), tmp_path / "b.onnx")
    graph = onnx.load(str(path)).graph
    FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert graph.input[0].type.tensor_type.elem_type == FLOAT and graph.output[0].type.tensor_type.elem_type == FLOAT
    weights = [t for t in graph.initializer if len(t.dims) >= 2]
    assert weights and all(t.data_type == FLOAT16 for t in weights)
    ort = pytest.importorskip("onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # an ONNX Runtime without FP16 kernels on the CPU
        pytest.skip(f"ONNX Runtime cannot run FP16 graphs on this CPU: {exc}")
    x = torch.rand(3, 3, 224, 224)
    y16 = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        y32 = module(x).numpy()
    assert y16.shape == y32.shape == (3, y32.shape[1])
    assert np.abs(y16 - y32).max() < 0.05 * np.abs(y32).max()


# -- the manifest ties engines to a model, a TensorRT and a GPU ---------------------------------------
def test_use_tensorrt_checks_the_manifest(saved, tmp_path, monkeypatch):
    log: list = []
    trt = fake_tensorrt("10.9.0", weak=True, log=log)
    monkeypatch.setattr(trtmod, "_require_cuda", lambda: None)
    out = trtmod.export_tensorrt(Model.load(saved[0]), tmp_path / "e", trt=trt, identity=IDENTITY)

    model = trtmod.use_tensorrt(Model.load(saved[0]), out, trt=trt, identity=IDENTITY)
    assert model.runtime == "tensorrt" and model.head_runtime is not None
    runner = model.extractor.backbone("efficientnet_lite0_native")
    assert isinstance(runner, trtmod.TrtBackbone) and runner.engine.max_batch == 32
    assert isinstance(model.extractor.backbone("frame_stats"), torch.nn.Module)  # stays in PyTorch
    assert [e for e in log if e[0] == "deserialize"]

    with pytest.raises(ModelFileError, match="built from trt-test-1@1, not from this trt-test-2@1"):
        trtmod.use_tensorrt(Model.load(saved[1]), out, trt=trt, identity=IDENTITY)
    with pytest.raises(ModelFileError, match="TensorRT 10.9.0, this is 10.10.0: rebuild"):
        trtmod.use_tensorrt(Model.load(saved[0]), out, trt=fake_tensorrt("10.10.0", weak=True, log=[]),
                            identity=IDENTITY)
    with pytest.raises(ModelFileError, match="compute capability 9.0 .NVIDIA H200., this GPU is 8.9"):
        trtmod.use_tensorrt(Model.load(saved[0]), out, trt=trt, identity={"gpu": "L4", "compute_capability": "8.9"})
    with pytest.raises(ModelFileError, match="run `vqscope export tensorrt` first"):
        trtmod.use_tensorrt(Model.load(saved[0]), tmp_path / "nothing", trt=trt, identity=IDENTITY)
    (out / "heads.engine").write_bytes(b"damaged")
    with pytest.raises(ModelFileError, match="cannot load this engine"):
        trtmod.use_tensorrt(Model.load(saved[0]), out, trt=trt, identity=IDENTITY)


def test_use_tensorrt_builds_into_the_cache_once(saved, tmp_path, monkeypatch):
    log: list = []
    trt = fake_tensorrt("10.9.0", weak=True, log=log)
    monkeypatch.setenv("VQSCOPE_CACHE_DIR", str(tmp_path / "cache" / "weights"))
    trtmod.use_tensorrt(Model.load(saved[0]), trt=trt, identity=IDENTITY)
    folders = list((tmp_path / "cache" / "tensorrt").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("trt-test-1-1-") and folders[0].name.endswith(
        "-trt10.9.0-sm90")
    builds = sum(1 for e in log if e[0] == "build")
    trtmod.use_tensorrt(Model.load(saved[0]), trt=trt, identity=IDENTITY)
    assert sum(1 for e in log if e[0] == "build") == builds  # reused, not rebuilt
