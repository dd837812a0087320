"""Every failure, in every path, is one line with its documented code.

- The README's exit-code table, walked through the CLI: each documented code has a command
  that produces it, and that command prints exactly one line, `vqscope: error: ...` (commands
  that log progress first may print their log lines before it, never a traceback).
- Errors raised in worker processes (feature extraction, decoding) reach the parent typed,
  whatever the worker count; a dead worker pool says what killed it.
- Clip options outside what a plan can honour: a usage error, or a warning in the result.
- `calibrate` refuses a shipped model's id; `features` defaults to the default model's backbones.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import torch

from conftest import cli_without_file_access, textured_frames
from test_bad_input import audio_only_file, damaged_mp4, truncated_mp4
from test_model import tiny_model
from vqscope import errors
from vqscope.backbones.registry import BackboneSpec, FrameInput, register
from vqscope.calibration import Calibration
from vqscope.cli import build_parser, main
from vqscope.data.encode import write_video
from vqscope.features import FeatureConfig
from vqscope.heads import HeadConfig, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.sampling import ClipOptionError, ClipPlanConfig, plan_clips

README = Path(__file__).resolve().parents[1] / "README.md"
MISSING_WEIGHTS = "/nonexistent/vqscope-test/weights.pth"  # a local path: nothing is downloaded


def documented_codes() -> list[int]:
    """The codes of the README's "Exit codes" table, except 0 (success) and 1 (a bug)."""
    text = README.read_text()
    heading = re.search(r"^#+ Exit codes\s*$", text, re.MULTILINE)
    assert heading, "README.md has no Exit codes section"
    table = re.split(r"^#", text[heading.end():], maxsplit=1, flags=re.MULTILINE)[0]
    codes = []
    for line in table.splitlines():
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        codes += [int(c) for c in re.findall(r"\d+", cell)]
    return sorted(set(codes) - {0, 1})


def one_line_error(err: str, logs: bool = False) -> str:
    """The error line; asserts it is the only line (or, with `logs`, the last line after
    `vqscope:` log lines), and that no traceback was printed by any process."""
    assert "Traceback" not in err and "BrokenProcessPool" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("vqscope: error: "), err
    if logs:
        assert all(line.startswith("vqscope: ") and "error" not in line for line in lines[:-1]), err
    else:
        assert len(lines) == 1, err
    return lines[-1]


# -- what the cases need ---------------------------------------------------------------------------
def _model_with_missing_weights() -> Model:
    """A model whose backbone weights are a file that does not exist: WeightsError (22) wherever
    its backbones are built, in this process or in a worker."""
    torch.manual_seed(0)
    features = FeatureConfig(spatial=("mobilenet_v2",), temporal=(), weights={"mobilenet_v2": MISSING_WEIGHTS})
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(4,)))
    info = ModelInfo("noweights", 1, "test", training={"data": "none"}, card={"summary": "test"})
    return Model(info, features, network, Calibration.fit([20.0, 50.0, 80.0], "unit", "f" * 64))


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _csv(path: Path, videos: list[str]) -> str:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "mos"])
        for i, video in enumerate(videos):
            writer.writerow([video, 1 + i % 5])
    return str(path)


class Case:
    """A command producing one exit code; `logs`: log lines may come before the error line."""

    def __init__(self, argv: list[str], logs: bool = False, setup=None):
        self.argv, self.logs, self.setup = argv, logs, setup


