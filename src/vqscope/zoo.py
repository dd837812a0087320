"""Shipped models: `load_model("vqscope-lite")`, `load_model("vqscope-lite@1")` or a path.

Model files live in the package's `model_zoo/` folder as NAME-VERSION.safetensors, each with
a model card NAME-VERSION.md beside it. A bare name means its newest version.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import ModelNotFoundError
from .model import Model, read_model_file

DEFAULT_MODEL = "vqscope-lite"
ZOO_DIR = Path(__file__).resolve().parent / "model_zoo"
_FILE_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]*?)-(?P<version>\d+)\.safetensors$")


@dataclass(frozen=True)
class ShippedModel:
    name: str
    version: int
    path: Path
    description: str
    card_path: Path | None
    summary: str
    size_bytes: int

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


def list_models() -> list[ShippedModel]:
    """Every model file shipped with the package, newest version of each name first."""
    found = []
    for path in sorted(ZOO_DIR.glob("*.safetensors")):
        m = _FILE_RE.match(path.name)
        if not m:
            continue
        meta, _ = read_model_file(str(path), tensors=False)
        card = path.with_suffix(".md")
        found.append(
            ShippedModel(
                name=str(meta["name"]),
                version=int(meta["version"]),
                path=path,
                description=str(meta.get("description", "")),
                card_path=card if card.is_file() else None,
                summary=str((meta.get("card") or {}).get("summary", "")),
                size_bytes=path.stat().st_size,
            )
        )
    return sorted(found, key=lambda s: (s.name, -s.version))


def resolve_model_path(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of a model given a file path, `name@version` or `name` (newest version)."""
    text = os.fspath(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    if text.endswith(".safetensors") or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {text}")
        return path
    name, _, version = text.partition("@")
    candidates = [m for m in list_models() if m.name == name and (not version or str(m.version) == version)]
    if not candidates:
        available = ", ".join(m.id for m in list_models()) or "none"
        raise ModelNotFoundError(f"unknown model {text!r} (shipped: {available})")
    return max(candidates, key=lambda m: m.version).path


def load_model(name_or_path: str | os.PathLike[str] | None = None) -> Model:
    """Load a shipped model by name (default: the newest vqscope-lite) or a model file."""
    return Model.load(resolve_model_path(name_or_path))


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> Model:
    return Model.load(path)


def cached_model(name_or_path: str | os.PathLike[str] | None = None) -> Model:
    """One loaded instance per model file per process (backbones are built once)."""
    path = resolve_model_path(name_or_path)
    return _cached(str(path), path.stat().st_mtime)
