"""Shipped models: `load_model("vqscope-lite")`, `load_model("vqscope-lite@7")` or a path.

Model files live in the package's `model_zoo/` folder as NAME-VERSION.safetensors, each with
a model card NAME-VERSION.md beside it. A bare name means its newest version.

Which model is the default is `DEFAULT_MODEL`'s newest version (`resolve_model_path(None)`),
never what a model says of itself: a model file is immutable, so the card summary stored in an
older one still reads "offline default; ..." after a newer version took over. `ShippedModel.summary`
leaves such claims out (the stored text stays in `card_summary`).
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
# A part of a stored summary that claims the default role ("offline default", "the default model").
_DEFAULT_CLAIM = re.compile(r"\bdefault\b", re.IGNORECASE)


def own_summary(card_summary: str, description: str = "") -> str:
    """A model's summary without any claim to be the default: the parts of the stored summary
    (separated by ";") that do not say "default"; the description where nothing else is left."""
    parts = [p.strip() for p in card_summary.split(";")]
    kept = [p for p in parts if p and not _DEFAULT_CLAIM.search(p)]
    return "; ".join(kept) if kept else description.strip()


def format_size(size_bytes: int) -> str:
    """A file size for people, in decimal units as `ls --si` gives them: 43872 -> "44 KB",
    710056 -> "710 KB", 5257148 -> "5.3 MB"."""
    if size_bytes < 1000:
        return f"{size_bytes} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        value = size_bytes / scale
        if value < 999.5 or unit == "GB":
            return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ShippedModel:
    name: str
    version: int
    path: Path
    description: str
    card_path: Path | None
    summary: str  # the stored card summary less any claim to be the default (own_summary)
    size_bytes: int
    card_summary: str = ""  # the summary as stored in the model file

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
        stored = str((meta.get("card") or {}).get("summary", ""))
        description = str(meta.get("description", ""))
        found.append(
            ShippedModel(
                name=str(meta["name"]),
                version=int(meta["version"]),
                path=path,
                description=description,
                card_path=card if card.is_file() else None,
                summary=own_summary(stored, description),
                size_bytes=path.stat().st_size,
                card_summary=stored,
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
