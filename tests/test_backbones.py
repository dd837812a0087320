"""The offline default backbones: EfficientNet-Lite0 with real ImageNet weights, and the
weight-free statistics branches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqscope.backbones import create_backbone, fuse_conv_bn, get_backbone_spec, list_backbones
from vqscope.backbones.efficientnet_lite import EfficientNetLite0Weights
from vqscope.backbones.frame_stats import FEATURE_NAMES as FRAME_STATS
from vqscope.backbones.motion_stats import FEATURE_NAMES as MOTION_STATS
from vqscope.backbones.weights import sha256_of
from vqscope.errors import UnknownBackboneError, WeightsError


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0")


def _imagenet_input(image: np.ndarray) -> torch.Tensor:
    """Short side to 224 (bicubic), centre crop, (x/255 - 0.5) / 0.5, as the weights expect."""
    from PIL import Image

    im = Image.fromarray(image)
    w, h = im.size
    s = 224 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    a = np.asarray(im)
    top, left = (a.shape[0] - 224) // 2, (a.shape[1] - 224) // 2
    a = a[top : top + 224, left : left + 224]
    return (torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5


@pytest.mark.parametrize(
    "photo,classes",
    [
        ("chelsea", {281, 282, 285}),  # a cat: tabby, tiger cat, Egyptian cat
        ("coffee", {967}),  # espresso
    ],
)
def test_lite0_weights_recognise_natural_photos(lite0, photo, classes):
    skimage_data = pytest.importorskip("skimage.data")
    x = _imagenet_input(getattr(skimage_data, photo)())
    with torch.no_grad():
        top = lite0(x).softmax(dim=1)[0].argmax().item()
    assert top in classes


def test_lite0_matches_the_reference_implementation(lite0):
    """Same numbers as the PyPI package whose layout the checkpoint was saved in."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    path = EfficientNetLite0Weights.IMAGENET1K.weights.find_local()
    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(lite0(x), ref(x), atol=1e-4)


def test_lite0_weights_come_from_the_pypi_package_with_their_hash():
    weights = EfficientNetLite0Weights.IMAGENET1K.weights
    path = weights.find_local()
    assert path is not None and path.endswith("efficientnet-lite0-57934424.pth")
    assert sha256_of(path) == weights.sha256


def test_lite0_features_and_fusion(lite0):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    fused = fuse_conv_bn(lite0)
    with torch.no_grad():
        f, g = lite0.features(x), fused.features(x)
    assert f.shape == (1, get_backbone_spec("efficientnet_lite0").feature_dim)
    assert torch.allclose(f, g, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():  # any input size: TensorFlow "SAME" padding is computed per input
        assert lite0.features(torch.randn(1, 3, 161, 97)).shape == f.shape


def test_registry_lists_every_family_and_refuses_unknown_names():
    names = {s.name for s in list_backbones()}
    assert {"efficientnet_lite0", "mobilenet_v2", "x3d_xs", "x3d_s", "x3d_m", "motion_stats", "frame_stats",
            "spectral_stats", "local_stats"} <= names
    assert {s.name for s in list_backbones("temporal")} >= {"motion_stats", "x3d_s"}
    with pytest.raises(UnknownBackboneError):
        create_backbone("resnet_9000")
    with pytest.raises(WeightsError):
        create_backbone("motion_stats", weights="IMAGENET")


# --- motion statistics ----------------------------------------------------------------------

def _moving_texture(frames: int = 32, h: int = 72, w: int = 128, step: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    big = rng.random((h + 40, w + 40 + step * frames)).astype(np.float32)
    big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1)) / 3  # some spatial correlation
    return torch.from_numpy(np.stack([big[20 : 20 + h, i * step : i * step + w] for i in range(frames)]))


def _motion(window: torch.Tensor) -> dict[str, float]:
    values = create_backbone("motion_stats").features(window[None])[0]
    return dict(zip(MOTION_STATS, values.tolist()))


