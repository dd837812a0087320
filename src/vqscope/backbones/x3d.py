"""X3D-XS, X3D-S and X3D-M (Feichtenhofer, 2020), Kinetics-400 clip models, as optional
temporal backbones.

Parameter names and shapes follow pytorchvideo's `create_x3d` (as its hub functions
`x3d_xs`, `x3d_s`, `x3d_m` build it), so the model-zoo checkpoints X3D_XS.pyth, X3D_S.pyth
and X3D_M.pyth load strictly and unchanged. The three differ only in their weights and in
the clips they were trained on (XS: 4 frames at 160 px, S: 13 at 160, M: 16 at 224); the
network is the same:

    blocks.0  stem: conv.conv_t  Conv3d(3, 24, 1x3x3, stride 1x2x2)       (spatial, despite the name)
                    conv.conv_xy Conv3d(24, 24, 5x1x1, depthwise)         (temporal, despite the name)
                    norm BatchNorm3d, ReLU
    blocks.1-4  stages of 3, 5, 11, 7 residual blocks, widths 24, 48, 96, 192 (inner 54, 108,
              216, 432); the first block of each stage has stride 1x2x2 and a 1x1x1 shortcut
              conv (`branch1_conv`, with `branch1_norm` where the width changes). Each block's
              `branch2`: conv_a 1x1x1, norm_a, ReLU; conv_b 3x3x3 depthwise, norm_b.0 (BN),
              norm_b.1 squeeze-excitation in the 1st, 3rd, 5th... block of a stage (reduced
              width round_width(inner, 1/16): 8, 8, 16, 32), Swish; conv_c 1x1x1, norm_c.
              The sum with the shortcut goes through a ReLU.
    blocks.5  head: pool.pre_conv 1x1x1 (192 -> 432), pool.pre_norm, ReLU, average pooling,
              pool.post_conv 1x1x1 (432 -> 2048, no norm), ReLU, dropout 0.5, proj Linear(2048, 400)

All BatchNorms use eps 1e-5 and momentum 0.1; convolutions have no bias except the
squeeze-excitation's. pytorchvideo's head averages with an AvgPool3d sized for the training
clip; here the pooling is adaptive (same output at the training size, no parameters), so
clips of any length and size work. pytorchvideo's model also ends with a softmax; `forward`
here returns the logits before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import BackboneSpec, FrameInput, register
from .weights import Weights, WeightsEnum

_EPS = 1e-5
_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=_EPS, momentum=_MOMENTUM)


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Scale a channel count and round it to the nearest multiple of `divisor` (at least
    `min_width`), rounding up one step where rounding lost more than 10 %. This is the rule
    X3D's width expansion uses; the channel counts of the checkpoints depend on it."""
    scaled = width * multiplier
    out = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


@dataclass(frozen=True)
class X3DConfig:
    stem_width: int = 12  # before width expansion
    width_factor: float = 2.0
    depth_factor: float = 2.2
    bottleneck_factor: float = 2.25
    se_ratio: float = 0.0625
    base_depths: tuple[int, ...] = (1, 2, 5, 3)
    head_width: int = 2048
    num_classes: int = 400
    dropout: float = 0.5


