"""Batch scoring: decode in worker processes, infer in batches across videos, overlapped.

Scoring one video per process loads the backbones once per process and, on a cold run, pays
torch's start-up in every one of them. Here the work is split at its natural seam:

- `decode_video` (CPU only, no backbone built): probe, plan, decode and prepare every clip's
  backbone inputs into a `DecodedVideo`, a picklable bundle of numpy arrays.
- `FeatureExtractor.features_of` runs the clips of many `DecodedVideo`s through each backbone
  in batches, clips of different videos in the same batch.
- `ScoringPipeline` keeps decode worker processes busy while the parent process runs batched
  inference on what they have finished, with a bounded number of videos in flight. Its
  workers import no torch (about 1.3 s of CPU each on a cold start): this module and what it
  imports at load time are torch-free on purpose.

The split is also what remote or distributed scoring needs: decoding and inference can run
on different machines, with `DecodedVideo` as the message between them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, CorruptVideoError, VQScopeError, WorkerCrashError
from ..sampling import ClipAssembler, ClipInputs, ClipPlan, ClipPlanConfig, plan_clips
from ..video import DecodedFrame, VideoInfo, VideoReader
from .inputs import prepare

if TYPE_CHECKING:  # this module imports no torch: decode workers start in a fraction of a second
    from ..model import Model
    from ..result import Result
    from .extractor import FeatureConfig, FeatureExtractor


@dataclass
class DecodedVideo:
    """One video decoded and prepared for the backbones: everything inference needs.

    Plain dataclasses and numpy arrays only, so it crosses process (or machine) boundaries
    by pickling. Frames shared by overlapping windows are the same array objects, which
    pickle stores once.
    """

    path: str
    info: VideoInfo
    plan: ClipPlan
    clips: list[ClipInputs]  # from sampling.ClipAssembler, prepared per backbone FrameInput
    warnings: list[str] = field(default_factory=list)
    decode_s: float = 0.0  # wall time spent in decode_video (diagnostics)

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the prepared inputs (shared window frames counted once)."""
        seen: set[int] = set()
        total = 0
        for clip in self.clips:
            arrays = list(clip.key.values()) + [a for frames in clip.window.values() for a in frames]
            for a in arrays:
                if id(a) not in seen:
                    seen.add(id(a))
                    total += int(getattr(a, "nbytes", 0))
        return total


@dataclass(frozen=True)
class FrameRecipe:
    """What `prepare` reads of a backbone's `FrameInput`: plain values, so it pickles into a
    decode worker without importing the backbones (or torch)."""

    color: str
    short_side: int | None
    crop: int | None
    decimate: bool


class ClipPreparer:
    """Per-frame conversion to every backbone's input, as its `FrameInput` asks.

    Needs only the backbone specs, never the modules, so decode processes can prepare
    clips without building any network.
    """

    def __init__(self, spatial: tuple[str, ...], temporal: tuple[str, ...], inputs: dict[str, FrameRecipe]):
        self.spatial = tuple(spatial)
        self.temporal = tuple(temporal)
        self.inputs = dict(inputs)

    @classmethod
    def for_config(cls, config: "FeatureConfig") -> "ClipPreparer":
        from ..backbones import get_backbone_spec

        inputs = {}
        for name in config.spatial + config.temporal:
            fi = get_backbone_spec(name).frame_input
            inputs[name] = FrameRecipe(fi.color, fi.short_side, fi.crop, fi.decimate)
        return cls(config.spatial, config.temporal, inputs)

    def key(self, frame: DecodedFrame) -> dict[str, np.ndarray]:
        return {n: prepare(frame, self.inputs[n]) for n in self.spatial}  # type: ignore[arg-type]

    def window(self, frame: DecodedFrame) -> dict[str, np.ndarray]:
        return {n: prepare(frame, self.inputs[n]) for n in self.temporal}  # type: ignore[arg-type]


