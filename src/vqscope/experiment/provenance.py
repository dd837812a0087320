"""What a trained model records of how it was made, and the real clips its card reports on.

A model file is the only thing that travels, so it carries its own account: the vqscope, Python
and torch that trained it, every source with the split it fell in, and how the named real clips
(never trained on) score under it.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from .. import __version__
from ..data.sources import Source
from ..errors import ConfigError
from ..model import Model

# Real clips a card scores where the folder holds them (../shared/media); human MOS where published.
REAL_CLIPS = {
    "ugc_1724.mp4": "LSVQ yfcc-batch3/1724, MOS 56.09 / 100",
    "konvid_2999049224.mp4": "KoNViD-1k 2999049224 (centre crop), MOS 3.44 / 5",
    "kinetics_HyZMiWeJyMw_000072_000082.mp4": "Kinetics-400, 1280x720, no MOS",
    "kinetics_eWgy8eG3stA_000164_000174.mp4": "Kinetics-400, 480x360, no MOS",
    "kinetics_FEQ-gdkTN4Q_000008_000018.mp4": "Kinetics-400, 192x144, no MOS",
}


def provenance(sources: Sequence[Source], split_of: Mapping[str, str]) -> dict:
    """What a model's training record says of how and from what it was made."""
    return {
        "vqscope": __version__,
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sources": [{"name": s.name, "kind": s.kind, "origin": s.origin, "split": split_of.get(s.name, "unused")}
                    for s in sources],
    }


def score_real_clips(model: Model, folder: str | Path | None, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """The real clips of `folder` named in REAL_CLIPS as the model scores them, best first; a
    fine-grained model's dimensions and three likeliest distortions included. Empty where the
    folder is not given or absent."""
    if folder is None or not Path(folder).is_dir():
        log(f"real clips not scored: {f'{folder} not found' if folder else 'no [card] real_clips folder'}")
        return []
    out = []
    for name, about in REAL_CLIPS.items():
        path = Path(folder) / name
        if not path.is_file():
            continue
        r = model.score(path)
        row = {"clip": name, "about": about, "score": round(r.score, 1), "grade": r.grade,
               "scaled": round(r.scaled_score or 0, 1), "resolution": f"{r.width}x{r.height}"}
        if r.distortions:
            top = sorted(r.distortions.items(), key=lambda kv: -kv[1])[:3]
            row["dimensions"] = {d: round(v.score, 1) for d, v in r.dimensions.items()}
            row["top_distortions"] = {k: round(v, 2) for k, v in top}
        out.append(row)
        log(f"{name}: {r.score:.1f} ({r.grade})" + (f"; {row['dimensions']}; {row['top_distortions']}"
                                                     if r.distortions else ""))
    return sorted(out, key=lambda d: -d["score"])


def card_heading(model: Model) -> list[str]:
    """The lines every model card opens with: its id and its description."""
    return [f"# Model card: {model.id}", "", f"{model.info.description}.", ""]


def save_with_card(model: Model, path: Path, write_card: Callable[[Path], None]) -> str:
    """Save `model` to `path` and its card beside it (MODEL.md); a folder that cannot be written
    is one ConfigError line, whichever of the two failed."""
    try:
        saved = model.save(path)
        write_card(Path(saved).with_suffix(".md"))
    except OSError as exc:
        raise ConfigError(f"cannot write the model file {path}: {exc.strerror or exc}", path=str(path)) from None
    return saved


def sources_and_provenance(training: dict) -> list[str]:
    """A card's closing lines: every source with its split, and how the model was made."""
    lines = ["## Sources", "", "| source | kind | origin | split |", "| --- | --- | --- | --- |"]
    for s in training["sources"]:
        lines.append(f"| {s['name']} | {s['kind']} | {s['origin']} | {s['split']} |")
    lines += ["", f"Trained with vqscope {training['vqscope']} on {training['date']} (Python {training['python']}, "
              f"torch {training['torch']}) in {training['seconds'] / 60:.0f} minutes of compute, rendering included: "
              f"`{training.get('command', 'vqscope train')}`.", ""]
    return lines
