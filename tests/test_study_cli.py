"""`vqscope study ...` on a data folder: the whole loop from the command line, and its errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from service_support import tiny_model_file
from vqscope.cli import main
from vqscope.model import Model
from vqscope.service.store import JobStore
from vqscope.studies.store import Answer, StudyStore


@pytest.fixture(scope="module")
def videos(tmp_path_factory, video_factory):
    folder = tmp_path_factory.mktemp("cli-videos")
    for i in range(12):
        shutil.copy(video_factory(f"c{i}.mp4", n=24, speed=1 + i % 6, seed=40 + i), folder / f"c{i:02d}.mp4")
    return folder


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def open_store(data_dir):
    jobs = JobStore(f"sqlite:///{data_dir / 'vqscope.db'}")
    return jobs, StudyStore(jobs.engine)


def test_create_invite_rate_results_export(tmp_path, videos, capsys):
    data = tmp_path / "data"
    paths = [str(p) for p in sorted(videos.glob("*.mp4"))[:4]]
    code, out, _ = run(capsys, "study", "create", "cli", *paths, "--anchor", f"{paths[0]}=fair", "--repeats", "0",
                       "--data-dir", str(data), "--json")
    assert code == 0
    study = json.loads(out)
    assert study["items"] == 5 and study["method"] == "acr"
    code, out, err = run(capsys, "study", "invite", study["id"], "--raters", "2", "--base-url", "http://rate.example",
                         "--data-dir", str(data))
    assert code == 0 and "shown only now" in err
    links = [line.split("\t")[1] for line in out.splitlines()]
    assert len(links) == 2 and all(link.startswith("http://rate.example/rate/") for link in links)
    jobs, studies = open_store(data)
    for n, link in enumerate(links):
        s, rater = studies.rater_by_token(link.rsplit("/", 1)[1])
        for task in studies.tasks(rater):
            studies.submit(s, rater, task.position, Answer(score=2 + n))
    jobs.close()
    code, out, _ = run(capsys, "study", "results", study["id"], "--data-dir", str(data))
    assert code == 0 and "4 items, 2 raters" in out and "2.50" in out
    code, out, _ = run(capsys, "study", "results", study["id"], "--data-dir", str(data), "--json")
    assert {row["mos"] for row in json.loads(out)["items"]} == {2.5}
    export = tmp_path / "study.csv"
    code, out, _ = run(capsys, "study", "export", study["id"], "--out", str(export), "--data-dir", str(data))
    assert code == 0 and "wrote 4 rows" in out and export.read_text().startswith("path,mos,")
    code, out, _ = run(capsys, "study", "list", "--data-dir", str(data))
    assert study["id"] in out and "4 ratings" not in out  # 8 ratings (and 2 training answers)


def test_imported_ratings_set_grades_and_make_a_new_model_version(tmp_path, videos, capsys):
    data = tmp_path / "data"
    model_file = tiny_model_file(tmp_path)
    model = Model.load(model_file)
    scores = {p.name: model.score(p).score for p in sorted(videos.glob("*.mp4"))}
    rng = np.random.default_rng(0)
    # raters whose categories change at a known point of the model's score: 40 / 50 / 55 / 60
    cuts = np.array([40.0, 50.0, 55.0, 60.0])
    lo, hi = min(scores.values()), max(scores.values())
    rows = ["rater,video,score"]
    for r in range(8):
        for name, s in scores.items():
            stretched = 30 + (s - lo) / (hi - lo) * 40  # spread the tiny model's scores over 30-70
            category = 1 + int(np.searchsorted(cuts, stretched + rng.normal(0, 2)))
            rows.append(f"r{r},{name},{category}")
    ratings = tmp_path / "crowd.csv"
    ratings.write_text("\n".join(rows) + "\n")
    code, out, _ = run(capsys, "study", "import", "--new", "crowd", str(ratings), "--videos", str(videos),
                       "--data-dir", str(data))
    assert code == 0 and "96 ratings imported" in out
    study_id = out.split()[1].rstrip(":")
    new_file = tmp_path / "regraded.safetensors"
    code, out, err = run(capsys, "study", "thresholds", study_id, "--model", model_file, "--out", str(new_file),
                         "--version", "5", "--data-dir", str(data))
    assert code == 0, err
    assert "bad" in out and "excellent" in out
    regraded = Model.load(new_file)
    assert regraded.info.version == 5 and regraded.grades.thresholds != model.grades.thresholds
    assert regraded.info.training["grades"]["study"] == study_id
    assert regraded.calibration.raw == model.calibration.raw  # the percentile table is kept


def test_plan_prints_text_and_json(capsys):
    code, out, _ = run(capsys, "study", "plan", "--videos", "20", "--raters", "6", "--runs", "2")
    assert code == 0 and "95% interval" in out
    code, out, _ = run(capsys, "study", "plan", "--videos", "20", "--raters", "6", "--runs", "2", "--json")
    assert code == 0 and json.loads(out)["videos"] == 20
    code, _, err = run(capsys, "study", "plan", "--videos", "2", "--raters", "6")
    assert code == 2 and err.startswith("vqscope: error:") and err.count("\n") == 1


def test_command_line_errors_are_one_line_with_their_code(tmp_path, videos, capsys):
    data = str(tmp_path / "data")
    cases = [
        (["study", "results", "nosuch", "--data-dir", data], 28),
        (["study", "invite", "nosuch", "--raters", "2", "--data-dir", data], 28),
        (["study", "create", "x", str(tmp_path / "missing.mp4"), "--data-dir", data], 10),
        (["study", "create", "x", str(videos / "c00.mp4"), "--anchor", "nolabel", "--data-dir", data], 2),
        (["study", "create", "x", str(videos / "c00.mp4"), "--gold", f"{videos / 'c01.mp4'}=9", "--data-dir", data], 2),
        (["study", "create", "x", str(videos / "c00.mp4"), "--path-root", str(tmp_path), "--data-dir", data], 2),
        (["study", "import", str(tmp_path / "none.csv"), "--new", "y", "--data-dir", data], 2),
        (["study", "import", "--data-dir", data, str(tmp_path / "none.csv")], 2),
    ]
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("rater,video,score\na,c00.mp4,six\n")
    cases.append((["study", "import", "--new", "z", str(bad_csv), "--data-dir", data], 28))
    for argv, expected in cases:
        code, out, err = run(capsys, *argv)
        assert code == expected and err.startswith("vqscope: error:") and err.count("\n") == 1, (argv, code, err)
    jobs, studies = open_store(tmp_path / "data")
    assert studies.list() == []  # no failed command left a half-made study
    jobs.close()


def test_upgrading_a_0001_database_keeps_its_jobs(tmp_path):
    from vqscope.service.migrations import current, upgrade
    from vqscope.service.store import NewJob, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    old = JobStore(url, migrate=False)
    job = old.submit([NewJob("path", "/v.mp4", "v.mp4")])[0]
    old.close()
    upgraded = JobStore(url)
    assert current(upgraded.engine) == "0003" and upgraded.get(job.id).video == "v.mp4"
    assert StudyStore(upgraded.engine).list() == []
    upgraded.close()
    engine.dispose()


def test_a_study_trains_a_model_from_the_command_line(tmp_path, video_factory, capsys):
    """People rate, the study screens them, `train --from-study` fits a head that beats a base
    blind to what they saw; `train --ratings` does the same from the raw CSV."""
    from test_study_fit import blind_model

    folder = tmp_path / "videos"
    folder.mkdir()
    crfs = [int(round(10 + 41 * i / 19)) for i in range(20)]
    for i, crf in enumerate(crfs):  # the picture gets worse with the CRF; raters see it
        shutil.copy(video_factory(f"rated{i}.mp4", n=48, seed=300 + i, crf=crf), folder / f"q{i:02d}.mp4")
    rng = np.random.default_rng(1)
    rows = ["rater,video,score"] + [
        f"p{r},q{i:02d}.mp4,{int(np.clip(round(5 - 4 * (crf - 10) / 41 + rng.normal(0, 0.5)), 1, 5))}"
        for r in range(6) for i, crf in enumerate(crfs)]
    ratings = tmp_path / "panel.csv"
    ratings.write_text("\n".join(rows) + "\n")
    data = tmp_path / "data"
    code, out, _ = run(capsys, "study", "import", "--new", "panel", str(ratings), "--videos", str(folder),
                       "--data-dir", str(data))
    assert code == 0
    study_id = out.split()[1].rstrip(":")
    base = str(blind_model().save(tmp_path / "blind-1.safetensors"))
    common = ["--name", "panel", "--version", "1", "--base", base, "--features", "statistics", "--folds", "3",
              "--bootstrap", "50", "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--no-progress"]
    out_file = tmp_path / "models" / "panel-1.safetensors"
    code, printed, err = run(capsys, "train", "--from-study", study_id, "--data-dir", str(data), "--out",
                             str(out_file), *common)
    assert code == 0, err
    assert "wrote" in printed and (tmp_path / "models" / "panel-1.mos.csv").is_file()
    model = Model.load(out_file)
    assert model.info.card["source"]["study"] == study_id and model.info.card["source"]["raters"] == 6
    assert model.score(folder / "q00.mp4").score > model.score(folder / "q19.mp4").score
    again = tmp_path / "models" / "panel-csv-1.safetensors"
    code, _, err = run(capsys, "train", "--ratings", str(ratings), "--videos", str(folder), "--out", str(again),
                       *common)
    assert code == 0, err
    assert Model.load(again).info.card["source"]["videos"] == 20
    for argv, words in [
        (["train", "--ratings", str(ratings), "--out", str(again), *common], "--videos"),
        (["train", "--from-study", study_id, "--rated", "csv:x.csv", "--out", str(again), *common], "exactly one of"),
        (["train", "--from-study", "nosuch", "--data-dir", str(data), "--out", str(again), *common], "no study"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code in (2, 28) and words in err and err.count("\n") == 1, (argv, err)
