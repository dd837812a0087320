"""The `vqscope` command.

    vqscope score FILE                      readable summary and clip timeline
    vqscope score FILE --json               the result contract as JSON
    vqscope score DIR_OR_FILES... --out results.jsonl|.csv|.parquet
    vqscope probe FILE                      what the decoder sees
    vqscope models                          shipped models
    vqscope backbones                       registered feature extractors
    vqscope features DATASET_SPEC...        extract and cache clip features of a dataset
    vqscope train CONFIG.toml               train a model (one head per dataset) from a config
    vqscope eval MODEL DATASET_SPEC...      SROCC/KRCC/PLCC/RMSE with intervals, report, plots
    vqscope calibrate MODEL BENCHMARK... --out FILE   percentile scale on a fixed benchmark set
    vqscope serve                           HTTP service, workers, dashboard, /metrics

Every expected failure prints one line, `vqscope: error: ...`, and exits with the code of its
error class (see vqscope.errors); tracebacks appear only with --debug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_SOME_FAILED, ConfigError, VQScopeError


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score videos", description="Score one or more videos.")
    p.add_argument("inputs", nargs="+", metavar="PATH", help="video files or folders (searched recursively)")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (one file) or JSON lines (several)")
    p.add_argument("--out", "-o", default=None, metavar="FILE", help="write results to FILE (.jsonl, .csv, .parquet); resumes")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video, spread evenly")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--workers", "-j", type=int, default=1,
                   help="score this many videos at once, each in its own process (several files only)")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="run backbones and heads in PyTorch (default) or ONNX Runtime (exported on first use)")
    p.add_argument("--onnx-dir", default=None, metavar="DIR", help="use this `vqscope export onnx` folder")
    p.set_defaults(func=_cmd_score)


def _add_probe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="show what the decoder sees in a video")
    p.add_argument("input", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_probe)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list shipped models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)


def _add_backbones(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list registered backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_backbones)


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
    p.add_argument("--spatial", nargs="*", default=None, metavar="NAME", help="spatial backbones (default: the shipped model's)")
    p.add_argument("--temporal", nargs="*", default=None, metavar="NAME", help="temporal backbones")
    p.add_argument("--weights", action="append", default=[], metavar="BACKBONE=WEIGHTS",
                   help="weights name, file or URL of one backbone (repeatable)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds")
    p.set_defaults(func=_cmd_features)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model from a TOML config",
        description="Train a prediction network (shared trunk, one head per dataset) on cached features and "
                    "write a model file that `vqscope score --model` reads. See examples/train_konvid_lsvq.toml.",
    )
    p.add_argument("config", metavar="CONFIG.toml")
    p.add_argument("--out", "-o", default=None, metavar="FILE", help="model file to write (default: [model] output)")
    _add_cache_options(p)
    p.set_defaults(func=_cmd_train)


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
    p.add_argument("--version", type=int, default=None, help="version of the new model (default: unchanged)")
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


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the HTTP service, its workers and the dashboard",
        description="Job API (submit uploads, server paths or URLs; fetch and list results), a persistent job "
                    "store (SQLite in the data folder, or PostgreSQL by URL), bounded workers that survive "
                    "crashes, alert rules with webhooks, a dashboard at /dashboard and Prometheus /metrics.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="jobs database, uploads and token (default: $VQSCOPE_DATA_DIR or ~/.local/share/vqscope/service)")
    p.add_argument("--db", default=os.environ.get("VQSCOPE_DATABASE_URL"), metavar="URL",
                   help="database URL, e.g. postgresql://user:pass@host/db (default: $VQSCOPE_DATABASE_URL, "
                        "else SQLite in the data folder)")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file")
    p.add_argument("--token", default=None, help="write token (default: $VQSCOPE_TOKEN, else DATA_DIR/token)")
    p.add_argument("--workers", type=int, default=1, help="videos scored at once (default 1)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="N", help="PyTorch threads of this process")
    p.add_argument("--max-upload-mb", type=float, default=512, help="upload and download size limit (default 512)")
    p.add_argument("--max-clips", type=int, default=None, help="default clip limit per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="default clip length in seconds")
    p.add_argument("--path-root", action="append", default=[], metavar="DIR",
                   help="only accept server paths under DIR (repeatable; default: any path the server can read)")
    p.add_argument("--no-urls", action="store_true", help="refuse URL submissions")
    p.add_argument("--keep-inputs", action="store_true", help="keep uploaded files after their job finished")
    p.add_argument("--lease-seconds", type=float, default=30, help="a dead worker's job is taken over after this")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often idle workers look for jobs")
    p.add_argument("--max-attempts", type=int, default=3, help="a job that kills its worker this often is failed")
    p.add_argument("--alert-rules", default=None, metavar="FILE", help="JSON list of alert rules to load at start")
    p.add_argument("--alert-interval", type=float, default=30, help="seconds between alert evaluations")
    p.add_argument("--webhook", default=None, metavar="URL", help="webhook for alert rules that name none")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--migrate-only", action="store_true", help="create or upgrade the database schema and exit")
    p.set_defaults(func=_cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqscope", description="No-reference video quality assessment.")
    parser.add_argument("--version", action="version", version=f"vqscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_score, _add_probe, _add_models, _add_backbones, _add_features, _add_train, _add_eval,
                _add_calibrate, _add_serve, _add_export):
        add(sub)
    return parser


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to another runtime",
                       description="Write a model's learned backbones and heads as ONNX files (dynamic batch) "
                                   "with a manifest; `vqscope score --onnx-dir DIR` scores with them.")
    p.add_argument("format", choices=("onnx",))
    p.add_argument("model", nargs="?", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--out", "-o", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_export)


# -- commands -------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from .zoo import load_model

    model = load_model(args.model)
    try:
        folder = export_onnx(model, args.out)
    except OSError as exc:
        from .errors import OutputError

        raise OutputError(f"{args.out}: cannot write the export ({exc.strerror or exc})", args.out) from None
    files = sorted(f.name for f in folder.iterdir())
    print(f"exported {model.id} to {folder}: {', '.join(files)}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from .output import expand_inputs
    from .zoo import load_model

    if args.max_clips is not None and args.max_clips < 1:
        raise ConfigError("--max-clips must be at least 1")
    if args.clip_seconds is not None and not args.clip_seconds > 0:
        raise ConfigError("--clip-seconds must be greater than 0")
    paths = expand_inputs(args.inputs)
    if not paths:
        raise ConfigError("no video files found in the given folders")
    model = load_model(args.model)
    if args.runtime == "onnx" or args.onnx_dir:
        from .export import use_onnx

        use_onnx(model, args.onnx_dir)
    options = {"max_clips": args.max_clips, "clip_seconds": args.clip_seconds}
    if len(paths) == 1 and args.out is None:
        with _Progress(1, enabled=not args.no_progress and sys.stderr.isatty(), transient=True) as progress:
            progress.start(paths[0])
            result = model.score(paths[0], on_clip=progress.clip, **options)
        if args.json:
            print(result.to_json())
        else:
            _print_result(result)
        return 0
    return _score_many(model, paths, args, options)


def _score_many(model: Any, paths: list[str], args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .output import ResultFile

    out = ResultFile(args.out) if args.out else None
    skip = out.scored(model.id) if out is not None else set()
    todo = [p for p in paths if p not in skip]
    failures = 0
    show = not args.no_progress and sys.stderr.isatty()
    with _Progress(len(todo), enabled=show) as progress:
        for path, record in _records(model, todo, args, options, progress):
            if record["status"] != "ok":
                failures += 1
                progress.note(f"skipped {path}: {record.get('message', record.get('error'))}")
            if out is not None:
                out.write(record)
            if args.json or out is None:
                print(json.dumps(record, ensure_ascii=False), flush=True)
            progress.advance()
    if out is not None:
        out.close()
        done = len(todo) - failures
        print(
            f"vqscope: {done} scored, {failures} failed, {len(paths) - len(todo)} already in {args.out}",
            file=sys.stderr,
        )
    return EXIT_SOME_FAILED if failures else 0


def _records(model: Any, paths: list[str], args: argparse.Namespace, options: dict[str, Any], progress: Any):
    """(path, output record) per video, in this process or in `--workers` processes."""
    from .output import error_record, ok_record

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers == 1 or len(paths) == 1:
        for path in paths:
            progress.start(path)
            try:
                yield path, ok_record(model.score(path, on_clip=progress.clip, **options).to_dict())
            except VQScopeError as exc:
                yield path, error_record(path, model.id, exc.kind, exc.message)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Each worker loads the model file itself and runs torch on one thread: N processes on N
    # cores decode and infer side by side without fighting over intra-op threads.
    setup = (model.path or args.model, args.runtime, args.onnx_dir)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_worker_init, initargs=setup) as pool:
        futures = {pool.submit(_worker_score, path, options): path for path in paths}
        for future in as_completed(futures):
            yield futures[future], future.result()


_WORKER_MODEL: Any = None


def _worker_init(model_ref: str | None, runtime: str, onnx_dir: str | None) -> None:
    global _WORKER_MODEL
    import torch

    from .zoo import load_model

    torch.set_num_threads(1)
    _WORKER_MODEL = load_model(model_ref)
    _WORKER_MODEL.extractor.torch_threads = 1
    if runtime == "onnx" or onnx_dir:
        from .export import use_onnx

        use_onnx(_WORKER_MODEL, onnx_dir, threads=1)


def _worker_score(path: str, options: dict[str, Any]) -> dict[str, Any]:
    from .output import error_record, ok_record

    try:
        return ok_record(_WORKER_MODEL.score(path, **options).to_dict())
    except VQScopeError as exc:
        return error_record(path, _WORKER_MODEL.id, exc.kind, exc.message)


def _cmd_probe(args: argparse.Namespace) -> int:
    from .video import probe

    info = probe(args.input)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        for k, v in info.to_dict().items():
            print(f"{k:>20}: {v}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .zoo import list_models

    models = list_models()
    if args.json:
        print(json.dumps([
            {"id": m.id, "path": str(m.path), "card": str(m.card_path) if m.card_path else None,
             "description": m.description, "summary": m.summary, "size_bytes": m.size_bytes}
            for m in models
        ], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Shipped models")
    for col in ("model", "size", "description", "card"):
        table.add_column(col)
    for m in models:
        table.add_row(m.id, f"{m.size_bytes / 1e6:.1f} MB", m.summary or m.description, str(m.card_path or ""))
    Console().print(table)
    return 0


def _cmd_backbones(args: argparse.Namespace) -> int:
    from .backbones import list_backbones

    specs = list_backbones()
    rows = [
        {"name": s.name, "role": s.role, "feature_dim": s.feature_dim,
         "weights": [w.name for w in s.weights] if s.weights else [], "description": s.description}
        for s in specs
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            weights = ", ".join(r["weights"]) or "none needed"
            print(f"{r['name']:<20} {r['role']:<9} {r['feature_dim']:>5}  weights: {weights}")
    return 0


def _log(text: str) -> None:
    print(f"vqscope: {text}", file=sys.stderr, flush=True)


def _workers(args: argparse.Namespace) -> int | None:
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    return args.workers


def _feature_config(args: argparse.Namespace, experiment: Any = None) -> Any:
    """Feature settings: a training config's, a model's, or the default, then the flags."""
    from .features import FeatureConfig
    from .model import read_model_file
    from .sampling import ClipPlanConfig
    from .zoo import resolve_model_path

    if experiment is not None:
        base = experiment.features.config
    elif args.model:
        meta, _ = read_model_file(str(resolve_model_path(args.model)), tensors=False)
        base = FeatureConfig.from_dict(meta["features"])
    else:
        base = FeatureConfig()
    weights = dict(base.weights)
    for item in args.weights:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ConfigError(f"--weights {item!r} is not BACKBONE=WEIGHTS")
        weights[name.strip()] = value.strip()
    plan = base.clip_plan
    try:
        plan = ClipPlanConfig(
            clip_seconds=args.clip_seconds if args.clip_seconds is not None else plan.clip_seconds,
            max_clips=args.max_clips if args.max_clips is not None else plan.max_clips,
            window_frames=plan.window_frames,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    spatial = tuple(args.spatial) if args.spatial is not None else base.spatial
    temporal = tuple(args.temporal) if args.temporal is not None else base.temporal
    unused = sorted(set(weights) - set(spatial + temporal))
    if unused:
        raise ConfigError(f"--weights names {unused[0]!r}, which is not among the backbones")
    return FeatureConfig(spatial=spatial, temporal=temporal, weights=weights, clip_plan=plan,
                         video_meta=base.video_meta)


def _cmd_features(args: argparse.Namespace) -> int:
    from .data.datasets import load_dataset
    from .experiment.config import default_cache_dir, default_workers, load_config
    from .experiment.data import ProgressBar, describe_report, ensure_features, open_cache

    experiment = load_config(args.config) if args.config else None
    config = _feature_config(args, experiment)
    specs = args.specs or ([d.spec for d in experiment.datasets] if experiment is not None else [])
    if not specs:
        raise ConfigError("name at least one DATASET_SPEC, or a --config whose datasets to extract")
    cache_dir = args.cache_dir or (experiment.features.cache_dir if experiment is not None else None)
    cache = open_cache(cache_dir or default_cache_dir(), config)
    workers = _workers(args) or (experiment.features.workers if experiment else None) or default_workers()
    failures = 0
    for spec in specs:
        dataset = load_dataset(spec)
        _log(dataset.summary())
        with ProgressBar(dataset.name, enabled=not args.no_progress, log=_log) as bar:
            report = ensure_features([(dataset.name, dataset)], cache, workers, bar)
        print(f"{spec}: {len(dataset.items)} videos: " + describe_report(report, cache.dir), flush=True)
        for path, reason in report.failed.items():
            _log(f"failed {path}: {reason}")
        failures += len(report.failed)
    return EXIT_SOME_FAILED if failures else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .experiment.config import load_config
    from .experiment.runner import run_training

    config = load_config(args.config)
    outcome = run_training(config, out=args.out, cache_dir=args.cache_dir, workers=_workers(args),
                           progress=not args.no_progress, log=_log)
    print(f"wrote {outcome.path} ({outcome.model.id}, heads: {', '.join(outcome.model.network.config.heads)}, "
          f"primary: {outcome.model.network.config.primary})")
    for name, metrics in outcome.test.items():
        print(f"  test {name}: SROCC {metrics['srocc']:.4f}  KRCC {metrics['krcc']:.4f}  "
              f"PLCC {metrics['plcc_mapped']:.4f} (mapped)  RMSE {metrics['rmse_mapped']:.2f}  n={metrics['n']}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import EvalSet, default_label, evaluate_models
    from .experiment.config import default_cache_dir, default_workers
    from .experiment.data import ProgressBar
    from .report import text_table, write_plots, write_report
    from .zoo import load_model

    if args.bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more")
    if args.report and Path(args.report).suffix.lower() not in (".md", ".markdown", ".html", ".htm"):
        raise ConfigError(f"--report {args.report}: use a .md or .html file name")
    test_sets = [EvalSet.parse(s) for s in args.specs]
    taken: set[str] = set()
    models = [(default_label(m, taken), m) for m in (load_model(name) for name in [args.model, *args.compare])]
    with ProgressBar("features", enabled=not args.no_progress, log=_log) as bar:
        report = evaluate_models(models, test_sets, cache_dir=args.cache_dir or default_cache_dir(),
                                 workers=_workers(args) or default_workers(), heads=args.head,
                                 n_boot=args.bootstrap, seed=args.seed, progress=bar, log=_log)
    if args.plot_dir:
        write_plots(report, args.plot_dir)
    if args.report:
        _log(f"wrote {write_report(report, args.report)}")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(text_table(report, "srocc"))
        print()
        print(text_table(report, "plcc_mapped"))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .benchmark import calibrate, resolve_benchmark
    from .calibration import GradeScale
    from .errors import OutputError
    from .zoo import load_model, resolve_model_path

    source = resolve_model_path(args.model)
    if os.path.abspath(args.out) == os.path.abspath(source):
        raise ConfigError("--out must be a new file: a published model file is never changed in place")
    if args.points < 2:
        raise ConfigError("--points must be at least 2")
    model = load_model(args.model)
    try:
        grades = GradeScale.parse(args.grade_thresholds, args.grade_labels, args.grade_basis, base=model.grades)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    bench = resolve_benchmark(args.benchmark, args.name)
    if bench.missing:
        _log(f"{len(bench.missing)} labelled benchmark videos are not on disk and are left out")
    show = not args.no_progress and sys.stderr.isatty()
    with _Progress(len(bench.videos), enabled=show) as progress:
        def on_video(path: str, score: float | None, error: Exception | None) -> None:
            if error is not None:
                progress.note(f"skipped {path}: {getattr(error, 'message', error)}")
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
        print(f"{new.id}: calibrated on {cal.benchmark!r}, {cal.size} videos, fingerprint {cal.fingerprint[:16]}")
        print(f"raw score at percentiles: {quart}")
        print(f"grades ({cal.grades.basis}): " + ", ".join(
            f"{label} from {t:g}" for label, t in zip(cal.grades.labels[1:], cal.grades.thresholds)))
        print(f"wrote {args.out}")
    for path, kind, message in run.failures:
        _log(f"left out {path}: {kind}: {message}")
    return EXIT_SOME_FAILED if run.failures else 0


def _quartiles(cal: Any) -> list[tuple[float, float]]:
    import numpy as np

    return [(p, float(np.interp(p, cal.percentile, cal.raw))) for p in (10, 25, 50, 75, 90)]


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path as _Path

    from .service import ServiceConfig, serve
    from .service.config import TOKEN_ENV, default_data_dir

    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    score_options = {k: v for k, v in (("max_clips", args.max_clips), ("clip_seconds", args.clip_seconds)) if v}
    config = ServiceConfig(
        data_dir=_Path(args.data_dir) if args.data_dir else default_data_dir(),
        database_url=args.db, model=args.model, token=args.token, workers=args.workers,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), lease_s=args.lease_seconds,
        poll_s=args.poll_seconds, max_attempts=args.max_attempts, alert_interval_s=args.alert_interval,
        alert_rules_file=_Path(args.alert_rules) if args.alert_rules else None, default_webhook=args.webhook,
        path_roots=tuple(_Path(p) for p in args.path_root), allow_urls=not args.no_urls,
        keep_inputs=args.keep_inputs, torch_threads=args.torch_threads, score_options=score_options,
    )
    if args.migrate_only:
        from .service.migrations import current
        from .service.store import JobStore, safe_url

        config.prepare()
        store = JobStore(config.resolved_database_url())
        _log(f"database {safe_url(store.url)} is at schema revision {current(store.engine)}")
        store.close()
        return 0
    if not (args.token or os.environ.get(TOKEN_ENV)):
        config.resolved_token()
        _log(f"write token: in {config.data_dir / 'token'}")
    serve(config, host=args.host, port=args.port, log_level=args.log_level)
    return 0


# -- presentation ---------------------------------------------------------------------------
def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    scaled = "n/a" if result.scaled_score is None else f"{result.scaled_score:.0f}"
    console.print(f"[bold]{result.video}[/bold]  ({result.width}x{result.height}, {result.fps:.2f} fps, "
                  f"{result.duration_s:.1f} s)  model {result.model}")
    console.print(f"score [bold]{result.score:.1f}[/bold]/100   scaled {scaled}   grade [bold]{result.grade}[/bold]")
    console.print(result.description)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    table = Table(title="Clip timeline", show_edge=False)
    table.add_column("clip", justify="right")
    table.add_column("time (s)")
    table.add_column("score", justify="right")
    table.add_column("", no_wrap=True)
    for c in result.clips:
        bar = "█" * int(round(c.score / 5))
        flag = " (padded)" if c.padded else ""
        table.add_row(str(c.index + 1), f"{c.start_s:.1f}-{c.end_s:.1f}", f"{c.score:.1f}", bar + flag)
    console.print(table)


class _Progress:
    """Rich progress bar over videos (and clips of the current video); silent when disabled."""

    def __init__(self, total: int, enabled: bool, transient: bool = False):
        self.enabled = enabled
        self.total = total
        self.transient = transient
        self._progress: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                transient=self.transient,
            )
            self._progress.start()
            self._videos = self._progress.add_task("videos", total=self.total)
            self._clips = self._progress.add_task("clips", total=1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, path: str) -> None:
        if self._progress is not None:
            self._progress.update(self._clips, description=os.path.basename(path)[:40], completed=0, total=1)

    def clip(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._clips, completed=done, total=total)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._videos)

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[yellow]{text}[/yellow]")
        else:
            print(f"vqscope: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VQScopeError as exc:
        if args.debug:
            raise
        print(f"vqscope: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vqscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        print(f"vqscope: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
