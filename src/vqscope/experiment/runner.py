"""`vqscope train CONFIG.toml`: datasets -> cached features -> splits -> fit -> test -> model file.

The model file is the one `vqscope score` reads (model.py), with the whole configuration
(TOML text and parsed form), the split sizes, the learning curve and the test results in
its metadata, so a number quoted from a model can always be traced to how it was made.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..calibration import Calibration, fingerprint
from ..data.datasets import Dataset, load_dataset
from ..errors import ConfigError
from ..features.cache import config_key
from ..metrics import detailed_agreement
from ..model import Model, ModelInfo
from ..output import name_once
from .config import DatasetEntry, ExperimentConfig, default_workers
from .datasets_card import write_datasets_card
from .provenance import save_with_card
from .data import ProgressBar, VideoSet, describe_report, ensure_features, load_video_set, open_cache
from .multihead import MultiHeadResult, fit_multihead, head_of, predict_videos
from .splits import Split, make_split

Log = Callable[[str], None]


@dataclass
class FoldOutcome:
    fold: int | None
    result: MultiHeadResult
    splits: dict[str, Split]
    test: dict[str, dict] = field(default_factory=dict)  # dataset -> DetailedAgreement.to_dict()


@dataclass
class TrainOutcome:
    model: Model
    path: str
    folds: list[FoldOutcome]
    chosen: FoldOutcome

    @property
    def test(self) -> dict[str, dict]:
        return self.chosen.test


def load_datasets(config: ExperimentConfig) -> list[tuple[DatasetEntry, Dataset]]:
    out = []
    for entry in config.datasets:
        dataset = load_dataset(entry.spec)
        if not dataset.items:
            where = f"; the first is expected at {dataset.missing[0].path}" if dataset.missing else ""
            raise ConfigError(f"dataset {entry.name!r}: none of its {len(dataset.missing)} labelled videos is on disk{where}")
        out.append((entry, dataset))
    return out


def run_training(
    config: ExperimentConfig,
    *,
    out: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    n_boot: int = 1000,
    log: Log = print,
) -> TrainOutcome:
    started = time.time()
    loaded = load_datasets(config)
    for entry, dataset in loaded:
        # the summary starts with the dataset's name: the entry's is added only where it differs
        log(dataset.summary() if entry.name == dataset.name else f"{entry.name}: {dataset.summary()}")
    cache_root = Path(cache_dir) if cache_dir else config.features.cache_path
    cache = open_cache(cache_root, config.features.config)
    n_workers = workers or config.features.workers or default_workers()
    with ProgressBar("features", enabled=progress, log=log) as bar:
        report = ensure_features([(e.name, d) for e, d in loaded], cache, n_workers, bar)
    log("features: " + describe_report(report, cache.dir))
    for path, reason in list(report.failed.items())[:10]:
        log(f"  left out {name_once(path, reason)}")
    sets = {entry.name: load_video_set(entry.name, dataset, cache) for entry, dataset in loaded}
    entries = {entry.name: entry for entry, _ in loaded}

    kfold = [e for e in config.datasets if e.split == "kfold"]
    folds: list[int | None] = list(range(kfold[0].folds)) if config.train.cross_validate else [None]
    outcomes = []
    for fold in folds:
        if fold is not None:
            log(f"fold {fold + 1}/{len(folds)}")
        outcomes.append(_fit_fold(config, entries, sets, fold, n_boot, log))
    chosen_fold = kfold[0].fold if config.train.cross_validate else None
    chosen = next(o for o in outcomes if o.fold == chosen_fold)

    network = chosen.result.network
    everything = [(name, v) for name, v in sets.items() if len(v)]
    scores = np.concatenate([predict_videos(network, v, network.config.primary, clip_scores=True)
                             for _, v in everything])
    calibration = Calibration.fit(
        scores,
        f"all videos of {', '.join(sets)} ({len(scores)})",
        fingerprint(f"{name}:{item.key}" for name, v in everything for item in v.items),
    )
    info = ModelInfo(
        name=config.model.name,
        version=config.model.version,
        description=config.model.description or _describe(config),
        training=_training_metadata(config, loaded, sets, outcomes, chosen, report, started),
        card=_card(config, outcomes, chosen),
    )
    model = Model(info, config.features.config, network, calibration)
    saved = save_with_card(model, Path(out) if out else config.output_path(),
                           lambda card: write_datasets_card(card, model))
    return TrainOutcome(model, saved, outcomes, chosen)


def _fit_fold(config: ExperimentConfig, entries: dict[str, DatasetEntry], sets: dict[str, VideoSet],
              fold: int | None, n_boot: int, log: Log) -> FoldOutcome:
    splits = {name: make_split(entries[name], v, config.train.seed, fold) for name, v in sets.items()}
    for name, s in splits.items():
        log(f"{name}: {s.counts()['train']} train, {s.counts()['val']} validation, {s.counts()['test']} test videos")
    train = {name: sets[name].subset(s.train) for name, s in splits.items()}
    val = {name: sets[name].subset(s.val) for name, s in splits.items()}
    result = fit_multihead(train, val, config.train, primary=config.primary, log=log)
    log(f"best epoch {result.best_epoch}: validation SROCC {result.best_val_srocc:.4f}")
    outcome = FoldOutcome(fold, result, splits)
    for name, s in splits.items():
        if len(s.test) < 3:
            if len(s.test):
                log(f"{name}: only {len(s.test)} test videos, too few to correlate; no test result")
            continue
        test = sets[name].subset(s.test)
        pred = predict_videos(result.network, test, head_of(name, config.train), clip_scores=True)
        agreement = detailed_agreement(pred, test.target, n_boot=n_boot, seed=config.train.seed)
        outcome.test[name] = agreement.to_dict()
        log(f"test {name} (head {head_of(name, config.train)}, {agreement.n} videos): SROCC {agreement.srocc:.4f} "
            f"PLCC {agreement.plcc_mapped:.4f} (mapped)")
    return outcome


def _describe(config: ExperimentConfig) -> str:
    fc = config.features.config
    backbones = " + ".join(fc.spatial + fc.temporal)
    heads = "one shared head" if config.train.shared_head else f"one head per dataset ({', '.join(config.head_names)})"
    return f"{backbones} features, MLP trunk {list(config.train.hidden)}, {heads}; trained with vqscope train"


def _training_metadata(config, loaded, sets, outcomes, chosen, report, started) -> dict:
    datasets = []
    for entry, dataset in loaded:
        v = sets[entry.name]
        datasets.append({
            "name": entry.name,
            "head": head_of(entry.name, config.train),
            "spec": entry.spec,
            "scale": list(dataset.scale),
            "found": len(dataset.items),
            "missing": len(dataset.missing),
            "failed": len(v.failed),
            "split": {"method": entry.split, **({"folds": entry.folds, "fold": entry.fold} if entry.split == "kfold" else {}),
                      **chosen.splits[entry.name].counts()},
        })
    meta = {
        "vqscope": __version__,
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "trainer": "vqscope train",
        "config": config.to_metadata(),
        "datasets": datasets,
        "features": {"cache_key": config_key(config.features.config), "extracted": report.extracted,
                     "cached": report.cached, "failed": len(report.failed)},
        "train": {**asdict(config.train), "hidden": list(config.train.hidden)},
        "heads": list(config.head_names),
        "primary": config.primary,
        "best_epoch": chosen.result.best_epoch,
        "val_srocc": round(chosen.result.best_val_srocc, 4),
        "val_srocc_per_dataset": {k: round(v, 4) for k, v in chosen.result.val_srocc.items()},
        "history": [{k: round(v, 5) for k, v in h.items()} for h in chosen.result.history],
        "calibration_set": "every video of the training datasets (train, validation and test)",
        "seconds": round(time.time() - started),
    }
    if len(outcomes) > 1:
        meta["cross_validation"] = _cv_summary(outcomes)
    return meta


def _cv_summary(outcomes: list[FoldOutcome]) -> dict:
    summary: dict = {"folds": [{"fold": o.fold, "test": o.test} for o in outcomes]}
    names = sorted({n for o in outcomes for n in o.test})
    for name in names:
        for metric in ("srocc", "plcc_mapped"):
            values = [o.test[name][metric] for o in outcomes if name in o.test]
            summary.setdefault(name, {})[metric] = {"mean": round(float(np.mean(values)), 4),
                                                    "std": round(float(np.std(values)), 4)}
    return summary


def _card(config: ExperimentConfig, outcomes: list[FoldOutcome], chosen: FoldOutcome) -> dict:
    parts = [f"{n} SROCC {m['srocc']:.3f}" for n, m in chosen.test.items()]
    summary = ("test: " + ", ".join(parts)) if parts else "no test split"
    card = {"summary": f"{'shared head' if config.train.shared_head else 'multi-head'} model; {summary}",
            "evaluation": chosen.test}
    if len(outcomes) > 1:
        card["cross_validation"] = {k: v for k, v in _cv_summary(outcomes).items() if k != "folds"}
    return card
