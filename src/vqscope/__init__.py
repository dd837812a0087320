"""vqscope: no-reference video quality assessment for user-generated video.

    >>> import vqscope
    >>> result = vqscope.score("clip.mp4")          # default shipped model
    >>> model = vqscope.load_model("vqscope-lite")  # or a path to a model file
    >>> model.score("clip.mp4").to_dict()

The flow, one module or folder per step: video (probe, decode) -> sampling (clip plan) ->
features (backbones/) -> heads -> calibration -> result.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import VQScopeError
from .result import ClipResult, DimensionScore, Result

__version__ = "0.1.0"

# The model zoo imports torch (over a second of start-up): it is loaded on first use, so that
# processes needing only decoding (vqscope.features.pipeline's decode workers, `vqscope probe`)
# start fast.
_LAZY = {"DEFAULT_MODEL": "zoo", "list_models": "zoo", "load_model": "zoo"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def score(path: str | os.PathLike[str], model: str | os.PathLike[str] | None = None, **options) -> Result:
    """Score one video with a shipped model (default: the newest vqscope-lite) or a model file.

    The model is loaded once per process and reused by later calls.
    """
    from .zoo import cached_model

    return cached_model(model).score(path, **options)


__all__ = [
    "DEFAULT_MODEL",
    "ClipResult",
    "DimensionScore",
    "Result",
    "VQScopeError",
    "__version__",
    "list_models",
    "load_model",
    "score",
]