def decode_video(
    path: str | os.PathLike[str],
    config: "FeatureConfig",
    plan_config: ClipPlanConfig | None = None,
    *,
    decoder_threads: int = 0,
) -> DecodedVideo:
    """CPU only: probe, plan, decode and prepare backbone inputs; builds no backbone.

    Raises the same typed `VQScopeError` subclasses as `FeatureExtractor.extract`
    (`CorruptVideoError` when no clip can be assembled, etc.). `decoder_threads`: FFmpeg
    decoder threads (0 lets FFmpeg choose; 1 suits several decode processes on few cores).
    """
    return _decode(path, ClipPreparer.for_config(config), plan_config or config.clip_plan, decoder_threads)


def _decode(
    path: str | os.PathLike[str], preparer: ClipPreparer, plan_config: ClipPlanConfig, decoder_threads: int
) -> DecodedVideo:
    started = time.perf_counter()
    with VideoReader(path, threads=decoder_threads) as reader:
        info = reader.info
        plan = plan_clips(info.duration_s, info.display_fps, plan_config)
        assembler = ClipAssembler(plan, preparer.key, preparer.window)
        clips = [_compact(clip) for clip in assembler.run(reader)]
        warnings = list(assembler.warnings) + list(reader.decode_warnings)
    if not clips:
        raise CorruptVideoError(f"{info.path}: no clip could be assembled from the stream", info.path)
    clips.sort(key=lambda c: c.spec.index)
    return DecodedVideo(
        path=os.fspath(path), info=info, plan=plan, clips=clips, warnings=warnings,
        decode_s=time.perf_counter() - started,
    )


def _compact(clip: ClipInputs) -> ClipInputs:
    """Key-frame crops are views of a whole converted frame: keep only the crop."""
    clip.key = {name: np.ascontiguousarray(a) for name, a in clip.key.items()}
    return clip


# -- dead worker processes ----------------------------------------------------------------------
def worker_exit_codes(pool: ProcessPoolExecutor) -> list[int]:
    """Exit codes of a broken pool's workers that did not end cleanly, the culprit first.

    When one worker dies the pool terminates the others (SIGTERM), so a SIGTERM is listed
    after any other code. Reads the executor's process table (CPython keeps it until
    shutdown); an empty list where it cannot be read.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    codes = [code for code in map(_exit_code, processes) if code not in (None, 0)]
    return sorted(codes, key=lambda c: c == -signal.SIGTERM)


def _exit_code(process: multiprocessing.process.BaseProcess) -> int | None:
    """A worker's exit code once it has ended. The pool's own thread terminates and reaps the
    workers at the same moment, so the code can be briefly unreadable: wait for it a little."""
    for _ in range(20):
        process.join(timeout=0.5)
        if process.exitcode is not None:
            return process.exitcode
        time.sleep(0.05)
    return None


def describe_exit(code: int | None) -> str:
    """What a worker's exit code says killed it, in words a user can act on."""
    if code is None:
        return "died (how is unknown)"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    if name == "SIGKILL":
        return "was killed (SIGKILL), most often by the system running out of memory"
    if name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE"):
        return f"crashed ({name})"
    return f"was killed by {name}"


def dead_worker_error(pool: ProcessPoolExecutor | None, what: str, hint: str = "") -> WorkerCrashError:
    """The typed, one-line error of a pool whose worker died: which worker, what killed it."""
    codes = worker_exit_codes(pool) if pool is not None else []
    cause = describe_exit(codes[0] if codes else None)
    return WorkerCrashError(f"{what} process {cause}" + (f"; {hint}" if hint else ""))


_START_HINT = ("decode workers are spawned and import the running script: a script that uses ScoringPipeline must "
               "start it under `if __name__ == \"__main__\":`")


# -- the scoring pipeline ------------------------------------------------------------------------
def _decode_job(path: str, preparer: ClipPreparer, plan_config: ClipPlanConfig, decoder_threads: int) -> DecodedVideo:
    return _decode(path, preparer, plan_config, decoder_threads)


