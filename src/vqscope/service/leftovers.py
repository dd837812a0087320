"""What killed uploads and downloads leave behind in the data folder, removed at start.

An upload is written to `uploads/<job id><ext>.part`, renamed when complete, and then its job
row is committed; a kill between those steps leaves a `.part` file, or a complete file with no
job. Downloads (`downloads/`) and the browser copies of study videos (`studies/media/`,
`*.part.mp4` while written) work the same way. Nothing else ever removes these files.

The rule, safe with other processes sharing the data folder and the database (several
`vqscope serve` on one PostgreSQL, a `vqscope study` command running meanwhile):
- Only files older than `grace_s` (15 minutes, by modification time) are candidates: a file
  being written is modified as it grows, and a completed upload gets its job row within
  milliseconds; another process's work in progress is never touched. (A writer that stalls
  longer than that loses its partial file and answers an error; its client retries.)
- `uploads/`: a file (partial or complete) whose name is not the id of a job in the database,
  and whose path no job or study item names, is removed. A file whose job exists is kept,
  whatever the job's state: queued and running jobs need it, a done job's upload is removed by
  its worker or kept on purpose (--keep-inputs), and a study may show it. A partial upload
  never has a job (the row is committed after the rename), so old `.part` files all go.
- `downloads/`: a file (partial or complete) whose job is missing or finished is removed
  (workers remove their downloads after scoring); a queued or running job's is kept.
- `studies/media/`: only partial files (`.part`, `.part.mp4`). Complete files belong to study
  items, which keep them for as long as the study exists.
- Only names vqscope itself makes (`<32 hex digits>[.ext][.part[.ext]]`) are considered;
  anything else an operator put there is left alone.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sqlalchemy import or_, select

from .config import ServiceConfig
from .store import FINISHED, J, JobStore

log = logging.getLogger("vqscope.service")

GRACE_S = 15 * 60.0
_OURS = re.compile(r"^([0-9a-f]{32})(\.[a-z0-9]{1,8})?(\.part)?(\.[a-z0-9]{1,8})?$")
_PARTIAL = re.compile(r"\.part(\.[a-z0-9]{1,8})?$")
_CHUNK = 500  # ids per IN (...) query


@dataclass
class Cleanup:
    removed: list[Path] = field(default_factory=list)
    kept_young: int = 0  # candidates left because they are newer than the grace period

    @property
    def count(self) -> int:
        return len(self.removed)


def clean_leftovers(store: JobStore, config: ServiceConfig, *, grace_s: float = GRACE_S,
                    now: float | None = None) -> Cleanup:
    """Remove partial files and orphan uploads/downloads (see the module's rule)."""
    now = time.time() if now is None else now
    cutoff = now - grace_s
    out = Cleanup()
    uploads, downloads, media = config.uploads_dir, config.downloads_dir, config.data_dir / "studies" / "media"
    old: dict[Path, list[tuple[Path, str]]] = {uploads: [], downloads: [], media: []}
    for folder in old:
        for path, job_id in _ours(folder):
            if _old(path, cutoff):
                old[folder].append((path, job_id))
            else:
                out.kept_young += 1
    if old[uploads]:
        states = _job_states(store, [job_id for _, job_id in old[uploads]])
        referenced = _referenced(store, uploads)
        for path, job_id in old[uploads]:
            if job_id not in states and str(path) not in referenced:
                _remove(path, out)
    if old[downloads]:
        states = _job_states(store, [job_id for _, job_id in old[downloads]])
        for path, job_id in old[downloads]:
            if states.get(job_id, "missing") in (*FINISHED, "missing"):
                _remove(path, out)
    for path, _ in old[media]:
        if _PARTIAL.search(path.name):
            _remove(path, out)
    if out.removed:
        log.info("removed %d leftover file(s) of killed uploads and downloads from %s", out.count, config.data_dir)
    return out


def _ours(folder: Path) -> Iterable[tuple[Path, str]]:
    """(path, job or item id) of the regular files in `folder` named the way vqscope names them."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _OURS.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            found.append((Path(entry.path), match.group(1)))
    return found


def _old(path: Path, cutoff: float) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff


def _remove(path: Path, out: Cleanup) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot remove leftover %s: %s", path, exc.strerror)
        return
    out.removed.append(path)


def _job_states(store: JobStore, ids: list[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            states.update({job_id: state for job_id, state in conn.execute(
                select(J.id, J.state).where(J.id.in_(chunk)))})
    return states


def _referenced(store: JobStore, folder: Path) -> set[str]:
    """Paths under `folder` that a job (a server-path submission) or a study item names."""
    from ..studies.store import ITEMS

    prefix = str(folder) + os.sep
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    found: set[str] = set()
    with store.engine.connect() as conn:
        found.update(s for (s,) in conn.execute(select(J.source).where(J.source.like(pattern, escape="\\"))))
        for media, source in conn.execute(select(ITEMS.c.media, ITEMS.c.source).where(
                or_(ITEMS.c.media.like(pattern, escape="\\"), ITEMS.c.source.like(pattern, escape="\\")))):
            found.update(p for p in (media, source) if p)
    return found