class SqueezeExcitation(nn.Module):
    """Channel gating from the clip-wide mean: x * sigmoid(W2 relu(W1 mean(x)))."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv3d(channels, reduced, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv3d(reduced, channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x.mean(dim=(2, 3, 4), keepdim=True))


class _StemConv(nn.Module):
    """(2+1)D stem convolution: a 1x3x3 spatial conv, then a 5x1x1 depthwise temporal conv.

    pytorchvideo registers the spatial conv as `conv_t` and the temporal one as `conv_xy`;
    the names are kept for the checkpoint, the order of application is spatial first.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv_t = nn.Conv3d(in_ch, out_ch, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_xy = nn.Conv3d(out_ch, out_ch, (5, 1, 1), padding=(2, 0, 0), groups=out_ch, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_xy(self.conv_t(x))


class Stem(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = _StemConv(in_ch, out_ch)
        self.norm = _bn(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1x1 expansion, 3x3x3 depthwise (+ optional SE), 1x1x1 projection."""

    def __init__(self, in_ch: int, inner: int, out_ch: int, stride: int, se_reduced: int | None):
        super().__init__()
        self.conv_a = nn.Conv3d(in_ch, inner, 1, bias=False)
        self.norm_a = _bn(inner)
        self.conv_b = nn.Conv3d(
            inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False
        )
        self.norm_b = nn.Sequential(
            _bn(inner), SqueezeExcitation(inner, se_reduced) if se_reduced else nn.Identity()
        )
        self.conv_c = nn.Conv3d(inner, out_ch, 1, bias=False)
        self.norm_c = _bn(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm_a(self.conv_a(x)))
        x = F.silu(self.norm_b(self.conv_b(x)))  # Swish: x * sigmoid(x)
        return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, inner: int, out_ch: int, stride: int, se_reduced: int | None):
        super().__init__()
        # pytorchvideo: a shortcut conv where the width or the resolution changes, a norm
        # after it only where the width changes.
        if in_ch != out_ch or stride > 1:
            self.branch1_conv = nn.Conv3d(in_ch, out_ch, 1, stride=(1, stride, stride), bias=False)
        else:
            self.branch1_conv = None
        self.branch1_norm = _bn(out_ch) if in_ch != out_ch else None
        self.branch2 = Bottleneck(in_ch, inner, out_ch, stride, se_reduced)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.branch1_conv is not None:
            shortcut = self.branch1_conv(x)
            if self.branch1_norm is not None:
                shortcut = self.branch1_norm(shortcut)
        return F.relu(shortcut + self.branch2(x))


class ResStage(nn.Module):
    def __init__(self, blocks: list[ResBlock]):
        super().__init__()
        self.res_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class ProjectedPool(nn.Module):
    """1x1x1 conv + BN + ReLU, average over the whole clip, 1x1x1 conv + ReLU."""

    def __init__(self, in_ch: int, inner: int, out_ch: int):
        super().__init__()
        self.pre_conv = nn.Conv3d(in_ch, inner, 1, bias=False)
        self.pre_norm = _bn(inner)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.post_conv = nn.Conv3d(inner, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pre_norm(self.pre_conv(x)))
        return F.relu(self.post_conv(self.pool(x)))


class Head(nn.Module):
    def __init__(self, in_ch: int, inner: int, out_ch: int, num_classes: int, dropout: float):
        super().__init__()
        self.pool = ProjectedPool(in_ch, inner, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(out_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(self.pool(x).flatten(1)))


class X3D(nn.Module):
    """X3D on clips [N, 3, T, H, W] (RGB, normalised with mean 0.45 and std 0.225)."""

    def __init__(self, config: X3DConfig = X3DConfig()):
        super().__init__()
        c = config
        stem_out = round_width(c.stem_width, c.width_factor)
        blocks: list[nn.Module] = [Stem(3, stem_out)]
        widths = [c.stem_width]
        for _ in c.base_depths[1:]:
            widths.append(round_width(widths[-1], 2.0))
        in_ch = stem_out
        inner = stem_out
        for base_width, base_depth in zip(widths, c.base_depths):
            out_ch = round_width(base_width, c.width_factor)
            inner = int(c.bottleneck_factor * out_ch)
            depth = int(math.ceil(c.depth_factor * base_depth))
            se_reduced = round_width(inner, c.se_ratio) if c.se_ratio > 0 else None
            stage = [
                ResBlock(
                    in_ch if i == 0 else out_ch,
                    inner,
                    out_ch,
                    stride=2 if i == 0 else 1,
                    # Squeeze-excitation in every other block, starting with the first.
                    se_reduced=se_reduced if i % 2 == 0 else None,
                )
                for i in range(depth)
            ]
            blocks.append(ResStage(stage))
            in_ch = out_ch
        blocks.append(Head(in_ch, inner, c.head_width, c.num_classes, c.dropout))
        self.blocks = nn.ModuleList(blocks)
        self.head_width = c.head_width
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last stage, [N, 192, T, H/32, W/32] (rounded up)."""
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's 2048-d clip embedding (after post_conv and its ReLU): [N, 2048]."""
        return self.blocks[-1].pool(self.feature_map(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics-400 logits (pytorchvideo applies a softmax after these)."""
        return self.blocks[-1](self.feature_map(x))


_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"


def _kinetics_weights(
    file: str, hub_name: str, frames: int, rate: int, crop: int, side: int, top1: float, top5: float, gflops: float
) -> Weights:
    return Weights(
        url=f"{_ZOO}/{file}",
        # Not published; weights.py pins the hash of the first download beside the file.
        sha256="",
        filename=file,
        state_dict_key="model_state",
        meta={
            "dataset": "Kinetics-400",
            "num_classes": 400,
            "license": "Apache-2.0",
            "source": f"pytorchvideo model zoo (pytorchvideo.models.hub.{hub_name})",
            "acc@1": top1,
            "acc@5": top5,
            "gflops": gflops,
            "num_params": 3794274,
            "input": (
                f"RGB, (x/255 - 0.45) / 0.225; built for clips of {frames} frames (one every {rate} at 30 fps) "
                f"at {crop}x{crop}; pytorchvideo's hub tutorial evaluates short side {side}, centre crop {side}"
            ),
        },
    )


class X3DXSWeights(WeightsEnum):
    KINETICS400 = _kinetics_weights("X3D_XS.pyth", "x3d_xs", 4, 12, 160, 182, 69.12, 88.63, 0.91)


class X3DSWeights(WeightsEnum):
    KINETICS400 = _kinetics_weights("X3D_S.pyth", "x3d_s", 13, 6, 160, 182, 73.33, 91.27, 2.96)


class X3DMWeights(WeightsEnum):
    KINETICS400 = _kinetics_weights("X3D_M.pyth", "x3d_m", 16, 5, 224, 256, 75.94, 92.72, 6.72)


def _build(weights: WeightsEnum | None) -> X3D:
    model = X3D()
    if weights is not None:
        from .weights import load_state_dict

        model.load_state_dict(load_state_dict(weights), strict=True)
    return model.eval()


def x3d_xs(weights: X3DXSWeights | None = None) -> X3D:
    """X3D-XS (trained on 4 frames at 160 px); pass `X3DXSWeights.KINETICS400` for weights."""
    return _build(weights)


def x3d_s(weights: X3DSWeights | None = None) -> X3D:
    """X3D-S (trained on 13 frames at 160 px); pass `X3DSWeights.KINETICS400` for weights."""
    return _build(weights)


def x3d_m(weights: X3DMWeights | None = None) -> X3D:
    """X3D-M (trained on 16 frames at 224 px); pass `X3DMWeights.KINETICS400` for weights."""
    return _build(weights)


_MEAN = (0.45, 0.45, 0.45)
_STD = (0.225, 0.225, 0.225)


def _spec(name: str, builder, weights: type[WeightsEnum], short_side: int, crop: int, label: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        role="temporal",
        builder=builder,
        frame_input=FrameInput(color="rgb", short_side=short_side, crop=crop, mean=_MEAN, std=_STD),
        feature_dim=2048,
        weights=weights,
        default_weights="KINETICS400",
        description=f"{label}, Kinetics-400 (pytorchvideo weights, downloaded); 2048-d head embedding",
    )


register(_spec("x3d_xs", x3d_xs, X3DXSWeights, 182, 160, "X3D-XS"))
register(_spec("x3d_s", x3d_s, X3DSWeights, 182, 160, "X3D-S"))
register(_spec("x3d_m", x3d_m, X3DMWeights, 256, 224, "X3D-M"))
