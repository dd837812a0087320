"""MobileNetV2 (Sandler et al., 2018), width 1.0, as an optional spatial backbone.

Parameter names and shapes follow torchvision's `torchvision.models.mobilenet_v2`, so its
ImageNet checkpoints load strictly and unchanged:

    features.0        3x3 stride-2 stem: .0 Conv2d(3, 32), .1 BatchNorm2d, ReLU6
    features.1..17    inverted residuals; each holds a `conv` Sequential:
                        expansion 1:  conv.0 (depthwise .0 conv / .1 BN), conv.1 pointwise, conv.2 BN
                        expansion 6:  conv.0 (1x1 expand .0/.1), conv.1 (depthwise .0/.1),
                                      conv.2 pointwise, conv.3 BN
    features.18       1x1 Conv2d(320, 1280), BN, ReLU6
    classifier        .0 Dropout(0.2), .1 Linear(1280, 1000)

Convolutions carry no bias; BatchNorm keeps PyTorch's defaults (eps 1e-5, momentum 0.1); the
projection ("linear bottleneck") has no activation. `forward` computes what torchvision's
model computes (global average, dropout, linear). Because the checkpoint needs the layer
stack under the name `features`, that Sequential is what `model.features(x)` calls: it runs
the layers and returns the quality features, mean and standard deviation of the last map
over space ([N, 2560]). Written in plain PyTorch because torchvision's compiled operators do
not load with every torch build.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .efficientnet_lite import mean_std_pool
from .registry import BackboneSpec, FrameInput, register
from .weights import Weights, WeightsEnum

# (expansion t, output channels c, repeats n, stride of the first repeat s), width 1.0.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias, "same" padding for odd kernels), BatchNorm, ReLU6: children .0, .1, .2."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand (omitted at expansion 1), 3x3 depthwise, 1x1 linear projection; identity
    skip where the stride is 1 and the channel count is unchanged."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(in_ch * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_skip else out


class _Layers(nn.Sequential):
    """The layer stack, kept under the attribute name `features` that the checkpoint's keys
    need (features.0 ... features.18).

    The backbone interface needs `model.features(x)` to be the quality feature vector, so
    calling this Sequential runs every layer and then pools the last map (mean and standard
    deviation over space). Indexing and iteration behave as for any Sequential.
    """

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_std_pool(self.feature_map(x))


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, _STEM_CHANNELS, kernel=3, stride=2)]
        in_ch = _STEM_CHANNELS
        for expand, out_ch, repeats, stride in _SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(in_ch, out_ch, stride if i == 0 else 1, expand))
                in_ch = out_ch
        layers.append(_conv_bn_relu6(in_ch, _HEAD_CHANNELS, kernel=1))
        # `self.features(x)` -> [N, 2 * 1280]: mean and std of the last map (see _Layers).
        self.features = _Layers(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(_HEAD_CHANNELS, num_classes))
        self.head_channels = _HEAD_CHANNELS
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so an untrained model behaves like theirs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional map, [N, 1280, H/32, W/32] (rounded up)."""
        return self.features.feature_map(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits, as torchvision computes them: global average, dropout, linear."""
        x = F.adaptive_avg_pool2d(self.feature_map(x), 1).flatten(1)
        return self.classifier(x)


class MobileNetV2Weights(WeightsEnum):
    IMAGENET1K_V1 = Weights(
        url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        # torchvision publishes the first 8 hex digits of the SHA-256 in the file name.
        sha256="b0353104",
        filename="mobilenet_v2-b0353104.pth",
        meta={
            "dataset": "ImageNet-1k",
            "num_classes": 1000,
            "license": "BSD-3-Clause",
            "source": "torchvision MobileNet_V2_Weights.IMAGENET1K_V1",
            "acc@1": 71.878,
            "acc@5": 90.286,
            "num_params": 3504872,
            "input": "RGB, (x/255 - ImageNet mean) / std; torchvision evaluates resize 256, centre crop 224",
        },
    )
    IMAGENET1K_V2 = Weights(
        url="https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth",
        sha256="7ebf99e0",
        filename="mobilenet_v2-7ebf99e0.pth",
        meta={
            "dataset": "ImageNet-1k",
            "num_classes": 1000,
            "license": "BSD-3-Clause",
            "source": "torchvision MobileNet_V2_Weights.IMAGENET1K_V2",
            "acc@1": 72.154,
            "acc@5": 90.822,
            "num_params": 3504872,
            "input": "RGB, (x/255 - ImageNet mean) / std; torchvision evaluates resize 232, centre crop 224",
        },
    )


def mobilenet_v2(weights: MobileNetV2Weights | None = None) -> MobileNetV2:
    """MobileNetV2; pass a `MobileNetV2Weights` member for ImageNet weights."""
    model = MobileNetV2()
    if weights is not None:
        from .weights import load_state_dict

        model.load_state_dict(load_state_dict(weights), strict=True)
    return model.eval()


register(
    BackboneSpec(
        name="mobilenet_v2",
        role="spatial",
        builder=mobilenet_v2,
        frame_input=FrameInput(
            color="rgb", short_side=224, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
        ),
        feature_dim=2 * _HEAD_CHANNELS,
        weights=MobileNetV2Weights,
        default_weights="IMAGENET1K_V1",
        description="MobileNetV2, ImageNet-1k (torchvision weights, downloaded); mean+std pooled 1280-ch map",
    )
)
