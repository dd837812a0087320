"""The `vqscope` command: one video, many videos, resumable result files."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from vqscope.cli import main
from vqscope.errors import EXIT_SOME_FAILED
from test_model import CONTRACT_KEYS, tiny_model


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    return str(tiny_model().save(tmp_path_factory.mktemp("models") / "tiny-1.safetensors"))


@pytest.fixture
def folder(tmp_path, video_factory):
    """Two videos and a text file in a folder, plus one broken video."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(video_factory("a.mp4", n=48, seed=1), d / "a.mp4")
    shutil.copy(video_factory("b.mp4", n=30, seed=2), d / "sub" / "b.mkv")
    (d / "notes.txt").write_text("not a video")
    (d / "broken.mp4").write_text("not a video either")
    return d


def test_score_json_uses_the_shipped_model(capsys, video_factory):
    code = main(["score", video_factory("three_s.mp4", n=72, fps=24), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert list(result)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert result["model"].startswith("vqscope-lite@")
    assert len(result["clips"]) == 3 and 0 <= result["score"] <= 100


def test_score_table_shows_summary_and_timeline(capsys, tiny_model_file, video_factory):
    assert main(["score", video_factory("three_s.mp4", n=72, fps=24), "--model", tiny_model_file]) == 0
    out = capsys.readouterr().out
    assert "score" in out and "grade" in out and "Clip timeline" in out
    assert "0.0-1.0" in out and "2.0-3.0" in out


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_many_videos_to_a_file_resume_and_record_failures(capsys, tmp_path, folder, tiny_model_file, suffix):
    out = tmp_path / f"results{suffix}"
    code = main(["score", str(folder), "--model", tiny_model_file, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED
    assert "2 scored, 1 failed, 0 already" in err
    records = read_records(out)
    assert sorted(r["video"].split("/")[-1] for r in records) == ["a.mp4", "b.mkv", "broken.mp4"]
    broken = next(r for r in records if r["video"].endswith("broken.mp4"))
    assert broken["status"] == "error" and broken["error"] == "not_a_video"
    ok = [r for r in records if r["status"] == "ok"]
    assert all(0 <= float(r["score"]) <= 100 and r["model"] == "tiny@1" for r in ok)

    # A second run skips what is scored and tries the failure again.
    code = main(["score", str(folder), "--model", tiny_model_file, "--out", str(out), "--no-progress"])
    assert code == EXIT_SOME_FAILED
    assert "0 scored, 1 failed, 2 already" in capsys.readouterr().err
    assert len([r for r in read_records(out) if r["status"] == "ok"]) == 2


def read_records(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    import pyarrow.parquet as pq

    assert not path.with_name(path.name + ".partial.jsonl").exists()  # journal folded in
    return pq.read_table(path).to_pylist()


def test_results_carry_the_clip_timeline(tmp_path, folder, tiny_model_file, capsys):
    out = tmp_path / "r.jsonl"
    main(["score", str(folder / "a.mp4"), "--model", tiny_model_file, "--out", str(out)])
    capsys.readouterr()
    (record,) = read_records(out)
    assert record["status"] == "ok" and len(record["clips"]) == 2


def test_unknown_output_format_is_refused(capsys, tmp_path, folder, tiny_model_file):
    code = main(["score", str(folder / "a.mp4"), "--model", tiny_model_file, "--out", str(tmp_path / "r.xlsx")])
    assert code == 24 and "unknown results format" in capsys.readouterr().err


def test_models_and_backbones_and_probe(capsys, video_factory):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert any(m["id"].startswith("vqscope-lite@") for m in models)
    newest = max((m["id"] for m in models if m["id"].startswith("vqscope-lite@")), key=lambda i: int(i.split("@")[1]))
    assert [m["id"] for m in models if m["default"]] == [newest]
    assert main(["backbones", "--json"]) == 0
    names = {b["name"] for b in json.loads(capsys.readouterr().out)}
    assert {"efficientnet_lite0", "motion_stats", "x3d_s", "detail_stats"} <= names
    assert main(["probe", video_factory("a.mp4", n=48, seed=1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frame_count"] == 48


def test_unknown_model_is_a_clear_error(capsys, video_factory):
    code = main(["score", video_factory("a.mp4", n=48, seed=1), "--model", "nope@3"])
    err = capsys.readouterr().err
    assert code == 20 and err.startswith("vqscope: error: unknown model")


def test_workers_score_in_parallel_processes_like_one_process(capsys, tmp_path, folder, tiny_model_file):
    serial, parallel = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
    assert main(["score", str(folder), "--model", tiny_model_file, "--out", str(serial), "--no-progress"]) == EXIT_SOME_FAILED
    code = main(["score", str(folder), "--model", tiny_model_file, "--out", str(parallel), "--no-progress", "--workers", "2"])
    assert code == EXIT_SOME_FAILED  # broken.mp4 is recorded as a failure, the rest scored
    capsys.readouterr()

    def by_video(path):
        return {r["video"]: r for r in map(json.loads, path.read_text().splitlines())}

    a, b = by_video(serial), by_video(parallel)
    assert set(a) == set(b) and len(b) == 3
    for video, record in a.items():
        assert b[video]["status"] == record["status"]
        if record["status"] == "ok":
            assert b[video]["score"] == pytest.approx(record["score"], abs=1e-3)
        else:
            assert b[video]["error"] == record["error"] == "not_a_video"
    assert main(["score", str(folder), "--model", tiny_model_file, "--workers", "0"]) == 2


@pytest.mark.parametrize("table", [False, True], ids=["json", "rich-table"])
def test_a_closed_output_pipe_ends_the_command_quietly_with_success(tmp_path, tiny_model_file, video_factory, table):
    """`vqscope score F | head -1`: the reader going away is not a failure (Rich alone exits 1)."""
    import os
    import subprocess
    import sys

    video = video_factory("piped.mp4", n=24)
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write into the pipe now fails with EPIPE
    args = ["score", video, "--model", tiny_model_file, "--no-progress"] + ([] if table else ["--json"])
    try:
        done = subprocess.run([sys.executable, "-m", "vqscope.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "Error" not in done.stderr and "Traceback" not in done.stderr
