"""Checkpoint layouts of the optional backbones (MobileNetV2, X3D-XS/S/M).

Each architecture must load its official checkpoint strictly, so the tests prove that a
checkpoint written in the official format loads and computes what the official code
computes:

* X3D: against pytorchvideo itself (the `test` extra pins it). Its hub builders make the
  official model, whose state dict is saved the way the model zoo's .pyth files wrap it
  ({"model_state": ...}), loaded through `create_backbone`, and compared numerically.
* MobileNetV2: torchvision does not import with every CPU build of torch, so the layout is
  spelled out below as literal (key, shape) pairs from torchvision's
  `torchvision.models.mobilenet_v2` (torchvision 0.28, `MobileNetV2().state_dict()`), with
  its documented parameter count. Where torchvision does import, the model is also compared
  with it numerically.

Inputs are small (64 px, 4-8 frames) so the file runs in seconds on two cores.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
import warnings

import pytest
import torch
from torch import nn

from vqscope.backbones import create_backbone, fuse_conv_bn, get_backbone_spec
from vqscope.backbones.efficientnet_lite import mean_std_pool
from vqscope.backbones.weights import Weights, WeightsEnum
from vqscope.errors import WeightsError

X3D_NAMES = ("x3d_xs", "x3d_s", "x3d_m")
ALL_NAMES = ("mobilenet_v2",) + X3D_NAMES


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The inputs are tiny: a second thread buys nothing, and on a busy two-core machine
    # its synchronisation makes every convolution many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturb(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, and every
    parameter random values, so that a wrongly ordered or missing layer shows in the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
                m.num_batches_tracked.fill_(1000)
    return model.eval()


@functools.lru_cache(maxsize=None)
def _random_model(name: str) -> nn.Module:
    """A randomly initialised, BN-perturbed model per backbone, built once for the file.
    Shared between tests: read it, never modify it."""
    return _perturb(create_backbone(name, weights=None))


def _image(n: int = 2, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size)


def _clip(n: int = 2, frames: int = 6, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, frames, size, size)


def _input_for(name: str) -> torch.Tensor:
    return _image() if name == "mobilenet_v2" else _clip()


def _assert_close(got: torch.Tensor, want: torch.Tensor, atol: float = 0.0, rtol: float = 0.0) -> None:
    """|got - want| <= atol + rtol * |want| everywhere (torch.testing costs half a second to import)."""
    assert got.shape == want.shape, (got.shape, want.shape)
    err = (got - want).abs()
    ok = bool((err <= atol + rtol * want.abs()).all())
    assert ok, f"max abs error {err.max().item():.3g} (max |want| {want.abs().max().item():.3g})"


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def _sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# --- MobileNetV2: torchvision's layout -----------------------------------------------------

# From torchvision.models.mobilenet_v2 (torchvision 0.28.0): MobileNetV2().state_dict(),
# the first 19 and the last 14 entries in order, and a few between. BatchNorm entries come in fives
# (weight, bias, running_mean, running_var, num_batches_tracked).
def _bn_entries(prefix: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight", (n,)),
        (f"{prefix}.bias", (n,)),
        (f"{prefix}.running_mean", (n,)),
        (f"{prefix}.running_var", (n,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


MOBILENET_V2_HEAD = [
    ("features.0.0.weight", (32, 3, 3, 3)),
    *_bn_entries("features.0.1", 32),
    ("features.1.conv.0.0.weight", (32, 1, 3, 3)),
    *_bn_entries("features.1.conv.0.1", 32),
    ("features.1.conv.1.weight", (16, 32, 1, 1)),
    *_bn_entries("features.1.conv.2", 16),
    ("features.2.conv.0.0.weight", (96, 16, 1, 1)),
]
MOBILENET_V2_SOME = [
    ("features.2.conv.1.0.weight", (96, 1, 3, 3)),
    ("features.2.conv.2.weight", (24, 96, 1, 1)),
    ("features.2.conv.3.weight", (24,)),
    ("features.4.conv.1.0.weight", (144, 1, 3, 3)),
    ("features.7.conv.0.0.weight", (192, 32, 1, 1)),
    ("features.14.conv.1.0.weight", (576, 1, 3, 3)),
    ("features.14.conv.2.weight", (160, 576, 1, 1)),
    ("features.17.conv.0.0.weight", (960, 160, 1, 1)),
]
MOBILENET_V2_TAIL = [
    ("features.17.conv.2.weight", (320, 960, 1, 1)),
    *_bn_entries("features.17.conv.3", 320),
    ("features.18.0.weight", (1280, 320, 1, 1)),
    *_bn_entries("features.18.1", 1280),
    ("classifier.1.weight", (1000, 1280)),
    ("classifier.1.bias", (1000,)),
]
MOBILENET_V2_NUM_KEYS = 314  # len(torchvision's MobileNetV2().state_dict())
MOBILENET_V2_NUM_PARAMS = 3504872  # torchvision's MobileNet_V2_Weights meta["num_params"]


def test_mobilenet_v2_state_dict_is_torchvisions():
    model = create_backbone("mobilenet_v2", weights=None)
    entries = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert len(entries) == MOBILENET_V2_NUM_KEYS
    assert entries[: len(MOBILENET_V2_HEAD)] == MOBILENET_V2_HEAD
    assert entries[-len(MOBILENET_V2_TAIL) :] == MOBILENET_V2_TAIL
    shapes = dict(entries)
    for key, shape in MOBILENET_V2_SOME:
        assert shapes.get(key) == shape, key
    assert sum(p.numel() for p in model.parameters()) == MOBILENET_V2_NUM_PARAMS
    # 17 inverted residuals between the stem and the 1x1 head conv.
    assert {k.split(".")[1] for k in shapes if k.startswith("features.")} == {str(i) for i in range(19)}


def test_mobilenet_v2_loads_a_checkpoint_in_torchvisions_format(tmp_path):
    # torchvision's .pth files are a bare state dict.
    ref = _random_model("mobilenet_v2")
    path = _save(ref.state_dict(), tmp_path / "mobilenet_v2-0123abcd.pth")
    model = create_backbone("mobilenet_v2", weights=path)
    assert model.weights_id == path and not model.training
    x = _image()
    with torch.no_grad():
        _assert_close(model(x), ref(x), rtol=0, atol=0)


def test_mobilenet_v2_outputs():
    model = _random_model("mobilenet_v2")
    x = _image(size=70)  # not a multiple of 32
    with torch.no_grad():
        fmap = model.feature_map(x)
        feats = model.features(x)
        logits = model(x)
    assert fmap.shape == (2, 1280, 3, 3)
    assert feats.shape == (2, get_backbone_spec("mobilenet_v2").feature_dim) == (2, 2560)
    _assert_close(feats, mean_std_pool(fmap), atol=1e-5, rtol=1e-5)
    assert logits.shape == (2, 1000)
    _assert_close(logits, model.classifier(fmap.mean(dim=(2, 3))), atol=1e-5, rtol=1e-5)


def test_mobilenet_v2_matches_torchvision_where_it_imports(tmp_path):
    try:
        from torchvision.models import mobilenet_v2 as tv_mobilenet_v2
    except Exception as exc:  # absent, or its compiled operators do not fit this torch
        pytest.skip(f"torchvision not usable here ({type(exc).__name__})")
    ref = _perturb(tv_mobilenet_v2(weights=None))
    path = _save(ref.state_dict(), tmp_path / "tv.pth")
    model = create_backbone("mobilenet_v2", weights=path)
    x = _image(size=96)
    with torch.no_grad():
        _assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)


# --- X3D: pytorchvideo's layout ------------------------------------------------------------

# From pytorchvideo.models.hub.x3d_s(): state_dict(), first and last entries. The same
# layout serves XS, S and M (the hub builders differ only in clip length and crop size).
X3D_HEAD = [
    ("blocks.0.conv.conv_t.weight", (24, 3, 1, 3, 3)),
    ("blocks.0.conv.conv_xy.weight", (24, 1, 5, 1, 1)),
    *_bn_entries("blocks.0.norm", 24),
    ("blocks.1.res_blocks.0.branch1_conv.weight", (24, 24, 1, 1, 1)),
    ("blocks.1.res_blocks.0.branch2.conv_a.weight", (54, 24, 1, 1, 1)),
    *_bn_entries("blocks.1.res_blocks.0.branch2.norm_a", 54),
    ("blocks.1.res_blocks.0.branch2.conv_b.weight", (54, 1, 3, 3, 3)),
    *_bn_entries("blocks.1.res_blocks.0.branch2.norm_b.0", 54),
    ("blocks.1.res_blocks.0.branch2.norm_b.1.block.0.weight", (8, 54, 1, 1, 1)),
    ("blocks.1.res_blocks.0.branch2.norm_b.1.block.0.bias", (8,)),
    ("blocks.1.res_blocks.0.branch2.norm_b.1.block.2.weight", (54, 8, 1, 1, 1)),
    ("blocks.1.res_blocks.0.branch2.norm_b.1.block.2.bias", (54,)),
    ("blocks.1.res_blocks.0.branch2.conv_c.weight", (24, 54, 1, 1, 1)),
]
X3D_SOME = [
    ("blocks.2.res_blocks.0.branch1_norm.weight", (48,)),
    ("blocks.3.res_blocks.10.branch2.norm_b.1.block.0.weight", (16, 216, 1, 1, 1)),
    ("blocks.4.res_blocks.0.branch1_conv.weight", (192, 96, 1, 1, 1)),
    ("blocks.4.res_blocks.6.branch2.norm_b.1.block.0.weight", (32, 432, 1, 1, 1)),
]
X3D_TAIL = [
    ("blocks.4.res_blocks.6.branch2.conv_c.weight", (192, 432, 1, 1, 1)),
    *_bn_entries("blocks.4.res_blocks.6.branch2.norm_c", 192),
    ("blocks.5.pool.pre_conv.weight", (432, 192, 1, 1, 1)),
    *_bn_entries("blocks.5.pool.pre_norm", 432),
    ("blocks.5.pool.post_conv.weight", (2048, 432, 1, 1, 1)),
    ("blocks.5.proj.weight", (400, 2048)),
    ("blocks.5.proj.bias", (400,)),
]
X3D_NUM_KEYS = 563
X3D_NUM_PARAMS = 3794274  # pytorchvideo model zoo: 3.79 M


@pytest.mark.parametrize("name", X3D_NAMES)
def test_x3d_state_dict_is_pytorchvideos(name):
    model = _random_model(name)
    entries = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    keys = {k for k, _ in entries}
    assert len(entries) == X3D_NUM_KEYS
    assert entries[: len(X3D_HEAD)] == X3D_HEAD
    assert entries[-len(X3D_TAIL) :] == X3D_TAIL
    shapes = dict(entries)
    for key, shape in X3D_SOME:
        assert shapes.get(key) == shape, key
    assert sum(p.numel() for p in model.parameters()) == X3D_NUM_PARAMS
    # Stages of 3, 5, 11, 7 blocks; squeeze-excitation in blocks 0, 2, 4, ... of each.
    for stage, depth in zip((1, 2, 3, 4), (3, 5, 11, 7)):
        blocks = {int(k.split(".")[3]) for k in keys if k.startswith(f"blocks.{stage}.res_blocks.")}
        assert blocks == set(range(depth))
        with_se = {b for b in blocks if f"blocks.{stage}.res_blocks.{b}.branch2.norm_b.1.block.0.weight" in keys}
        assert with_se == set(range(0, depth, 2))
    # No norm on the first stage's shortcut (its width does not change), norms on the others.
    assert "blocks.1.res_blocks.0.branch1_norm.weight" not in keys
    assert not any(k.startswith("blocks.5.pool.post_norm") for k in keys)


@pytest.fixture(scope="module")
def pv_hub():
    """pytorchvideo's hub builders, or a skip where pytorchvideo is not installed."""
    pytest.importorskip("pytorchvideo")
    saved = {k: sys.modules[k] for k in ("torchvision", "torchvision.ops") if k in sys.modules}
    stubbed = False
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        # pytorchvideo.models imports torchvision.ops.RoIAlign at import time, for its
        # detection heads only. Where torchvision is absent or cannot load its operators,
        # a stand-in lets the X3D builders import; nothing X3D builds touches it.
        tv = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (nn.Module,), {})
        tv.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
        stubbed = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fvcore's torch.jit.script at import
            from pytorchvideo.models import hub
    finally:
        if stubbed:
            for k in ("torchvision", "torchvision.ops"):
                sys.modules.pop(k, None)
            sys.modules.update(saved)
    return hub