class _BusyPort:
    """A port of 127.0.0.1 something else already listens on (for as long as the test runs)."""

    def __init__(self) -> None:
        self.port = _closed_port()
        self.sock: socket.socket | None = None

    def listen(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _empty_database(folder: Path) -> str:
    """A data folder whose database file is 0 bytes (what a crashed copy leaves)."""
    folder.mkdir()
    (folder / "vqscope.db").write_bytes(b"")
    return str(folder)


@pytest.fixture
def cases(tmp_path, video_factory, monkeypatch, request):
    """code -> Case, built lazily (each case only makes what it needs)."""
    good = video_factory("walk.mp4")
    no_weights = str(_model_with_missing_weights().save(tmp_path / "noweights-1.safetensors"))
    monkeypatch.setenv("VQSCOPE_RESULT_CACHE", str(tmp_path / "results"))

    def text(name: str, content: str) -> str:
        (tmp_path / name).write_text(content)
        return str(tmp_path / name)

    def no_onnxruntime() -> None:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed

    (tmp_path / "afile").write_text("a file where a folder should be")
    busy = _BusyPort()
    request.addfinalizer(busy.close)
    return {
        2: lambda: Case(["score", good, "--clip-seconds", "inf"]),
        3: lambda: Case(["score", good, text("fake.mp4", "not a video\n" * 20), "--json", "--no-progress"]),
        10: lambda: Case(["score", str(tmp_path / "nope.mp4")]),
        11: lambda: Case(["probe", text("locked.mp4", "x")], setup="locked"),
        12: lambda: Case(["score", text("empty.mp4", "")]),
        13: lambda: Case(["score", text("notes.mp4", "a shopping list, not a video\n" * 20)]),
        14: lambda: Case(["score", audio_only_file(tmp_path / "song.m4a")]),
        15: lambda: Case(["score", damaged_mp4(tmp_path)]),
        16: lambda: Case(["score", truncated_mp4(tmp_path)]),
        17: lambda: Case(["score", write_video(tmp_path / "one.mp4", textured_frames(1, 72, 128), 24)]),
        18: lambda: Case(["probe", str(tmp_path)]),
        20: lambda: Case(["score", good, "--model", "nosuch@9"]),
        21: lambda: Case(["score", good, "--model", text("bad.safetensors", "not a model")]),
        22: lambda: Case(["score", good, "--model", no_weights]),
        23: lambda: Case(["features", "csv:unused.csv", "--spatial", "resnet50"]),
        24: lambda: Case(["score", good, "--out", str(tmp_path / "afile" / "r.jsonl"), "--no-progress"]),
        25: lambda: Case(["score", good, "--runtime", "onnx", "--model", no_weights], setup=no_onnxruntime),
        26: lambda: Case(["describe", good, "--llm", f"http://127.0.0.1:{_closed_port()}", "--llm-timeout", "5",
                          "--no-progress"]),
        27: lambda: Case(_not_better_argv(tmp_path, video_factory), logs=True),
        28: lambda: Case(["study", "results", "999", "--data-dir", str(tmp_path / "service")]),
        29: lambda: Case(["serve", "--data-dir", _empty_database(tmp_path / "broken"), "--migrate-only"]),
        30: lambda: Case(["serve", "--data-dir", str(tmp_path / "pg"), "--migrate-only", "--db",
                          f"postgresql+psycopg://vq@127.0.0.1:{_closed_port()}/vq"]),
        31: lambda: Case(["serve", "--data-dir", str(tmp_path / "busy"), "--port", str(busy.port)], setup=busy.listen),
        32: lambda: Case(["features", f"csv:{_csv(tmp_path / 'two.csv', [good, video_factory('walk2.mp4', seed=1)])}",
                          "--spatial", "suicide_stats", "--temporal", "--cache-dir", str(tmp_path / "cache"),
                          "--workers", "2", "--no-progress"], logs=True),
    }


def _not_better_argv(tmp_path: Path, video_factory) -> list[str]:
    """`train --rated` on ratings that the base model already matches perfectly: the fitted
    head cannot beat it (27)."""
    base = tiny_model(name="walkbase")
    videos = [video_factory(f"rated{i}.mp4", n=24, seed=300 + i, crf=10 + 4 * i) for i in range(10)]
    scores = [base.score(v).score for v in videos]
    low, high = min(scores), max(scores)
    with open(tmp_path / "rated.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "mos"])
        for video, score in zip(videos, scores):
            writer.writerow([video, round(1 + 4 * (score - low) / (high - low), 4)])
    base_file = str(base.save(tmp_path / "walkbase-1.safetensors"))
    return ["train", "--rated", f"csv:{tmp_path / 'rated.csv'}", "--name", "w", "--version", "2",
            "--out", str(tmp_path / "w-2.safetensors"), "--base", base_file, "--features", "statistics",
            "--folds", "2", "--bootstrap", "20", "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
            "--no-progress"]


@pytest.mark.parametrize("code", documented_codes())
def test_each_documented_exit_code_through_the_cli(code, cases, capfd):
    assert code in cases, f"README documents exit code {code}: add a command that produces it here"
    case = cases[code]()
    if callable(case.setup):
        case.setup()
    if case.setup == "locked":
        return _walk_permission_denied(case, capfd)
    got = main(case.argv)
    out, err = capfd.readouterr()
    assert got == code, err
    if code == 3:  # several files, some failed: each failure a line, no error exit line
        assert "Traceback" not in err and all(line.startswith("vqscope: ") for line in err.strip().splitlines())
        assert [json.loads(line)["status"] for line in out.splitlines()] == ["ok", "error"]
        return
    one_line_error(err, logs=case.logs)


def _walk_permission_denied(case: Case, capfd) -> None:
    path = Path(case.argv[-1])
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            assert main(case.argv) == 11
            one_line_error(capfd.readouterr().err)
            return
        code, err = cli_without_file_access(case.argv)  # root reads anything
        assert code == 11, err
        one_line_error(err)
    finally:
        path.chmod(0o644)


def test_every_error_class_code_is_documented():
    """A new exit code needs a README row (and then a case above)."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.VQScopeError)]
    undocumented = sorted({c.exit_code for c in classes} - set(documented_codes()) - {1})
    assert not undocumented, f"exit codes without a README row: {undocumented}"


# -- errors of worker processes ----------------------------------------------------------------------
class _Suicide(torch.nn.Module):
    """A statistics backbone whose process is killed (SIGKILL) when it runs: what the system's
    out-of-memory killer does to a feature worker."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        os.kill(os.getpid(), signal.SIGKILL)
        return torch.zeros(len(x), 2)


register(BackboneSpec(name="suicide_stats", role="spatial", builder=_Suicide,
                      frame_input=FrameInput(color="luma", short_side=None, crop=64), feature_dim=2,
                      description="test only: kills its process"))


@pytest.fixture
def two_videos(tmp_path, video_factory) -> str:
    return _csv(tmp_path / "two.csv", [video_factory("w1.mp4"), video_factory("w2.mp4", seed=1)])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_features_weights_error_is_one_line_whatever_the_worker_count(workers, two_videos, tmp_path, capfd):
    code = main(["features", f"csv:{two_videos}", "--spatial", "mobilenet_v2", "--temporal",
                 "--weights", f"mobilenet_v2={MISSING_WEIGHTS}", "--cache-dir", str(tmp_path / "cache"),
                 "--workers", workers, "--no-progress"])
    err = capfd.readouterr().err
    assert code == errors.WeightsError.exit_code, err
    assert "weights file not found" in one_line_error(err, logs=True)


def test_eval_and_score_with_workers_report_the_weights_error(two_videos, tmp_path, video_factory, capfd):
    model = str(_model_with_missing_weights().save(tmp_path / "noweights-1.safetensors"))
    assert main(["eval", model, f"csv:{two_videos}", "--cache-dir", str(tmp_path / "cache"), "--workers", "2",
                 "--bootstrap", "0", "--no-progress"]) == 22
    one_line_error(capfd.readouterr().err, logs=True)
    videos = [video_factory("w1.mp4"), video_factory("w2.mp4", seed=1)]
    assert main(["score", *videos, "--model", model, "--workers", "2", "--no-progress"]) == 22
    one_line_error(capfd.readouterr().err)


def test_train_with_a_config_reports_the_weights_error(two_videos, tmp_path, capfd):
    config = tmp_path / "train.toml"
    config.write_text(f'[model]\nname = "t"\n[features]\nspatial = ["mobilenet_v2"]\ntemporal = []\n'
                      f'workers = 2\ncache_dir = "{tmp_path / "cache"}"\n[features.weights]\n'
                      f'mobilenet_v2 = "{MISSING_WEIGHTS}"\n[[datasets]]\nspec = "csv:{two_videos}"\nsplit = "all"\n')
    assert main(["train", str(config), "--no-progress"]) == 22
    assert "weights file not found" in one_line_error(capfd.readouterr().err, logs=True)


def test_a_killed_feature_worker_is_named_not_a_broken_pool(two_videos, tmp_path, capfd):
    code = main(["features", f"csv:{two_videos}", "--spatial", "suicide_stats", "--temporal",
                 "--cache-dir", str(tmp_path / "cache"), "--workers", "2", "--no-progress"])
    err = capfd.readouterr().err
    assert code == errors.WorkerCrashError.exit_code == 32, err
    line = one_line_error(err, logs=True)
    assert "a feature extraction worker process was killed (SIGKILL)" in line and "out of memory" in line


def test_decode_workers_that_cannot_start_say_so():
    """Spawned decode workers re-import the caller's script: an unguarded one kills them at
    start. Simulated by workers that exit while starting."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from vqscope.features.pipeline import ScoringPipeline

    pipeline = ScoringPipeline(tiny_model(), decode_workers=1)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os._exit,
                               initargs=(1,))
    with pytest.raises(errors.WorkerCrashError) as caught:
        pipeline._check_workers_start(pool)
    assert "exited with status 1" in caught.value.message and '__name__ == "__main__"' in caught.value.message
    assert caught.value.exit_code == 32


@pytest.mark.parametrize("code, words", [
    (-signal.SIGKILL, "killed (SIGKILL), most often by the system running out of memory"),
    (-signal.SIGSEGV, "crashed (SIGSEGV)"),
    (3, "exited with status 3"),
    (None, "died"),
])
def test_what_killed_a_worker_in_words(code, words):
    from vqscope.features.pipeline import describe_exit

    assert words in describe_exit(code)


# -- clip options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_clip_seconds_no_plan_can_honour_are_usage_errors(value, video_factory, capfd):
    for command in (["score"], ["ask"], ["describe"]):
        argv = [*command, video_factory("walk.mp4"), *(["is it sharp?"] if command == ["ask"] else []),
                "--clip-seconds", value, "--no-progress"]
        assert main(argv) == 2
        assert "--clip-seconds must be a finite number of seconds greater than 0" in one_line_error(capfd.readouterr().err)


def test_clip_options_are_checked_before_any_plan_is_made():
    with pytest.raises(ClipOptionError):
        ClipPlanConfig().with_options(float("inf"), None)
    with pytest.raises(ValueError):  # what configuration readers catch
        ClipPlanConfig(max_clips=0)
    assert issubclass(ClipOptionError, errors.ConfigError)


def test_a_clip_longer_than_the_video_is_one_clip_with_a_warning(video_factory, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("VQSCOPE_RESULT_CACHE", str(tmp_path / "results"))
    model = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    assert main(["score", video_factory("walk.mp4"), "--model", model, "--clip-seconds", "1000", "--json"]) == 0
    result = json.loads(capfd.readouterr().out)
    assert len(result["clips"]) == 1
    assert result["warnings"] == ["the video (2.00 s) is shorter than one clip of 1000 s: it is scored as one clip"]


def test_a_clip_shorter_than_a_frame_is_one_frame_with_a_warning():
    plan = plan_clips(4.0, 25.0, ClipPlanConfig().with_options(0.01, None))
    assert plan.warnings[0] == ("clips of 0.01 s are shorter than one frame at 25 fps: each clip is one frame "
                                "(0.04 s) long")
    assert plan.warnings[1].startswith("100 clips of 0.04 s planned, 32 kept (max_clips 32)")
    assert all(c.end_s - c.start_s == pytest.approx(0.04) for c in plan.clips)
    # the same clip length asked together with a clip limit: thinning is what was asked
    assert len(plan_clips(4.0, 25.0, ClipPlanConfig().with_options(0.01, 8)).warnings) == 1


def test_a_models_default_plan_gives_no_warning_for_short_or_long_videos():
    assert plan_clips(0.5, 25.0, ClipPlanConfig()).warnings == ()
    assert plan_clips(7200.0, 25.0, ClipPlanConfig()).warnings == ()
    assert ClipPlanConfig().with_options(2.0).to_dict() == ClipPlanConfig(clip_seconds=2.0).to_dict()


# -- calibrate and features defaults ------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--version", "7"], []])
def test_calibrate_refuses_a_shipped_models_id(extra, video_factory, tmp_path, capfd):
    out = tmp_path / "calibrated.safetensors"
    assert main(["calibrate", "vqscope-lite@7", video_factory("walk.mp4"), "--out", str(out), *extra]) == 2
    line = one_line_error(capfd.readouterr().err)
    assert "is the id of a shipped model" in line and "--version 8" in line
    assert not out.exists()


def test_features_defaults_to_the_default_models_backbones():
    from vqscope.cli.training import _feature_config
    from vqscope.zoo import load_model

    args = build_parser().parse_args(["features", "csv:x.csv"])
    default = load_model().features
    config = _feature_config(args)
    assert (config.spatial, config.temporal, config.clip_plan) == (default.spatial, default.temporal,
                                                                  default.clip_plan)
