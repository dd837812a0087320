"""Scoring commands: score, probe, models, backbones, ask, describe, batch.

Each command is a parser builder (`_add_*`) and a handler (`_cmd_*`); `register` adds them all.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from ..errors import EXIT_SOME_FAILED, ConfigError, VQScopeError
from ..output import name_once
from ..sampling import check_clip_options
from .common import Progress, log, stdout_console


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


def _cmd_score(args: argparse.Namespace) -> int:
    from ..output import expand_inputs
    from ..zoo import load_model

    check_clip_options(args.clip_seconds, args.max_clips, flags=True)  # before any file is opened
    paths = expand_inputs(args.inputs)
    if not paths:
        raise ConfigError("no video files found in the given folders")
    from ..decode_backends import resolve_decoder

    gpu_runtime = args.runtime == "tensorrt" or bool(args.trt_dir)
    if args.workers > 1 and len(paths) > 1 and (gpu_runtime or args.decoder in ("torchcodec", "nvdec")):
        raise ConfigError("--runtime tensorrt and --decoder torchcodec/nvdec run in one process: leave --workers at 1")
    decoder = resolve_decoder(args.decoder)
    model = load_model(args.model)
    if gpu_runtime:
        from ..export import use_tensorrt

        use_tensorrt(model, args.trt_dir)
    elif args.runtime == "onnx" or args.onnx_dir:
        from ..export import use_onnx

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
    from ..output import ResultFile, summary

    out = ResultFile(args.out) if args.out else None
    skip = out.scored(model.id) if out is not None else set()
    todo = [p for p in paths if p not in skip]
    failures = 0
    shown: list[dict[str, Any]] = []
    show = not args.no_progress and sys.stderr.isatty()
    try:
        with Progress(len(todo), enabled=show) as progress:
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
        console = stdout_console()
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
    from ..output import error_record, ok_record

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
    from ..features.pipeline import ScoringPipeline

    # N decode processes feed batched inference in this process, across videos, overlapped
    # (vqscope.features.pipeline); the backbones (torch or ONNX) are loaded once, here.
    with ScoringPipeline(model, decode_workers=args.workers, **options) as pipeline:
        for path, outcome in pipeline.score(paths):
            if isinstance(outcome, VQScopeError):
                yield path, error_record(path, model.id, outcome.kind, outcome.message)
            else:
                yield path, ok_record(outcome.to_dict())


def _add_probe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="show what the decoder sees in a video")
    p.add_argument("input", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_probe)


def _cmd_probe(args: argparse.Namespace) -> int:
    from ..video import probe

    info = probe(args.input)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        for k, v in info.to_dict().items():
            print(f"{k:>20}: {v}")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list shipped models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from ..zoo import format_size, list_models, resolve_model_path

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

    console = stdout_console()
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


def _add_backbones(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list registered backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_backbones)


def _cmd_backbones(args: argparse.Namespace) -> int:
    from ..backbones import list_backbones

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


def _requested_dimensions(text: str | None, model: Any) -> tuple[str, ...] | None:
    """--dimensions, checked against the taxonomy and against what the model predicts, before scoring."""
    if text is None:
        return None
    from ..ask import model_predicts
    from ..result import parse_dimensions, require_dimensions

    names = parse_dimensions(text)
    require_dimensions(names, model_predicts(model)[0], model.id)
    return names


def _only_record(record: dict[str, Any], dimensions: Sequence[str] | None) -> dict[str, Any]:
    """A results-file record keeping only the requested dimensions (error records pass through)."""
    if not dimensions or record.get("status") != "ok":
        return record
    from ..result import Result

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
    from ..result_cache import ResultCache, cached_score

    path = args.input if path is None else path
    check_clip_options(args.clip_seconds, args.max_clips, flags=True)
    options = {"max_clips": args.max_clips, "clip_seconds": args.clip_seconds}

    def score() -> Any:
        with Progress(1, enabled=not args.no_progress and sys.stderr.isatty(), transient=True) as progress:
            progress.start(path)
            return model.score(path, on_clip=progress.clip, **options)

    cache = None if getattr(args, "no_cache", False) else ResultCache()
    return cached_score(cache, model, path, options, score, decoder=decoder)


def _cmd_ask(args: argparse.Namespace) -> int:
    from ..ask import answer, check_answerable, model_predicts, parse_question
    from ..zoo import load_model

    if not 0.0 < args.threshold < 1.0:
        raise ConfigError("--threshold must be between 0 and 1")
    question = parse_question(args.question)  # an unreadable question costs no scoring
    model = load_model(args.model)
    check_answerable(question, *model_predicts(model), model.id)
    reply = answer(question, _score_single(model, args), args.threshold)
    print(json.dumps(reply.to_dict(), indent=2, ensure_ascii=False) if args.json else reply.text)
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from ..describe import dimension_texts
    from ..zoo import load_model

    if args.llm is not None:
        from ..llm import _base

        _base(args.llm)  # a malformed URL is refused before scoring
    if args.frames < 0:
        raise ConfigError("--frames must be 0 or more")
    model = load_model(args.model)
    result = _score_single(model, args)
    texts = dimension_texts(result)
    llm_text = None
    if args.llm is not None:
        from ..llm import describe_with_llm

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


def _print_result(result: Any, console: Any = None) -> None:
    """One result for a person: the header, the description, a line per dimension (its text
    wrapped beside the numbers) and the clip timeline, fitted to the console's width
    (vqscope.output.timeline: columns give way by priority, numbers are never cut)."""
    from rich.padding import Padding
    from rich.table import Table

    from ..output import timeline

    console = console if console is not None else stdout_console()
    scaled = "n/a" if result.scaled_score is None else f"{result.scaled_score:.0f}"
    console.print(f"[bold]{result.video}[/bold]  ({result.width}x{result.height}, {result.fps:.2f} fps, "
                  f"{result.duration_s:.1f} s)  model {result.model}", highlight=False)
    console.print(f"score [bold]{result.score:.1f}[/bold]/100   scaled {scaled}   grade [bold]{result.grade}[/bold]",
                  highlight=False)
    console.print(result.description, highlight=False)
    fine = [k for k in result.dimensions if k != "overall"]
    if fine:
        from ..describe import dimension_texts

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


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..distributed import BatchSettings, read_video_list, run_batch

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
    with Progress(len(videos), enabled=show) as progress:
        def on_record(record: dict[str, Any]) -> None:
            if record.get("status") != "ok":
                video, message = str(record.get("video")), str(record.get("message") or record.get("error"))
                progress.note(f"failed: {message}" if video in message else f"failed {video}: {message}")
            progress.advance()

        report = run_batch(videos, args.out, settings, ray_address=args.ray, ray_cpus=args.ray_cpus,
                           on_record=on_record, log=log)
    minutes = report.elapsed_s / 60
    rate = f", {report.scored / minutes:.1f} videos/min" if report.scored and minutes > 0 else ""
    log(f"{report.scored} scored, {report.failed} failed, {report.already} already in {args.out} "
         f"({report.engine}, {report.elapsed_s:.1f} s{rate})")
    return EXIT_SOME_FAILED if report.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `vqscope` parser."""
    _add_score(sub)
    _add_probe(sub)
    _add_models(sub)
    _add_backbones(sub)
    _add_ask(sub)
    _add_describe(sub)
    _add_batch(sub)
