"""The `vqscope` command.

    vqscope score FILE                      readable summary and clip timeline
    vqscope score FILE --json               the result contract as JSON
    vqscope score DIR_OR_FILES... --out results.jsonl|.csv|.parquet
    vqscope probe FILE                      what the decoder sees
    vqscope models                          shipped models
    vqscope backbones                       registered feature extractors

Every expected failure prints one line, `vqscope: error: ...`, and exits with the code of its
error class (see vqscope.errors); tracebacks appear only with --debug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqscope", description="No-reference video quality assessment.")
    parser.add_argument("--version", action="version", version=f"vqscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_score, _add_probe, _add_models, _add_backbones):
        add(sub)
    return parser


# -- commands -------------------------------------------------------------------------------
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
    options = {"max_clips": args.max_clips, "clip_seconds": args.clip_seconds}
    if len(paths) == 1 and args.out is None:
        result = model.score(paths[0], **options)
        if args.json:
            print(result.to_json())
        else:
            _print_result(result)
        return 0
    return _score_many(model, paths, args, options)


def _score_many(model: Any, paths: list[str], args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .output import ResultFile, error_record, ok_record

    out = ResultFile(args.out) if args.out else None
    skip = out.scored(model.id) if out is not None else set()
    todo = [p for p in paths if p not in skip]
    failures = 0
    show = not args.no_progress and sys.stderr.isatty()
    with _Progress(len(todo), len(paths) - len(todo), enabled=show) as progress:
        for path in todo:
            progress.start(path)
            try:
                result = model.score(path, on_clip=progress.clip, **options)
                record = ok_record(result.to_dict())
            except VQScopeError as exc:
                failures += 1
                record = error_record(path, model.id, exc.kind, exc.message)
                progress.note(f"skipped {path}: {exc.message}")
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

    def __init__(self, total: int, skipped: int, enabled: bool):
        self.enabled = enabled
        self.total = total
        self.skipped = skipped
        self._progress: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                transient=False,
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