class ScoringPipeline:
    """Score many videos: decode worker processes feed batched inference in this process.

        with ScoringPipeline(model, decode_workers=2) as pipeline:
            for path, outcome in pipeline.score(paths):   # outcome: Result or VQScopeError
                ...

    Workers (spawned, so they share no torch state with this process) run `decode_video`;
    this process runs `FeatureExtractor.features_of` on the videos they have finished, at
    least `batch_clips` clips at a time, while they decode the next ones. At most
    `max_in_flight` videos (default 4 per decode worker) are submitted or decoded but not yet
    scored, which bounds memory: a decoded 4-s 720p video holds about 6 MB of prepared inputs,
    a video of any length or resolution at most 32 clips (the default plan) of about 1.8 MB
    (the inputs are crops and decimated luma, not frames), so 8 in flight stay under 0.5 GB.
    Inference runs in `infer_threads` threads of `torch_threads` each. Results come in
    completion order, not input order.

    Scores are those of `Model.score`: same clips, same backbones, same heads; only the
    grouping of clips into backbone calls differs (float round-off, about 1e-5 points).
    """

    def __init__(
        self,
        model: "Model",
        decode_workers: int | None = None,
        *,
        max_in_flight: int | None = None,
        batch_clips: int = 8,
        infer_threads: int | None = None,
        torch_threads: int = 1,
        decoder_threads: int = 1,
        max_clips: int | None = None,
        clip_seconds: float | None = None,
    ):
        cores = os.cpu_count() or 2
        self.model = model
        self.decode_workers = cores if decode_workers is None else decode_workers
        if self.decode_workers < 1:
            raise ConfigError("decode workers must be at least 1")
        self.batch_clips = max(1, batch_clips)
        self.max_in_flight = 4 * self.decode_workers if max_in_flight is None else max_in_flight
        if self.max_in_flight < 1:
            raise ConfigError("max_in_flight must be at least 1")
        # Inference runs in `infer_threads` Python threads of one torch thread each (torch
        # kernels release the GIL), not in torch's intra-op pool: OpenMP workers spin while
        # they wait, burning the cycles the decode processes need. With as many inference
        # threads as cores, inference can take every core whenever decoding runs ahead.
        self.infer_threads = infer_threads or cores
        self.torch_threads = max(1, torch_threads)
        self.decoder_threads = decoder_threads
        self.plan_config = model.features.clip_plan.with_options(clip_seconds, max_clips)
        self.preparer = ClipPreparer.for_config(model.features)  # what decode workers prepare
        self.peak_in_flight = 0  # most videos submitted but not yet scored at once (diagnostics)
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0  # pools started: tells a dead pool's late reports from the new one's
        self._last_death = WorkerCrashError("a decode worker process died")  # the latest dead pool's cause

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "ScoringPipeline":
        self._ensure_pool()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.decode_workers, mp_context=context)
            self._check_workers_start(self._pool)
        return self._pool

    def _check_workers_start(self, pool: ProcessPoolExecutor) -> None:
        """Wait for one worker to answer before any video is handed out.

        A worker that cannot start (the classic case: a script without a `__main__` guard,
        which every spawned worker re-runs) would otherwise look like a decoder crash on
        whichever videos were in flight. It is raised here, once, with what killed it.
        """
        try:
            pool.submit(os.getpid).result()
        except BrokenProcessPool:
            error = dead_worker_error(pool, "a decode worker", _START_HINT)
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise error from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- scoring -----------------------------------------------------------------------------
    def score(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, "Result | VQScopeError"]]:
        """(path, Result or VQScopeError) per video, as each is scored.

        A file that cannot be decoded yields its typed error. A decode worker that dies (a
        decoder crash, the system killing it for memory) takes the videos in flight with it:
        the pool is restarted and those videos are retried one at a time, so the one that
        kills a worker again is recorded as a `CorruptVideoError` and the others are scored;
        three such videos in a row, or workers that cannot start at all, raise a
        `WorkerCrashError` saying what killed them. Anything else (a bug) is raised.
        """
        import torch

        self._ensure_pool()
        todo = deque(os.fspath(p) for p in paths)
        decoding: dict[Future, tuple[str, int]] = {}  # job -> (path, pool generation)
        ready: list[DecodedVideo] = []
        inferring: dict[Future, int] = {}  # batch -> videos in it
        retry: deque[str] = deque()  # decodes lost to a dead worker
        alone: set[str] = set()  # retries in flight, each alone in the pool
        lone_crashes = 0  # retries in a row that killed their worker

        def in_flight() -> int:
            return len(decoding) + len(ready) + sum(inferring.values()) + len(retry)

        def submit(path: str) -> None:
            job = self._ensure_pool().submit(_decode_job, path, self.preparer, self.plan_config, self.decoder_threads)
            decoding[job] = (path, self._generation)

        def top_up() -> None:
            if retry:  # isolate suspects: nothing else decodes next to a retry
                if not decoding:
                    alone.add(retry[0])
                    submit(retry.popleft())
                return
            while todo and in_flight() < self.max_in_flight:
                submit(todo.popleft())
            self.peak_in_flight = max(self.peak_in_flight, in_flight())

        top_up()
        extractor = self.model.extractor  # backbones are built while the first videos decode
        saved_threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)  # process-wide: every inference thread agrees
        infer_pool = ThreadPoolExecutor(self.infer_threads, thread_name_prefix="vqscope-infer")
        try:
            while decoding or ready or inferring or retry:
                clips = sum(len(v.clips) for v in ready)
                starved = not decoding or in_flight() >= self.max_in_flight
                if ready and len(inferring) < self.infer_threads and (clips >= self.batch_clips or starved):
                    batch, ready = ready, []
                    inferring[infer_pool.submit(self._infer, extractor, batch)] = len(batch)
                    continue
                if decoding or inferring:
                    done, _ = wait(list(decoding) + list(inferring), return_when=FIRST_COMPLETED)
                else:
                    done = set()
                for job in done:
                    if job in inferring:
                        del inferring[job]
                        yield from job.result()
                        continue
                    path, generation = decoding.pop(job)
                    try:
                        ready.append(job.result())
                    except VQScopeError as exc:
                        yield path, exc
                    except BrokenProcessPool:
                        error = self._restart_pool(generation)
                        if path not in alone:
                            retry.append(path)
                            continue
                        alone.discard(path)
                        lone_crashes += 1
                        if lone_crashes >= 3:  # every file kills it: the workers, not the files
                            raise error from None
                        yield path, CorruptVideoError(f"{path}: the decoder crashed on this file", path)
                        continue
                    lone_crashes = 0
                    alone.discard(path)
                top_up()
        finally:
            for job in decoding:
                job.cancel()
            infer_pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(saved_threads)

    def _restart_pool(self, generation: int) -> WorkerCrashError:
        """Replace a pool broken by a dead worker (once, whichever of its jobs reports it);
        returns what killed it, for when the workers rather than the files are at fault."""
        if generation == self._generation and self._pool is not None:
            self._last_death = dead_worker_error(
                self._pool, "a decode worker", "three videos in a row killed their decode worker: "
                "the workers, not the videos, are failing (try fewer --workers)")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._generation += 1
        return self._last_death

    def _infer(self, extractor: "FeatureExtractor", batch: list[DecodedVideo]) -> list[tuple[str, "Result | VQScopeError"]]:
        """Features and results of one batch (runs in an inference thread)."""
        started = time.perf_counter()
        try:
            features = extractor.features_of(batch, threads=self.torch_threads)
        except VQScopeError as exc:
            if len(batch) == 1:
                return [(batch[0].path, exc)]
            # find the one video at fault; score the others
            return [item for video in batch for item in self._infer(extractor, [video])]
        share = (time.perf_counter() - started) / max(1, sum(len(v.clips) for v in batch))
        out: list[tuple[str, Result | VQScopeError]] = []
        for video, vf in zip(batch, features):
            try:
                result = self.model.result_from_features(vf, video.path)
            except VQScopeError as exc:  # this video's features cannot be scored; the others can
                out.append((video.path, exc))
                continue
            result.elapsed_s = video.decode_s + share * len(video.clips)
            out.append((video.path, result))
        return out
