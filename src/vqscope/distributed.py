"""Fleet scoring: a list of videos (paths or URLs) to a resumable Parquet dataset, on Ray.

    vqscope batch LIST --out results.parquet            same steps in this process
    vqscope batch LIST --out results.parquet --ray      a local Ray
    vqscope batch LIST --out results.parquet --ray ray://head:10001   an existing cluster

The work is split where the hardware splits it (see `vqscope.features.pipeline`): decoding is
CPU work with no network built, so it runs as plain Ray tasks spread over every core of the
cluster; inference needs the backbones in memory, so it runs in a pool of actors that build
the model once and score `batch_size` decoded videos per call (clips of different videos in
one backbone batch), each actor on a GPU where the cluster has GPUs. A `DecodedVideo` travels
between the two as one pickled bytes cell (a key frame and 32 small luma frames per clip,
about 2 MB a clip at 720p, so at most ~60 MB for a 32-clip video).

Results come back to the driver, which alone writes the output: a *folder* of Parquet parts
(`results.parquet/part-*.parquet`), one part per `part_rows` rows (sooner, at the next result,
once `flush_s` seconds have passed), each written to a hidden temporary name and renamed into
place. So a killed run loses at most
the rows it had not yet flushed, any reader (pyarrow, pandas, Spark, `ray.data.read_parquet`)
reads the folder as one table, and workers never need to see the driver's disk. A re-run skips
every (video, model) that already has an ``ok`` row and tries failed ones again; at the end of
a run, rows superseded by a later row of the same (video, model) are dropped from older parts
(the latest row stays in its newer part), and parts of an older layout are rewritten in this one.

Rows are those of `vqscope score --out results.parquet` (vqscope.output: flat columns, the clip
timeline nested in `clips`, the same rounding: scores to 2 decimals, probabilities to 4), plus
`result`, the whole record as JSON (what `score --out results.jsonl` writes a line of).

Ray is imported only when asked for (`import vqscope` never loads it).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, OutputError, RuntimeUnavailableError, VQScopeError
from .output import COLUMNS, error_record, ok_record, parquet_row, parquet_schema

if TYPE_CHECKING:
    from .features.pipeline import DecodedVideo
    from .model import Model

LIST_COLUMNS = ("path", "url", "video")  # list columns read by name, in this order of preference
RESULT_COLUMNS = (*COLUMNS, "clips", "result")  # score --out's Parquet columns, then the whole record as JSON
INSTALL_HINT = 'pip install "vqscope[ray]" (or: pip install "ray[data]")'


# -- the list of videos -----------------------------------------------------------------------
def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def read_video_list(path: str | os.PathLike[str]) -> list[str]:
    """Videos named by a .txt, .csv or .parquet list, in order, without duplicates.

    .txt: one path or URL a line; blank lines and lines starting with # are skipped. .csv and
    .parquet: the column named path, url or video (any case), else the first column. Relative
    paths are read relative to the list file and returned absolute, so that every worker (and
    a later resume from another folder) names the same file the same way.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a .txt, .csv or .parquet list of videos")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            entries = _parquet_entries(path)
        elif suffix == ".csv":
            entries = _csv_entries(path)
        elif suffix in (".txt", ".lst", ".list", ""):
            entries = [
                line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
        else:
            raise ConfigError(f"{path}: unknown list format {suffix!r} (use .txt, .csv or .parquet)")
    except FileNotFoundError:
        raise ConfigError(f"{path}: list file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text list (not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the list ({exc.strerror or exc})") from None
    base = path.resolve().parent
    out: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        video = entry if is_url(entry) or os.path.isabs(entry) else os.path.normpath(base / entry)
        if video not in seen:
            seen.add(video)
            out.append(video)
    if not out:
        raise ConfigError(f"{path}: the list names no video")
    return out


def _pick_column(names: Sequence[str], path: Path) -> int:
    if not names:
        raise ConfigError(f"{path}: the list has no columns")
    lowered = [str(n).strip().lower() for n in names]
    for wanted in LIST_COLUMNS:
        if wanted in lowered:
            return lowered.index(wanted)
    return 0


def _csv_entries(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: lists saved by spreadsheets
        rows = list(csv.reader(fh))
    if not rows:
        raise ConfigError(f"{path}: empty list (a CSV list needs a header row: path, url or video)")
    column = _pick_column(rows[0], path)
    return [r[column].strip() for r in rows[1:] if len(r) > column and r[column].strip()]


def _parquet_entries(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow's own error types for files that are not Parquet
        if isinstance(exc, OSError) and not path.exists():
            raise FileNotFoundError from None
        raise ConfigError(f"{path}: not a readable Parquet list ({type(exc).__name__})") from None
    name = names[_pick_column(names, path)]
    values = pq.read_table(path, columns=[name]).column(name).to_pylist()
    if values and not all(v is None or isinstance(v, str) for v in values):
        raise ConfigError(f"{path}: column {name!r} does not hold paths or URLs (text)")
    return [v.strip() for v in values if v and v.strip()]


# -- the output: a folder of Parquet parts ---------------------------------------------------
def _schema() -> Any:
    return parquet_schema(extra=("result",))


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """An output record as one Parquet row: the flat columns and nested clip timeline of
    `score --out` (vqscope.output.parquet_row), and the whole record as JSON in `result`
    (ok rows only), rounded alike."""
    row = parquet_row(record)
    if record.get("status") == "ok":
        whole = dict(record)
        for c in ("score", "scaled_score"):  # as the contract rounds them (older parts did not)
            if isinstance(whole.get(c), float):
                whole[c] = round(whole[c], 2)
        row["result"] = json.dumps(whole, ensure_ascii=False)
    else:
        row["result"] = None
    return row


def _part_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from a part, of this layout or an older one, as a row of this layout:
    from its whole record where it has one (`result`), else from its own columns."""
    if row.get("result"):
        try:
            return to_row(json.loads(row["result"]))
        except ValueError:
            pass
    return {**parquet_row(row), "result": None}


class ResultParts:
    """The `--out` folder: Parquet parts written atomically, read back as one table."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(
                f"{self.path}: is a file; `vqscope batch` writes a folder of Parquet parts (choose a new name)",
                str(self.path),
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the results folder ({exc.strerror})", str(self.path)) from None
        self._run = time.time_ns()
        self._seq = 0

    def parts(self) -> list[Path]:
        """Part files, oldest first (names sort in writing order)."""
        return sorted(p for p in self.path.glob("part-*.parquet") if p.is_file())

    def _read_part(self, part: Path) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(part).to_pylist()
        except Exception as exc:  # a part that cannot be read back is a damaged output
            raise OutputError(f"{part}: cannot read existing results ({type(exc).__name__})", str(part)) from None

    def latest(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The last row of every (video, model) across all parts."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for part in self.parts():
            for row in self._read_part(part):
                rows[(str(row.get("video")), str(row.get("model")))] = row
        return rows

    def scored(self, model: str) -> set[str]:
        """Videos with an ok row from `model`: what a re-run skips."""
        return {v for (v, m), row in self.latest().items() if m == model and row.get("status") == "ok"}

    def write(self, records: Sequence[dict[str, Any]]) -> Path | None:
        """One new part holding `records`; visible only once complete."""
        if not records:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._seq += 1
        name = f"part-{self._run:020d}-{self._seq:06d}.parquet"
        tmp = self.path / f".{name}.tmp"  # hidden: dataset readers skip it
        try:
            pq.write_table(pa.Table.from_pylist([to_row(r) for r in records], schema=_schema()), tmp)
            os.replace(tmp, self.path / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{self.path}: cannot write results ({exc.strerror or exc})", str(self.path)) from None
        return self.path / name

    def compact(self) -> int:
        """Drop rows that a later row of the same (video, model) supersedes; returns how many.

        Only parts holding such rows are rewritten (to a temporary name, then renamed), so a
        crash here leaves at worst the duplicate rows that readers resolve by part order.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self.parts()
        schema = _schema()
        owner: dict[tuple[str, str], tuple[int, int]] = {}
        contents = []
        for i, part in enumerate(parts):
            rows = self._read_part(part)
            contents.append(rows)
            for j, row in enumerate(rows):
                owner[(str(row.get("video")), str(row.get("model")))] = (i, j)
        dropped = 0
        for i, (part, rows) in enumerate(zip(parts, contents)):
            keep = [r for j, r in enumerate(rows) if owner[(str(r.get("video")), str(r.get("model")))] == (i, j)]
            older_layout = pq.read_schema(part).names != schema.names
            if len(keep) == len(rows) and not older_layout:
                continue
            dropped += len(rows) - len(keep)
            if not keep:
                part.unlink()
                continue
            tmp = part.with_name(f".{part.name}.tmp")
            pq.write_table(pa.Table.from_pylist([_part_row(r) for r in keep], schema=schema), tmp)
            os.replace(tmp, part)
        return dropped


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every (video, model)'s latest row of a `vqscope batch` output folder."""
    return list(ResultParts(path).latest().values())


# -- the two steps: decode (CPU task) and score (model holder) -------------------------------
@dataclass(frozen=True)
class BatchSettings:
    """What a batch run needs besides its list and output; plain data, shipped to Ray workers."""

    model: str | None = None  # shipped model name[@version] or a model file (default: vqscope-lite)
    max_clips: int | None = None
    clip_seconds: float | None = None
    batch_size: int = 8  # decoded videos per inference call
    actors: int | None = None  # inference actors (default: one per GPU, else one per 4 CPUs, >= 1)
    actor_cpus: float = 1.0  # CPUs (and torch threads) per inference actor
    decode_cpus: float = 1.0  # CPUs per decode task
    decode_memory_bytes: int = 512 << 20  # memory reserved per decode task (decoder + ~60 MB of inputs)
    gpus: bool | None = None  # one GPU per actor; None: when the cluster has GPUs
    max_download_bytes: int = 2 << 30
    part_rows: int = 64  # rows per output part
    flush_s: float = 30.0  # ... or fewer, when this long has passed since the last part

    def __post_init__(self) -> None:
        if self.max_clips is not None and self.max_clips < 1:
            raise ConfigError("--max-clips must be at least 1")
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ConfigError("--clip-seconds must be greater than 0")
        for name in ("batch_size", "part_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.actors is not None and self.actors < 1:
            raise ConfigError("--actors must be at least 1")
        if not self.actor_cpus > 0 or not self.decode_cpus > 0:
            raise ConfigError("--actor-cpus and --decode-cpus must be greater than 0")
        if self.max_download_bytes < 1:
            raise ConfigError("--max-download-mb must be positive")


@dataclass(frozen=True)
class DecodeSpec:
    """What a decode task needs: feature settings as plain dicts (no model file, no network)."""

    features: dict[str, Any]
    plan: dict[str, Any]
    max_download_bytes: int

    @classmethod
    def of(cls, features: Any, settings: BatchSettings) -> "DecodeSpec":
        try:
            plan = features.clip_plan.with_options(settings.clip_seconds, settings.max_clips)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(features.to_dict(), plan.to_dict(), settings.max_download_bytes)


@dataclass
class Decoded:
    """One listed video after the decode step: its DecodedVideo, or why there is none."""

    video: str
    decoded: "DecodedVideo | None" = None
    error: str = ""
    message: str = ""
    decode_s: float = 0.0


BATCH_FETCH_DEADLINE_S = 3600.0  # a whole download of one listed URL (up to --max-download-mb, 2 GB by default)


@contextmanager
def local_copy(video: str, max_bytes: int) -> Iterator[str]:
    """A path to decode: the file itself, or a URL downloaded into a temporary folder that is
    removed as soon as decoding is done (decoded inputs live in memory, not on disk)."""
    if not is_url(video):
        yield video
        return
    from .service.outbound import FetchPolicy
    from .service.sources import check_url, download

    check_url(video)
    folder = Path(tempfile.mkdtemp(prefix="vqscope-fetch-"))
    try:
        # The service's fetch (one resolution per hop, pinned, at most 5 redirects, a deadline
        # for the whole transfer), but any address: the list is the operator's own, and fleets
        # often read from storage on their private network.
        yield str(download(video, folder, "video", max_bytes, policy=FetchPolicy.unrestricted(),
                           deadline_s=BATCH_FETCH_DEADLINE_S))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def decode_one(video: str, spec: DecodeSpec) -> Decoded:
    """Fetch (URLs) and decode one video; every failure becomes a `Decoded` with its error."""
    from .features import FeatureConfig
    from .features.pipeline import decode_video
    from .sampling import ClipPlanConfig

    started = time.perf_counter()
    local = video
    try:
        with local_copy(video, spec.max_download_bytes) as local:
            decoded = decode_video(local, FeatureConfig.from_dict(spec.features), ClipPlanConfig(**spec.plan),
                                   decoder_threads=1)
        decoded.path = video
        return Decoded(video, decoded, decode_s=time.perf_counter() - started)
    except VQScopeError as exc:
        message = exc.message.replace(local, video) if local != video else exc.message
        return Decoded(video, None, exc.kind, message, time.perf_counter() - started)
    except Exception as exc:  # a bug, but one video's bug must not stop a fleet
        return Decoded(video, None, "internal_error", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)


def score_decoded(model: "Model", items: Sequence[Decoded], threads: int | None = None) -> list[dict[str, Any]]:
    """Output records for decoded videos: one batched inference call, per-video on failure."""
    good = [d for d in items if d.decoded is not None]
    records: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    try:
        features = model.extractor.features_of([d.decoded for d in good], threads=threads)  # type: ignore[misc]
        batch_s = (time.perf_counter() - started) / max(1, len(good))
        for d, vf in zip(good, features):
            records[id(d)] = _result_record(model, d, vf, batch_s)
    except Exception:  # find which video broke the batch; the others still get scored
        for d in good:
            records[id(d)] = _score_alone(model, d, threads)
    out = []
    for d in items:
        if d.decoded is None:
            out.append(error_record(d.video, model.id, d.error, d.message))
        else:
            out.append(records[id(d)])
    return out


def _score_alone(model: "Model", d: Decoded, threads: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        (vf,) = model.extractor.features_of([d.decoded], threads=threads)  # type: ignore[list-item]
        return _result_record(model, d, vf, time.perf_counter() - started)
    except VQScopeError as exc:
        return error_record(d.video, model.id, exc.kind, exc.message)
    except Exception as exc:
        return error_record(d.video, model.id, "internal_error", f"{type(exc).__name__}: {exc}")


def _result_record(model: "Model", d: Decoded, vf: Any, infer_s: float) -> dict[str, Any]:
    result = model.result_from_features(vf, d.video)
    result.elapsed_s = d.decode_s + infer_s
    return ok_record(result.to_dict())  # rounded as the contract rounds, like `score --out`


# -- the run ---------------------------------------------------------------------------------
@dataclass
class BatchReport:
    listed: int
    already: int
    scored: int = 0
    failed: int = 0
    parts: int = 0
    elapsed_s: float = 0.0
    engine: str = "in-process"
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (video, error, message)


def run_batch(
    videos: Sequence[str],
    out: str | os.PathLike[str],
    settings: BatchSettings | None = None,
    *,
    ray_address: str | None = None,
    ray_cpus: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> BatchReport:
    """Score `videos` into the `out` folder, skipping those already scored by the model.

    `ray_address` None runs in this process; "local" starts a local Ray (`ray_cpus` CPUs);
    anything else is passed to `ray.init(address=...)` ("auto", "ray://host:10001"). A Ray
    already initialised in this process is used as it is.
    """
    from .zoo import resolve_model_path

    settings = settings or BatchSettings()
    started = time.perf_counter()
    model_path = resolve_model_path(settings.model)
    model_id, features = _model_identity(model_path)
    spec = DecodeSpec.of(features, settings)
    parts = ResultParts(out)
    done = parts.scored(model_id)
    todo = [v for v in videos if v not in done]
    report = BatchReport(listed=len(videos), already=len(videos) - len(todo))
    sink = _PartSink(parts, settings)
    try:
        if todo:
            if ray_address is None:
                records = _in_process(todo, model_path, spec, settings)
            else:
                report.engine = "ray"
                records = _on_ray(todo, model_path, model_id, spec, settings, ray_address, ray_cpus, log)
            for record in records:
                sink.add(record)
                if record.get("status") == "ok":
                    report.scored += 1
                else:
                    report.failed += 1
                    report.failures.append((str(record.get("video")), str(record.get("error")),
                                            str(record.get("message", ""))))
                if on_record is not None:
                    on_record(record)
    finally:
        sink.flush()
        report.parts = sink.parts
    parts.compact()
    report.elapsed_s = time.perf_counter() - started
    return report


def _model_identity(model_path: Path) -> tuple[str, Any]:
    """Model id and feature settings from the file's header only: no tensors, no backbones."""
    from .errors import ModelFileError
    from .features import FeatureConfig
    from .model import read_model_file

    meta, _ = read_model_file(str(model_path), tensors=False)
    try:
        return f"{meta['name']}@{int(meta['version'])}", FeatureConfig.from_dict(meta["features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{model_path}: not a valid vqscope model ({type(exc).__name__}: {exc})",
                             str(model_path)) from None


class _PartSink:
    """Buffers records and writes a part every `part_rows` records or `flush_s` seconds."""

    def __init__(self, parts: ResultParts, settings: BatchSettings):
        self.target = parts
        self.rows = settings.part_rows
        self.flush_s = settings.flush_s
        self.buffer: list[dict[str, Any]] = []
        self.last = time.monotonic()
        self.parts = 0

    def add(self, record: dict[str, Any]) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.rows or time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.target.write(self.buffer)
            self.parts += 1
            self.buffer = []
        self.last = time.monotonic()


def _in_process(todo: Sequence[str], model_path: Path, spec: DecodeSpec,
                settings: BatchSettings) -> Iterator[dict[str, Any]]:
    """The same two steps without Ray: a decode thread fills the next batch while the current
    one is inferred, so at most two batches of decoded inputs are held at once."""
    from concurrent.futures import ThreadPoolExecutor

    from .model import Model

    model = Model.load(model_path)
    ahead = settings.batch_size
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vqscope-decode") as pool:
        pending = [pool.submit(decode_one, v, spec) for v in todo[:ahead]]
        queued = len(pending)
        try:
            while pending:
                batch = [f.result() for f in pending[: settings.batch_size]]
                pending = pending[settings.batch_size:]
                for v in todo[queued : queued + len(batch)]:
                    pending.append(pool.submit(decode_one, v, spec))
                queued += len(batch)
                yield from score_decoded(model, batch)
        finally:  # an interrupted run does not wait for decodes nobody will score
            for future in pending:
                future.cancel()


# -- Ray --------------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 (the Data library is a separate extra of ray)
    except ImportError:
        raise RuntimeUnavailableError(f"Ray Data is not installed: {INSTALL_HINT}") from None
    return ray


def _decode_row(row: dict[str, Any], spec: DecodeSpec) -> dict[str, Any]:
    """Ray `map` step (a CPU task): one listed video -> its pickled DecodedVideo, or its error."""
    d = decode_one(str(row["video"]), spec)
    payload = pickle.dumps(d.decoded, protocol=pickle.HIGHEST_PROTOCOL) if d.decoded is not None else b""
    return {"video": d.video, "payload": payload, "error": d.error, "message": d.message, "decode_s": d.decode_s}


class GPURunner:
    """Runs one backbone on a device for `FeatureExtractor.replace_backbone`: inputs are built on
    the CPU by the extractor, moved to the device, features moved back."""

    def __init__(self, module: Any, device: str):
        self.module = module.to(device)
        self.device = device

    def features(self, x: Any) -> Any:
        return self.module.features(x.to(self.device, non_blocking=True)).cpu()


class ScoreActor:
    """Ray `map_batches` step (an actor): loads the model once, scores decoded batches.

    The model file travels as bytes through the object store (`model` holds their ref, nested
    so that Ray hands it over unresolved and the constructor arguments stay small), so a model
    file that exists only on the driver's machine scores on any node of the cluster.
    """

    def __init__(self, model: list[Any], threads: int, use_gpu: bool):
        import ray
        import torch

        from .model import Model

        model_bytes = ray.get(model[0])

        with tempfile.TemporaryDirectory(prefix="vqscope-model-") as folder:
            path = Path(folder) / "model.safetensors"
            path.write_bytes(model_bytes)
            self.model = Model.load(path)
        self.threads = max(1, threads)
        torch.set_num_threads(self.threads)
        self.model.extractor.torch_threads = self.threads
        if use_gpu and torch.cuda.is_available():
            # Learned networks go to the GPU; parameter-free statistics backbones stay on the
            # CPU, where they are cheap and where their numerics were validated.
            extractor = self.model.extractor
            for name in extractor.config.spatial + extractor.config.temporal:
                module = extractor.backbone(name)
                if isinstance(module, torch.nn.Module) and any(True for _ in module.parameters()):
                    extractor.replace_backbone(name, GPURunner(module, "cuda"))
        elif use_gpu:
            logging.getLogger(__name__).warning("this actor holds a GPU but its torch has no CUDA: scoring on CPU")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        items = []
        for video, payload, error, message, decode_s in zip(
            batch["video"], batch["payload"], batch["error"], batch["message"], batch["decode_s"]
        ):
            decoded = pickle.loads(payload) if len(payload) else None
            items.append(Decoded(str(video), decoded, str(error), str(message), float(decode_s)))
        records = score_decoded(self.model, items, threads=self.threads)
        return {
            "video": np.array([r["video"] for r in records], dtype=object),
            "record": np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object),
        }


def _on_ray(todo: Sequence[str], model_path: Path, model_id: str, spec: DecodeSpec, settings: BatchSettings,
            address: str, cpus: int | None, log: Callable[[str], None] | None) -> Iterator[dict[str, Any]]:
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        _quiet_ray()
        try:
            if address == "local":
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            else:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        started_here = True
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpu = settings.gpus if settings.gpus is not None else gpus > 0
        if use_gpu and gpus < 1:
            raise ConfigError("--gpus: the Ray cluster has no GPU")
        cluster_cpus = int(resources.get("CPU", 1))
        actors = settings.actors or (gpus if use_gpu else max(1, cluster_cpus // 4))
        if log is not None:
            log(f"Ray: {cluster_cpus} CPUs, {gpus} GPUs; {actors} inference actor(s) "
                f"{'on GPUs' if use_gpu else 'on CPUs'}, batches of {settings.batch_size} videos")
        job = (list(todo), [ray.put(model_path.read_bytes())], model_id, spec, settings, actors, use_gpu)
        if _client_mode():
            yield from _through_cluster_driver(ray, job)
        else:
            yield from _ray_records(*job)
    finally:
        if started_here:
            ray.shutdown()


def _client_mode() -> bool:
    """True in a Ray Client session (`ray://`), whose process cannot drive Ray Data itself."""
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return bool(client.is_connected())


class ClusterDriver:
    """Runs the Ray Data pipeline inside the cluster for a Ray Client (`ray://`) session.

    Ray Data's executor needs a driver with its own core worker, which a Ray Client process
    has not; this actor (no CPU reserved) runs the pipeline in a thread and hands records back
    in chunks, so the results still reach the client's machine, which alone writes `--out`.
    """

    def __init__(self, job: tuple[Any, ...]):
        import queue
        import threading

        self.queue: queue.Queue = queue.Queue(maxsize=4096)
        self.error: str | None = None
        threading.Thread(target=self._run, args=(job,), name="vqscope-ray-driver", daemon=True).start()

    def _run(self, job: tuple[Any, ...]) -> None:
        try:
            for record in _ray_records(*job):
                self.queue.put(record)
        except BaseException as exc:  # reported to the client by take()
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.queue.put(None)

    def take(self, limit: int = 256, wait_s: float = 5.0) -> tuple[list[dict[str, Any]], bool, str | None]:
        """(records, finished, error): up to `limit` records, waiting up to `wait_s` for the first."""
        import queue

        out: list[dict[str, Any]] = []
        try:
            item = self.queue.get(timeout=wait_s)
            while True:
                if item is None:
                    return out, True, self.error
                out.append(item)
                if len(out) >= limit:
                    return out, False, None
                item = self.queue.get_nowait()
        except queue.Empty:
            return out, False, None


def _through_cluster_driver(ray: Any, job: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    driver = ray.remote(num_cpus=0)(ClusterDriver).remote(job)
    try:
        while True:
            records, finished, error = ray.get(driver.take.remote())
            yield from records
            if finished:
                if error:
                    raise RuntimeError(f"the Ray Data pipeline failed on the cluster: {error}")
                return
    finally:
        ray.kill(driver)


def _ray_records(todo: Sequence[str], model_ref: list[Any], model_id: str, spec: DecodeSpec,
                 settings: BatchSettings, actors: int, use_gpu: bool) -> Iterator[dict[str, Any]]:
    import ray
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.max_errored_blocks)
    # A task or actor that dies (a decoder crash kills its worker process) loses its block,
    # not the run: the videos of lost blocks become error rows below and are retried next run.
    ctx.enable_progress_bars = False
    _quiet_ray()
    ctx.max_errored_blocks = -1
    try:
        ds = ray.data.from_items([{"video": v} for v in todo], override_num_blocks=min(len(todo), 2000))
        # The memory reservation does two jobs: the scheduler runs no more decodes on a node
        # than its memory holds, and (remote arguments that differ from the actors') it keeps
        # Ray Data from fusing decoding into the actors: decoding must scale with the
        # cluster's CPUs, not with the number of model holders.
        ds = ds.map(_decode_row, fn_kwargs={"spec": spec}, num_cpus=settings.decode_cpus,
                    memory=settings.decode_memory_bytes)
        ds = ds.map_batches(
            ScoreActor,
            fn_constructor_kwargs={"model": model_ref,
                                   "threads": int(max(1, settings.actor_cpus)), "use_gpu": use_gpu},
            batch_size=settings.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=settings.actor_cpus,
            num_gpus=1 if use_gpu else 0,
        )
        seen: set[str] = set()
        for row in ds.iter_rows():
            record = json.loads(row["record"])
            seen.add(str(record.get("video")))
            yield record
        for video in todo:
            if video not in seen:
                yield error_record(video, model_id, "lost",
                                   "no result came back from Ray (a worker died on this video or its batch)")
    finally:
        ctx.enable_progress_bars, ctx.max_errored_blocks = saved


def _quiet_ray() -> None:
    """Ray Data logs every execution at INFO; a command line wants its own summary only."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"

