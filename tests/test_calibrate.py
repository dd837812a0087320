"""`vqscope calibrate`: the percentile scale over a fixed benchmark set, stored in a new model file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from test_model import tiny_model
from vqscope.benchmark import file_sha256, resolve_benchmark
from vqscope.calibration import GradeScale, fingerprint
from vqscope.cli import main
from vqscope.errors import EXIT_SOME_FAILED, ConfigError
from vqscope.model import Model


@pytest.fixture(scope="module")
def bench(tmp_path_factory, video_factory):
    """Seven different small videos in a folder: the fixed benchmark set."""
    folder = tmp_path_factory.mktemp("bench")
    shapes = [(48, 72, 128, 1), (60, 72, 96, 5), (48, 96, 128, 0), (36, 64, 112, 7), (48, 72, 160, 2),
              (72, 80, 128, 9), (40, 72, 128, 4)]
    for i, (n, h, w, speed) in enumerate(shapes):
        shutil.copy(video_factory(f"b{i}.mp4", n=n, height=h, width=w, speed=speed, seed=i), folder / f"b{i}.mp4")
    return folder


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cal-models")
    # two random heads that spread these videos out, in different orders
    return [str(tiny_model(seed=s, name=f"m{s}").save(folder / f"m{s}-1.safetensors")) for s in (10, 17)]


def calibrate(capsys, model_file, bench, out, *extra):
    code = main(["calibrate", model_file, str(bench), "--out", str(out), "--name", "unit-bench", "--json",
                 "--no-progress", *extra])
    assert code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_two_models_give_the_same_scaled_score_at_the_same_rank(capsys, tmp_path, bench, model_files):
    reports = [calibrate(capsys, f, bench, tmp_path / f"cal{i}.safetensors") for i, f in enumerate(model_files)]
    models = [Model.load(tmp_path / f"cal{i}.safetensors") for i in range(2)]
    cals = [m.calibration for m in models]
    # the same set, recorded by content: same fingerprint and size in both model files
    hashes = [file_sha256(str(p)) for p in sorted(bench.glob("*.mp4"))]
    assert cals[0].fingerprint == cals[1].fingerprint == fingerprint(hashes)
    assert cals[0].size == cals[1].size == 7 and cals[0].benchmark == "unit-bench"
    raw = [np.array([s["score"] for s in r["scores"]]) for r in reports]
    assert all(len(set(np.round(r, 3))) == 7 for r in raw), raw  # no ties: ranks are well defined
    assert not np.array_equal(np.argsort(raw[0]), np.argsort(raw[1]))  # two genuinely different models
    scaled = [np.sort([c.scaled(s) for s in r]) for c, r in zip(cals, raw)]  # each model's own ranking
    expected = 100 * np.arange(7) / 6  # rank k of n: the k/(n-1) percentile
    assert scaled[0] == pytest.approx(scaled[1], abs=1.0)
    assert scaled[0] == pytest.approx(expected, abs=1.0)
    # and scoring through the model gives the calibrated value
    video = sorted(bench.glob("*.mp4"))[3]
    result = models[0].score(video)
    assert result.scaled_score == pytest.approx(cals[0].scaled(result.score))
    grid = np.linspace(0, 100, 301)
    assert np.all(np.diff([cals[1].scaled(s) for s in grid]) >= 0)  # monotone and interpolated


def test_grade_scale_options_and_version(capsys, tmp_path, bench, model_files):
    out = tmp_path / "graded.safetensors"
    calibrate(capsys, model_files[0], bench, out, "--grade-thresholds", "10,30,50,70", "--grade-basis", "scaled",
              "--version", "7")
    model = Model.load(out)
    assert model.id == "m10@7"
    assert model.grades == GradeScale((10, 30, 50, 70), basis="scaled")
    assert model.info.training["calibration"]["size"] == 7
    result = model.score(sorted(bench.glob("*.mp4"))[0])
    assert result.grade == model.grades.grade(result.scaled_score)  # read on the scaled score
    assert all(c.dimensions["overall"].grade == model.grades.grade(model.calibration.scaled(c.score))
               for c in result.clips)
    three = tmp_path / "three.safetensors"
    small = tmp_path / "small.txt"
    small.write_text("\n".join(str(p) for p in sorted(bench.glob("*.mp4"))[:3]))
    calibrate(capsys, model_files[0], small, three, "--grade-thresholds", "50,75", "--grade-labels", "low,mid,high")
    assert Model.load(three).grades.labels == ("low", "mid", "high")
    assert main(["calibrate", model_files[0], str(bench), "--out", str(tmp_path / "x.safetensors"),
                 "--grade-thresholds", "50,75"]) == ConfigError.exit_code  # 2 thresholds need 3 labels


def test_failures_are_left_out_and_reported(capsys, tmp_path, bench, model_files):
    folder = tmp_path / "with-broken"
    shutil.copytree(bench, folder)
    (folder / "broken.mp4").write_text("not a video")
    listing = tmp_path / "set.txt"
    listing.write_text("# the benchmark\n" + "\n".join(f"with-broken/{p.name}" for p in sorted(folder.iterdir())))
    out = tmp_path / "cal.safetensors"
    code = main(["calibrate", model_files[0], str(listing), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == EXIT_SOME_FAILED and "broken.mp4" in captured.err and "not_a_video" in captured.err
    assert "7 videos" in captured.out
    assert Model.load(out).calibration.size == 7
    assert main(["calibrate", model_files[0], str(folder / "broken.mp4"), str(listing),
                 "--out", str(tmp_path / "s.safetensors"), "--strict", "--no-progress"]) == 13  # stops at once


def test_usage_errors(capsys, tmp_path, bench, model_files):
    assert main(["calibrate", model_files[0], str(bench), "--out", model_files[0]]) == 2  # never in place
    assert main(["calibrate", model_files[0], str(tmp_path / "nothing"), "--out", str(tmp_path / "o.safetensors")]) == 10
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(next(bench.glob("*.mp4")), one)
    assert main(["calibrate", model_files[0], str(one), "--out", str(tmp_path / "o.safetensors")]) == 2
    assert "at least two videos" in capsys.readouterr().err
    with pytest.raises(ValueError):
        GradeScale.parse("20,x,60")
    with pytest.raises(ValueError):
        GradeScale(basis="percent")


def test_benchmark_sources(tmp_path, bench):
    a = resolve_benchmark([str(bench)])
    b = resolve_benchmark([str(p) for p in sorted(bench.glob("*.mp4"))] + [str(bench)], name="named")
    assert a.videos == b.videos and len(a.videos) == 7 and b.name == "named"
    labels = tmp_path / "labels.csv"
    labels.write_text("path,mos\n" + "".join(f"{p},{i + 1}\n" for i, p in enumerate(sorted(bench.glob("*.mp4")))))
    c = resolve_benchmark([f"csv:{labels}"])
    assert c.videos == a.videos
