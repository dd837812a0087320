"""Export commands: a model's parts for ONNX Runtime or TensorRT."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError


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


def _cmd_export(args: argparse.Namespace) -> int:
    from functools import partial

    from ..export import export_onnx
    from ..zoo import load_model

    build: Any = partial(export_onnx, standalone=args.standalone)
    if args.standalone and args.format != "onnx":
        raise ConfigError("--standalone goes with `export onnx`: TensorRT engines always leave statistics to PyTorch")
    if args.format == "tensorrt":
        from ..export.tensorrt import BatchProfile, check_tensorrt, export_tensorrt

        batch = BatchProfile(args.min_batch, args.opt_batch, args.max_batch)
        check_tensorrt()  # before loading and exporting anything
        build = partial(export_tensorrt, batch=batch)
    model = load_model(args.model)
    try:
        folder = build(model, args.out)
    except OSError as exc:
        from ..errors import OutputError

        raise OutputError(f"{args.out}: cannot write the export ({exc.strerror or exc})", args.out) from None
    files = sorted(f.name for f in folder.iterdir())
    print(f"exported {model.id} to {folder}: {', '.join(files)}")
    if args.format == "onnx":
        _print_export_statement(folder)
    return 0


def _print_export_statement(folder: Path) -> None:
    """The manifest's one line on what runs where (an ONNX export that is not standalone)."""
    from ..export.onnx import MANIFEST

    try:
        statement = json.loads((folder / MANIFEST).read_text()).get("statement")
    except (OSError, ValueError):
        return
    if statement:
        print(statement)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `vqscope` parser."""
    _add_export(sub)
