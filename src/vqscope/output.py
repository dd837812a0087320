"""Result files for many videos (.jsonl, .csv, .parquet), resumable.

Each video's record is written as soon as it is scored, so an interrupted run loses at most
the video in flight; a re-run reads the file back and skips videos already scored by the same
model. Failed videos are recorded with their error (and retried on the next run). Parquet
cannot be appended to, so records go to a journal beside it (NAME.parquet.partial.jsonl)
that is folded into the Parquet file at the end of the run, or of the next run after a crash.
Where a video appears more than once, its last record wins.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable

from .errors import OutputError

VIDEO_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mts", ".m2ts", ".3gp",
    ".wmv", ".mpg", ".mpeg", ".ogv", ".y4m", ".gif",
}
COLUMNS = (
    "video", "model", "status", "score", "scaled_score", "grade", "duration_s", "width", "height",
    "fps", "description", "padded", "clips", "dimensions", "distortions", "warnings", "error",
    "message", "elapsed_s",
)
_JSON_COLUMNS = ("clips", "dimensions", "distortions", "warnings")
FORMATS = (".jsonl", ".csv", ".parquet")


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Files named on the command line, plus video files found (recursively) in folders.

    A named file is kept whatever its extension, so that a wrong file gets a clear error
    rather than being silently left out.
    """
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in files:
                    if Path(f).suffix.lower() in VIDEO_EXTENSIONS:
                        found.append(os.path.join(root, f))
            out.extend(sorted(found))
        else:
            out.append(p)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def ok_record(result_dict: dict[str, Any]) -> dict[str, Any]:
    return {**result_dict, "status": "ok"}


def error_record(video: str, model: str, error: str, message: str) -> dict[str, Any]:
    return {"video": video, "model": model, "status": "error", "error": error, "message": message}


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a flat row: nested fields become JSON text."""
    row = {c: record.get(c) for c in COLUMNS}
    for c in _JSON_COLUMNS:
        if row[c] is not None:
            row[c] = json.dumps(row[c], ensure_ascii=False)
    return row


def _unflatten(row: dict[str, Any]) -> dict[str, Any]:
    rec = {k: v for k, v in row.items() if v not in (None, "")}
    for c in _JSON_COLUMNS:
        if isinstance(rec.get(c), str):
            rec[c] = json.loads(rec[c])
    return rec


class ResultFile:
    """Append-as-you-go writer for one results file; a context manager."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise OutputError(f"{self.path}: unknown results format (use {', '.join(FORMATS)})")
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path.parent}: cannot create folder ({exc.strerror})") from None
        self.journal = self.path.with_name(self.path.name + ".partial.jsonl")
        self._existing = self._read_existing()
        self._handle: Any = None
        self._csv: csv.DictWriter | None = None

    # -- reading back ------------------------------------------------------------------
    def _read_existing(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        try:
            if self.format == ".jsonl" and self.path.exists():
                records += _read_jsonl(self.path)
            elif self.format == ".csv" and self.path.exists():
                with open(self.path, newline="", encoding="utf-8") as fh:
                    records += [_unflatten(r) for r in csv.DictReader(fh)]
            elif self.format == ".parquet":
                if self.path.exists():
                    import pyarrow.parquet as pq

                    records += [_unflatten(r) for r in pq.read_table(self.path).to_pylist()]
                if self.journal.exists():
                    records += _read_jsonl(self.journal)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.path}: cannot read existing results ({exc})") from None
        except Exception as exc:  # pyarrow raises its own types for damaged files
            raise OutputError(f"{self.path}: cannot read existing results ({type(exc).__name__})") from None
        return records

    def scored(self, model: str) -> set[str]:
        """Videos with a successful record from `model`."""
        last: dict[str, str] = {}
        for r in self._existing:
            if r.get("model") == model and "video" in r:
                last[str(r["video"])] = str(r.get("status", "ok"))
        return {v for v, status in last.items() if status == "ok"}

    # -- writing -----------------------------------------------------------------------
    def __enter__(self) -> "ResultFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, record: dict[str, Any]) -> None:
        try:
            if self.format == ".csv":
                self._write_csv(record)
            else:
                target = self.path if self.format == ".jsonl" else self.journal
                if self._handle is None:
                    self._handle = open(target, "a", encoding="utf-8")
                self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._handle.flush()
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write results ({exc.strerror})") from None

    def _write_csv(self, record: dict[str, Any]) -> None:
        if self._csv is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._handle = open(self.path, "a", newline="", encoding="utf-8")
            self._csv = csv.DictWriter(self._handle, fieldnames=list(COLUMNS))
            if new:
                self._csv.writeheader()
        self._csv.writerow(flat_row(record))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.format == ".parquet" and self.journal.exists():
            self._fold_journal()

    def _fold_journal(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = self._read_existing()
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for r in records:
            latest[(str(r.get("video")), str(r.get("model")))] = r
        rows = [flat_row(r) for r in latest.values()]
        schema = pa.schema(
            [
                (c, pa.float64() if c in ("score", "scaled_score", "duration_s", "fps", "elapsed_s")
                 else pa.int64() if c in ("width", "height")
                 else pa.bool_() if c == "padded"
                 else pa.string())
                for c in COLUMNS
            ]
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        os.replace(tmp, self.path)
        self.journal.unlink()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that video is simply scored again
    return out
