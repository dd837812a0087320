"""Heads: the prediction network from a clip's features to its scores and distortion
probabilities, made of a trunk, linear score heads and parts (config.py names them, parts.py
holds them, trees.py evaluates boosted trees as tensors, network.py puts them together)."""

from .config import PART_KINDS, HeadConfig, Part
from .network import CLAMP_Z, DISTORTION_PREFIX, PredictionNetwork
from .parts import PlattScaling
from .trees import BoostedTrees, fit_boosted_trees, from_sklearn

__all__ = ["CLAMP_Z", "DISTORTION_PREFIX", "PART_KINDS", "BoostedTrees", "HeadConfig", "Part", "PlattScaling",
           "PredictionNetwork", "fit_boosted_trees", "from_sklearn"]
