"""Helpers that decode workers of tests/test_pipeline.py unpickle: kept free of torch (and of
the test modules, which import it) so that those workers start as fast as real ones."""

from __future__ import annotations

import os

from vqscope.features.pipeline import ClipPreparer


class CrashOnSquare(ClipPreparer):
    """Kills its decode worker on square frames, as a decoder crash on a damaged file would."""

    def key(self, frame):
        width, height = frame.display_size
        if width == height:
            os._exit(3)
        return super().key(frame)
