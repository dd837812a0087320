"""Feature extractors behind one registry: `create_backbone(name, weights=...)`.

Spatial (key frame): efficientnet_lite0 (offline default), mobilenet_v2.
Temporal (32-frame window): motion_stats (no weights, offline default), x3d_xs / x3d_s / x3d_m.
Auxiliary spatial statistics: frame_stats, detail_stats, local_stats, color_stats, spectral_stats (no weights).
"""

from .registry import (
    BackboneSpec,
    FrameInput,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    register,
)
from .weights import Weights, WeightsEnum, cache_dir, fetch, load_state_dict, sha256_of
from .fuse import fuse_conv_bn

# Importing each architecture registers it.
from . import color_stats, detail_stats, efficientnet_lite, frame_stats, local_stats, motion_stats  # noqa: E402,F401
from . import spectral_stats  # noqa: E402,F401
from . import mobilenet_v2, x3d  # noqa: E402,F401

__all__ = [
    "BackboneSpec",
    "FrameInput",
    "Weights",
    "WeightsEnum",
    "cache_dir",
    "create_backbone",
    "fetch",
    "fuse_conv_bn",
    "get_backbone_spec",
    "list_backbones",
    "load_state_dict",
    "register",
    "sha256_of",
]