def _official_x3d(hub, name: str) -> nn.Module:
    """pytorchvideo's model exactly as its hub builds it, random weights, perturbed BNs."""
    return _perturb(getattr(hub, name)(pretrained=False), seed=len(name))


def _logits_of(official: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pytorchvideo's head ends in a softmax; run it without, to compare logits."""
    head = official.blocks[5]
    activation, head.activation = head.activation, None
    try:
        with torch.no_grad():
            return official(x)
    finally:
        head.activation = activation


def test_x3d_xs_matches_pytorchvideo_on_its_own_clip_size(pv_hub, tmp_path):
    # The untouched official model, at the clip size it was built for (4 x 160 x 160), where
    # its fixed AvgPool3d covers the whole map exactly as our adaptive pooling does.
    official = _official_x3d(pv_hub, "x3d_xs")
    path = _save({"model_state": official.state_dict()}, tmp_path / "X3D_XS.pyth")
    model = create_backbone("x3d_xs", weights=path)
    x = _clip(n=1, frames=4, size=160)
    with torch.no_grad():
        probs = official(x)
        logits = model(x)
    _assert_close(logits.softmax(dim=1), probs, rtol=1e-4, atol=1e-6)
    _assert_close(logits, _logits_of(official, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", X3D_NAMES)
def test_x3d_loads_pytorchvideo_checkpoint_and_matches(pv_hub, tmp_path, name):
    official = _official_x3d(pv_hub, name)
    official_sd = official.state_dict()
    path = _save({"model_state": official_sd}, tmp_path / f"{name.upper()}.pyth")
    model = create_backbone(name, weights=path)
    ours_sd = model.state_dict()
    assert list(ours_sd) == list(official_sd)
    for key, value in official_sd.items():
        assert torch.equal(ours_sd[key], value), key

    # Small clips: give the official head the adaptive pooling that create_x3d itself builds
    # when no pool size is given (no parameters; the state dict is unchanged).
    official.blocks[5].pool.pool = nn.AdaptiveAvgPool3d(1)
    x = _clip(n=1, frames=6, size=64)
    with torch.no_grad():
        _assert_close(model(x), _logits_of(official, x), rtol=1e-4, atol=1e-5)
        stages = x
        for block in official.blocks[:5]:
            stages = block(stages)
        embedding = official.blocks[5].pool(stages).flatten(1)
        _assert_close(model.features(x), embedding, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("frames,height,width", [(32, 48, 40), (1, 33, 65), (8, 64, 64)])
def test_x3d_takes_clips_of_any_size(frames, height, width):
    model = _random_model("x3d_s")
    x = torch.randn(2, 3, frames, height, width)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    assert feats.shape == (2, 2048) and logits.shape == (2, 400)
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # after the head's ReLU
    _assert_close(logits, model.blocks[5].proj(feats), atol=1e-5, rtol=1e-5)


# --- Weights sources and failures ----------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("VQSCOPE_CACHE_DIR", str(directory))
    return directory


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("name", ["mobilenet_v2", "x3d_s"])
def test_file_url_with_right_hash_lands_in_cache(tmp_path, cache, name):
    ref = _random_model(name)
    sd = ref.state_dict()
    fname = "mnv2.pth" if name == "mobilenet_v2" else "X3D_S.pyth"
    src = tmp_path / "src"
    src.mkdir()
    path = _save(sd if name == "mobilenet_v2" else {"model_state": sd}, src / fname)
    digest = _sha256(path)
    model = create_backbone(name, weights=(src / fname).as_uri(), sha256=digest)
    assert _files(cache) == [fname, fname + ".sha256"]
    assert (cache / (fname + ".sha256")).read_text().strip() == digest
    x = _input_for(name)
    with torch.no_grad():
        _assert_close(model(x), ref(x), rtol=0, atol=0)
    # A second load is served from the cache, even with the source gone.
    (src / fname).unlink()
    again = create_backbone(name, weights=(src / fname).as_uri(), sha256=digest[:8])
    with torch.no_grad():
        _assert_close(again(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mobilenet_v2", "x3d_s"])
def test_file_url_with_wrong_hash_is_refused_and_not_cached(tmp_path, cache, name):
    sd = _random_model(name).state_dict()
    path = tmp_path / "weights.pth"
    _save(sd, path)
    wrong = "0" * 64 if not _sha256(path).startswith("0") else "f" * 64
    with pytest.raises(WeightsError, match="SHA-256"):
        create_backbone(name, weights=path.as_uri(), sha256=wrong)
    assert _files(cache) == []


def test_unpublished_hash_is_pinned_on_first_download(tmp_path, cache):
    # The X3D entries carry no hash (none is published): the first download pins it, and a
    # cached file swapped afterwards is refused. Same Weights shape as X3DSWeights.KINETICS400.
    from vqscope.backbones.x3d import X3DSWeights

    official = X3DSWeights.KINETICS400.weights
    assert official.sha256 == "" and official.state_dict_key == "model_state"
    sd = _random_model("x3d_s").state_dict()
    path = _save({"model_state": sd, "epoch": 1}, tmp_path / "X3D_S.pyth")

    class LocalWeights(WeightsEnum):
        KINETICS400 = Weights(
            url=(tmp_path / "X3D_S.pyth").as_uri(), sha256="", filename="X3D_S.pyth", state_dict_key="model_state"
        )

    model = create_backbone("x3d_s", weights=LocalWeights.KINETICS400)
    assert model.weights_id == "KINETICS400"
    assert (cache / "X3D_S.pyth.sha256").read_text().strip() == _sha256(path)
    _save({"model_state": {}}, cache / "X3D_S.pyth")  # swapped under the cache
    with pytest.raises(WeightsError, match="SHA-256"):
        create_backbone("x3d_s", weights=LocalWeights.KINETICS400)


@pytest.mark.parametrize(
    "name,other",
    [
        ("mobilenet_v2", "x3d_s"),
        ("mobilenet_v2", "efficientnet_lite0"),
        ("x3d_s", "mobilenet_v2"),
        ("x3d_xs", "efficientnet_lite0"),
    ],
)
def test_checkpoint_of_another_architecture_is_refused(tmp_path, name, other):
    sd = _random_model(other).state_dict()
    path = _save({"model_state": sd} if other.startswith("x3d") else sd, tmp_path / f"{other}.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        create_backbone(name, weights=path)


@pytest.mark.parametrize("name", ["mobilenet_v2", "x3d_m"])
def test_truncated_or_reshaped_checkpoint_is_refused(tmp_path, name):
    sd = _random_model(name).state_dict()
    last = next(reversed(sd))
    missing = {k: v for k, v in sd.items() if k != last}
    with pytest.raises(WeightsError, match="do not fit"):
        create_backbone(name, weights=_save(missing, tmp_path / "missing.pth"))
    reshaped = dict(sd)
    reshaped[last] = torch.zeros(reshaped[last].numel() + 1)
    with pytest.raises(WeightsError, match="do not fit"):
        create_backbone(name, weights=_save(reshaped, tmp_path / "reshaped.pth"))


# --- Conv + BN folding ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_fuse_conv_bn_matches_unfused(name):
    model = _random_model(name)
    fused = fuse_conv_bn(model)

    def count_bn(m):
        return sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())

    assert count_bn(fused) < count_bn(model)
    if name == "mobilenet_v2":
        assert count_bn(fused) == 0
    x = _input_for(name)
    with torch.no_grad():
        ref_logits, ref_feats = model(x), model.features(x)
        got_logits, got_feats = fused(x), fused.features(x)
    _assert_close(got_logits, ref_logits, rtol=0, atol=1e-4)
    _assert_close(got_feats, ref_feats, rtol=0, atol=1e-4)


# --- Registry entries ----------------------------------------------------------------------


def test_registry_entries():
    from vqscope.backbones.mobilenet_v2 import MobileNetV2Weights

    spec = get_backbone_spec("mobilenet_v2")
    assert spec.role == "spatial" and spec.feature_dim == 2560 and spec.default_weights == "IMAGENET1K_V1"
    fi = spec.frame_input
    assert (fi.color, fi.short_side, fi.crop) == ("rgb", 224, 224)
    assert fi.mean == (0.485, 0.456, 0.406) and fi.std == (0.229, 0.224, 0.225)
    v1, v2 = MobileNetV2Weights.IMAGENET1K_V1.weights, MobileNetV2Weights.IMAGENET1K_V2.weights
    assert v1.url.endswith("/mobilenet_v2-b0353104.pth") and v1.sha256 == "b0353104"
    assert v2.url.endswith("/mobilenet_v2-7ebf99e0.pth") and v2.sha256 == "7ebf99e0"
    assert (v1.meta["acc@1"], v2.meta["acc@1"]) == (71.878, 72.154)

    x3d_sizes = {"x3d_xs": ("X3D_XS", (182, 160)), "x3d_s": ("X3D_S", (182, 160)), "x3d_m": ("X3D_M", (256, 224))}
    for name, (file, size) in x3d_sizes.items():
        spec = get_backbone_spec(name)
        assert spec.role == "temporal" and spec.feature_dim == 2048 and spec.default_weights == "KINETICS400"
        fi = spec.frame_input
        assert (fi.color, fi.short_side, fi.crop) == ("rgb", *size)
        assert fi.mean == (0.45,) * 3 and fi.std == (0.225,) * 3
        w = spec.weights.from_name("KINETICS400").weights
        assert w.url == f"https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/{file}.pyth"
        assert w.sha256 == "" and w.state_dict_key == "model_state"