def test_motion_stats_sees_frozen_frames():
    smooth = _moving_texture()
    stutter = smooth[[i // 4 * 4 for i in range(32)]]  # every frame shown four times
    a, b = _motion(smooth), _motion(stutter)
    assert a["frozen_share"] == 0.0
    assert b["frozen_share"] > 0.7
    assert b["diff_cv"] > a["diff_cv"]


def test_motion_stats_measures_global_motion_and_shake():
    steady = _moving_texture(step=2)
    rng = np.random.default_rng(3)
    shaky = torch.stack([torch.roll(f, shifts=int(s), dims=0) for f, s in zip(steady, rng.integers(-4, 5, 32))])
    a, b = _motion(steady), _motion(shaky)
    assert a["motion_mean"] == pytest.approx(10 * 2 / 128, rel=0.1)  # 2 px per frame on 128 px
    assert a["jitter"] < 0.01
    assert b["jitter"] > 10 * a["jitter"] + 0.1


def test_motion_stats_sees_flicker():
    steady = _moving_texture(step=0)
    gains = torch.tensor([1.0 if i % 2 else 0.8 for i in range(32)]).view(32, 1, 1)
    a, b = _motion(steady), _motion(steady * gains)
    assert b["flicker_hf"] > 10 * (a["flicker_hf"] + 1e-3)


# --- frame statistics -----------------------------------------------------------------------

def _frame_stats(yuv: np.ndarray) -> dict[str, float]:
    x = torch.from_numpy(yuv).permute(2, 0, 1)[None].float() / 255
    values = create_backbone("frame_stats").features(x)[0]
    return dict(zip(FRAME_STATS, values.tolist()))


def _grey_texture(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random((size, size)) * 200 + 20).astype(np.uint8)
    return np.stack([y, np.full_like(y, 128), np.full_like(y, 128)], axis=-1)


def test_frame_stats_blur_and_noise_move_the_right_statistics():
    from PIL import Image, ImageFilter

    sharp = _grey_texture()
    blurred = sharp.copy()
    blurred[..., 0] = np.asarray(Image.fromarray(sharp[..., 0]).filter(ImageFilter.GaussianBlur(2)))
    a, b = _frame_stats(sharp), _frame_stats(blurred)
    assert b["log_laplacian_abs"] < a["log_laplacian_abs"] - 1.0
    assert b["detail_ratio"] < a["detail_ratio"]

    flat = np.stack([np.full((128, 128), 120, np.uint8), *(np.full((128, 128), 128, np.uint8),) * 2], axis=-1)
    noisy = flat.copy()
    noisy[..., 0] = np.clip(flat[..., 0] + np.random.default_rng(0).normal(0, 10, (128, 128)), 0, 255).astype(np.uint8)
    n0, n1 = _frame_stats(flat), _frame_stats(noisy)
    # Immerkaer's estimate recovers the noise level (10 / 255) to within a fifth.
    assert np.exp(n1["log_noise_mean"]) == pytest.approx(10 / 255, rel=0.2)
    assert n1["log_noise_mean"] > n0["log_noise_mean"] + 2


def test_frame_stats_blockiness_and_colour():
    rng = np.random.default_rng(1)
    blocks = np.kron(rng.integers(40, 220, (16, 16)), np.ones((8, 8))).astype(np.uint8)
    yuv = np.stack([blocks, np.full_like(blocks, 128), np.full_like(blocks, 128)], axis=-1)
    s = _frame_stats(yuv)
    assert s["blockiness_h"] > 3 and s["blockiness_v"] > 3
    assert _frame_stats(_grey_texture())["blockiness_h"] == pytest.approx(1.0, abs=0.15)

    tinted = _grey_texture()
    tinted[..., 2] = 170  # Cr well above neutral: a red cast
    t, g = _frame_stats(tinted), _frame_stats(_grey_texture())
    assert t["cast_cr"] > 0.1 and abs(g["cast_cr"]) < 0.01
    assert t["colorfulness"] > g["colorfulness"]


# --- colour statistics and the shared histogram operations -----------------------------------

def _color_stats(rgb: np.ndarray) -> dict[str, float]:
    from vqscope.backbones.color_stats import FEATURE_NAMES

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return dict(zip(FEATURE_NAMES, create_backbone("color_stats").features(x)[0].tolist()))


def _colourful(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = rng.integers(30, 220, (96, 128, 1))
    hue = rng.integers(-40, 41, (96, 128, 3))
    hue -= hue.mean(axis=2, keepdims=True).astype(hue.dtype)  # colour around a neutral mean
    return np.clip(grey + hue, 0, 255).astype(np.uint8)


def test_color_stats_see_a_tint_and_a_saturation_change():
    neutral = _colourful()
    warm = np.clip(neutral * np.array([1.3, 1.0, 0.75]), 0, 255).astype(np.uint8)
    n, w = _color_stats(neutral), _color_stats(warm)
    assert abs(n["log_grey_world_r"]) < 0.05 and abs(n["log_grey_world_b"]) < 0.05
    assert w["log_grey_world_r"] > 0.2 and w["log_grey_world_b"] < -0.2
    assert w["log_white_patch_r"] > n["log_white_patch_r"] + 0.1
    assert w["log_grey_edge_r"] > n["log_grey_edge_r"] + 0.15

    luma = neutral.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    washed = np.clip(luma[..., None] + (neutral - luma[..., None]) * 0.3, 0, 255).astype(np.uint8)
    d = _color_stats(washed)
    assert d["saturation_p90"] < n["saturation_p90"] - 0.05
    assert d["spread_r_minus_g"] < n["spread_r_minus_g"] * 0.5

    flat = _color_stats(np.full((40, 60, 3), 128, np.uint8))
    assert all(np.isfinite(list(flat.values())))
    assert flat["log_grey_world_r"] == 0.0 and flat["saturation_p50"] < 0.01


# --- spectral statistics --------------------------------------------------------------------

def _spectral(luma: np.ndarray) -> dict[str, float]:
    from vqscope.backbones.spectral_stats import FEATURE_NAMES

    x = torch.from_numpy(luma).float()[None, None] / 255
    return dict(zip(FEATURE_NAMES, create_backbone("spectral_stats").features(x)[0].tolist()))


def _natural_texture(size: int = 256, seed: int = 0) -> np.ndarray:
    """Noise with a 1/f amplitude spectrum, like natural pictures, in 8-bit codes."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    amplitude = 1.0 / (np.hypot(f[:, None], f[None, :]) + 1.0 / size)
    picture = np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * amplitude).real
    picture = (picture - picture.min()) / (picture.max() - picture.min())
    return np.round(picture * 220 + 16)


def _box(luma: np.ndarray, n: int, axis: int) -> np.ndarray:
    """A linear motion blur of n pixels along `axis` (1: horizontal, 0: vertical)."""
    kernel = np.ones(n) / n
    return np.round(np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="same"), axis, luma))


@pytest.mark.parametrize("n, axis, direction", [(10, 1, "h"), (16, 0, "v")])
def test_spectral_stats_find_the_direction_and_length_of_a_motion_blur(n, axis, direction):
    sharp = _natural_texture()
    a, b = _spectral(sharp), _spectral(_box(sharp, n, axis))
    # The cepstral trough lies at the blur's length, along its direction only.
    assert 2 ** b[f"cepstrum_log2_lag_{direction}"] == pytest.approx(n, abs=1)
    assert b[f"cepstrum_depth_{direction}"] > 3 * max(a[f"cepstrum_depth_{direction}"], 0.5)
    other = "v" if direction == "h" else "h"
    assert b[f"cepstrum_depth_{other}"] < 1.0
    # The blur's direction loses power at mid and high frequencies; the other keeps it.
    assert b[f"wedge_{direction}"] < b[f"wedge_{other}"] - 2.0
    assert a["wedge_spread"] < 0.5 < 2.0 < b["wedge_spread"]


def test_spectral_stats_keep_a_blur_visible_under_noise_and_stay_finite():
    sharp = _natural_texture(seed=1)
    noise = np.random.default_rng(2).normal(0, 8, sharp.shape)
    noisy_sharp = _spectral(np.clip(sharp + noise, 0, 255))
    noisy_blurred = _spectral(np.clip(_box(sharp, 12, 1) + noise, 0, 255))
    # Noise lifts the top band back up, but not the wedge along the blur.
    assert noisy_blurred["wedge_spread"] > noisy_sharp["wedge_spread"] + 0.5
    assert 2 ** noisy_blurred["cepstrum_log2_lag_h"] == pytest.approx(12, abs=3)  # a noisier estimate
    for luma in (np.full((64, 64), 128.0), np.zeros((8, 8))):
        assert all(np.isfinite(list(_spectral(luma).values())))


def test_code_histograms_give_torch_quantiles_and_medians_of_8_bit_planes():
    from vqscope.backbones.stats_ops import code_histogram, codes, lower_median_code, quantile_bins

    plane = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (37, 53)).astype(np.float32)) / 255
    hist = code_histogram(codes(plane))
    assert hist.sum() == plane.numel()
    assert round(float(plane.median()) * 255) == lower_median_code(hist)  # torch.median: the lower middle
    for q, code in zip((0.01, 0.5, 0.9), quantile_bins(hist, (0.01, 0.5, 0.9)).tolist()):
        # the first code whose cumulative share reaches q
        assert (plane <= code / 255 + 1e-6).float().mean() >= q > (plane <= (code - 1) / 255 + 1e-6).float().mean()


# --- local statistics ------------------------------------------------------------------------

def _local(yuv: np.ndarray) -> dict[str, float]:
    from vqscope.backbones.local_stats import FEATURE_NAMES

    x = torch.from_numpy(yuv).float()[None] / 255
    return dict(zip(FEATURE_NAMES, create_backbone("local_stats").features(x)[0].tolist()))


def _sky_and_texture(size: int = 384) -> np.ndarray:
    """[3, size, size] YUV codes: a smooth sky above a fine gravel-like texture (fixed, as texture
    is: softened white noise of +-25 codes on a 1/f picture), neutral chroma."""
    rng = np.random.default_rng(4)
    grain = rng.normal(0, 25, (size, size))
    grain = (grain + np.roll(grain, 1, 0) + np.roll(grain, 1, 1) + np.roll(grain, (1, 1), (0, 1))) / 2
    y = np.clip(_natural_texture(size, seed=4) * 0.6 + 50 + grain, 16, 235)
    y[: size // 4] = np.linspace(150, 190, size)[None, :]  # the flat quarter
    return np.stack([y, np.full_like(y, 128.0), np.full_like(y, 128.0)])


def test_local_stats_measure_noise_in_the_flattest_blocks_where_texture_cannot_pass_for_it():
    clean = _sky_and_texture()
    noisy = np.clip(clean + np.random.default_rng(5).normal(0, 5, clean.shape), 0, 255)
    c, n = _local(clean), _local(noisy)
    # In the flat blocks the operator reads the noise itself: sigma 5 codes, within 20%.
    assert math.exp(n["log_noise_flat_p10"]) * 255 == pytest.approx(5.0, rel=0.2)
    assert n["log_noise_flat_p10"] > c["log_noise_flat_p10"] + 2.0
    # The median block is texture, so clean and noisy look alike there ...
    assert abs(n["log_noise_block_median"] - c["log_noise_block_median"]) < 0.5
    # ... and the flat-to-median contrast, like chroma noise, tells noise from texture.
    assert n["noise_flat_minus_median"] > c["noise_flat_minus_median"] + 1.5
    assert math.exp(n["log_chroma_noise_flat_p10"]) * 255 == pytest.approx(5.0, rel=0.2)
    assert n["log_chroma_noise_flat_p10"] > c["log_chroma_noise_flat_p10"] + 2.0
    # Whole-crop Immerkaer (frame_stats) gives the clean textured picture more "noise" than the
    # flat blocks of the noisy one hold: the confusion these statistics are for.
    x = torch.from_numpy(clean).float()[None] / 255
    frame = dict(zip(FRAME_STATS, create_backbone("frame_stats").features(x)[0].tolist()))
    assert frame["log_noise_mean"] > n["log_noise_flat_p10"]


def test_local_stats_stay_finite_on_flat_and_tiny_frames():
    for yuv in (np.full((3, 64, 64), 128.0), np.zeros((3, 12, 9)), np.full((3, 3, 3), 255.0)):
        assert all(np.isfinite(list(_local(yuv).values())))
