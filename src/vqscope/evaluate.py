"""`vqscope eval`: models against labelled test sets, the way VQA papers report it.

For every (row, test set) pair -- a row is one head of one model -- this computes SROCC,
KRCC, PLCC and RMSE, PLCC and RMSE after the VQEG 4-parameter logistic mapping, and
bootstrap intervals (metrics.py). Predictions are the model's 0-100 video scores (mean of
clip scores); MOS are put on the same 0-100 scale with the test set's own `to_unit`, so
RMSE is in points of the model's scale whatever scale the study used.

The rows make the cross-dataset table: a head trained on dataset A scored on test sets B, C,
... A model with one head per dataset also gets a `matched` row, in which every test set is
scored by the head named like it (the primary head where there is none), and with several
test sets a `pooled` column puts all their videos together. Pooling is where a single head
pays for studies disagreeing on scale, and per-dataset heads do not -- with the caveat that a
matched head needs to know which study a video comes from, which real traffic does not say.

Test sets are named `NAME=ADAPTER:PATH...` or by default like training names them (the
adapter, or a CSV file's stem), so `lsvq:/data/LSVQ@test` meets the head `lsvq`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .data.datasets import Dataset, DatasetSpec, load_dataset
from .errors import ConfigError
from .experiment.config import name_for_spec
from .experiment.data import VideoSet, ensure_features, load_video_set, open_cache
from .experiment.multihead import predict_videos
from .metrics import DetailedAgreement, detailed_agreement
from .model import Model

POOLED = "pooled"
MATCHED = "matched"


@dataclass(frozen=True)
class EvalSet:
    name: str
    spec: str

    @classmethod
    def parse(cls, text: str) -> "EvalSet":
        """`NAME=ADAPTER:PATH[@SPLIT][?...]` or `ADAPTER:PATH...` (name derived)."""
        head, eq, rest = text.partition("=")
        if eq and ":" not in head and "/" not in head and head.strip():
            name, spec = head.strip(), rest.strip()
        else:
            name, spec = "", text.strip()
        parsed = DatasetSpec.parse(spec)
        return cls(name or name_for_spec(parsed), spec)


@dataclass
class Row:
    label: str  # "model@1:head"
    model: str  # model label
    head: str | None  # None: matched heads
    trained_on: str = ""


@dataclass
class Cell:
    agreement: DetailedAgreement | None
    pred: np.ndarray
    target: np.ndarray
    note: str = ""


@dataclass
class EvaluationReport:
    models: list[dict]
    test_sets: list[dict]
    rows: list[Row]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    settings: dict
    plots: dict[tuple[str, str], str] = field(default_factory=dict)

    def value(self, row: str, column: str, metric: str) -> float:
        cell = self.cells.get((row, column))
        if cell is None or cell.agreement is None:
            return float("nan")
        return float(getattr(cell.agreement, metric))

    def table(self, metric: str) -> list[list[float]]:
        return [[self.value(r.label, c, metric) for c in self.columns] for r in self.rows]

    def to_dict(self) -> dict:
        return {
            "settings": self.settings,
            "models": self.models,
            "test_sets": self.test_sets,
            "rows": [{"label": r.label, "model": r.model, "head": r.head or MATCHED, "trained_on": r.trained_on}
                     for r in self.rows],
            "columns": self.columns,
            "results": [
                {"row": r, "column": c, "n": int(len(cell.pred)), "note": cell.note,
                 **({"metrics": cell.agreement.to_dict()} if cell.agreement is not None else {}),
                 **({"plot": self.plots[(r, c)]} if (r, c) in self.plots else {})}
                for (r, c), cell in self.cells.items()
            ],
        }


def _trained_on(model: Model, head: str | None) -> str:
    training = model.info.training or {}
    datasets = training.get("datasets")
    if isinstance(datasets, list) and datasets:
        if head is None:
            return "each its own"
        named = [d for d in datasets if isinstance(d, dict) and d.get("head") == head]
        if named:
            return ", ".join(str(d.get("name")) for d in named)
        return ""
    if "corpus" in training:
        return "synthetic corpus"
    return ""


def evaluate_models(
    models: Sequence[tuple[str, Model]],
    test_sets: Sequence[EvalSet],
    *,
    cache_dir: str | os.PathLike[str],
    workers: int = 1,
    heads: Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> EvaluationReport:
    names = [t.name for t in test_sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"test set names must differ (got {', '.join(names)}); name them NAME=ADAPTER:PATH")
    if POOLED in names:
        raise ConfigError(f"{POOLED!r} is reserved for the pooled column; name the test set otherwise")
    datasets: list[tuple[str, Dataset]] = []
    for t in test_sets:
        dataset = load_dataset(t.spec)
        if not dataset.items:
            raise ConfigError(f"test set {t.name!r} ({t.spec}): none of its {len(dataset.missing)} labelled videos is on disk")
        datasets.append((t.name, dataset))
    if heads:
        unknown = [h for h in heads if not any(h in m.network.config.heads for _, m in models)]
        if unknown:
            available = sorted({h for _, m in models for h in m.network.config.heads})
            raise ConfigError(f"no model has head {unknown[0]!r} (heads: {', '.join(available)})")

    columns = names + ([POOLED] if len(names) > 1 else [])
    rows: list[Row] = []
    cells: dict[tuple[str, str], Cell] = {}
    set_info: dict[str, dict] = {name: {"name": name, "spec": t.spec, "scale": list(d.scale), "found": len(d.items),
                                        "missing": len(d.missing), "scored": {}}
                                 for (name, d), t in zip(datasets, test_sets)}
    model_info = []
    for label, model in models:
        cache = open_cache(cache_dir, model.features)
        report = ensure_features(datasets, cache, workers, progress)
        if log is not None:
            log(f"{label}: features {report.extracted} extracted, {report.cached} cached, {len(report.failed)} failed")
        sets: dict[str, VideoSet] = {name: load_video_set(name, d, cache) for name, d in datasets}
        for name, v in sets.items():
            set_info[name]["scored"][label] = len(v)
        model_heads = list(model.network.config.heads)
        chosen = [h for h in model_heads if not heads or h in heads]
        model_info.append({"label": label, "id": model.id, "path": model.path, "heads": model_heads,
                           "primary": model.network.config.primary, "description": model.info.description})
        preds = {(h, n): predict_videos(model.network, v, h, clip_scores=True)
                 for h in chosen for n, v in sets.items()}
        model_rows = [Row(f"{label}:{h}", label, h, _trained_on(model, h)) for h in chosen]
        if not heads and len(model_heads) > 1 and any(n in model_heads for n in names):
            model_rows.append(Row(f"{label}:{MATCHED}", label, None, _trained_on(model, None)))
            primary = model.network.config.primary
            for n, v in sets.items():
                head = n if n in model_heads else primary
                if (head, n) not in preds:
                    preds[(head, n)] = predict_videos(model.network, v, head, clip_scores=True)
        for row in model_rows:
            pooled_p, pooled_t = [], []
            for n, v in sets.items():
                head = row.head if row.head is not None else (n if n in model_heads else model.network.config.primary)
                pred = preds[(head, n)]
                cells[(row.label, n)] = _cell(pred, v.target, n_boot, level, seed,
                                              note="" if row.head is not None else f"head {head}")
                pooled_p.append(pred)
                pooled_t.append(v.target)
            if POOLED in columns:
                cells[(row.label, POOLED)] = _cell(np.concatenate(pooled_p), np.concatenate(pooled_t), n_boot, level, seed)
        rows += model_rows
    settings = {"bootstrap": n_boot, "ci_level": level, "seed": seed, "target": "MOS mapped to 0-100 by each test "
                "set's scale", "prediction": "video score = mean of clip scores, each limited to 0-100 as "
                "`vqscope score` does"}
    return EvaluationReport(model_info, list(set_info.values()), rows, columns, cells, settings)


def _cell(pred: np.ndarray, target: np.ndarray, n_boot: int, level: float, seed: int, note: str = "") -> Cell:
    ok = np.isfinite(pred) & np.isfinite(target)
    if ok.sum() < 3 or np.ptp(pred[ok]) == 0 or np.ptp(target[ok]) == 0:
        return Cell(None, pred, target, note or "too few videos (or constant scores) to correlate")
    return Cell(detailed_agreement(pred, target, n_boot=n_boot, level=level, seed=seed), pred, target, note)


def default_label(model: Model, taken: set[str]) -> str:
    label = model.id
    i = 2
    while label in taken:
        label, i = f"{model.id}#{i}", i + 1
    taken.add(label)
    return label


__all__ = ["EvaluationReport", "POOLED", "MATCHED", "EvalSet", "evaluate_models", "default_label"]
