"""Features: per-clip vectors from the backbones (key frame + 32-frame window per clip)."""

from .extractor import ClipFeatures, FeatureConfig, FeatureExtractor, VideoFeatures, video_meta

__all__ = ["ClipFeatures", "FeatureConfig", "FeatureExtractor", "VideoFeatures", "video_meta"]
