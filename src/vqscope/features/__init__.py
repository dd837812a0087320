"""Features: per-clip vectors from the backbones (key frame + 32-frame window per clip).

Names are imported on first use: the decode workers of `vqscope.features.pipeline` import this
package without torch, which the extractor needs and they do not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .extractor import ClipFeatures, FeatureConfig, FeatureExtractor, VideoFeatures, video_meta
    from .pipeline import DecodedVideo, decode_video

_EXPORTS = {
    "ClipFeatures": "extractor",
    "FeatureConfig": "extractor",
    "FeatureExtractor": "extractor",
    "VideoFeatures": "extractor",
    "video_meta": "extractor",
    "DecodedVideo": "pipeline",
    "decode_video": "pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ClipFeatures",
    "DecodedVideo",
    "FeatureConfig",
    "FeatureExtractor",
    "VideoFeatures",
    "decode_video",
    "video_meta",
]
