"""Content hashes of files: the identity of weights, cached features and benchmark videos.

One function for all three, so a file hashed for one purpose is hashed the same way for another.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in chunks (videos and checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
