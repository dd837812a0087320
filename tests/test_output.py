"""What vqscope shows and writes: the clip timeline at any width, the summary of several videos,
flat CSV/Parquet columns with the timeline beside or nested, one rounding and re-run rule in
every format and in `batch`, the model list, and messages that name their file once."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from fine_results import fine_model, fine_result, overall_only_result
from test_model import tiny_model
from vqscope.cli import main
from vqscope.cli.scoring import _print_result
from vqscope.distributed import BatchSettings, read_results, run_batch
from vqscope.errors import EXIT_SOME_FAILED
from vqscope.output import (
    ABBREVIATIONS,
    CLIP_COLUMNS,
    COLUMNS,
    DISTORTION_COLUMNS,
    ResultFile,
    flat_row,
    name_once,
    summary,
    timeline,
)
from vqscope.zoo import format_size, list_models, own_summary

WIDTHS = (80, 100, 160)


def render(renderables, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    for r in renderables:
        console.print(r)
    return console.file.getvalue()


def assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert lines, "nothing printed"
    assert max(len(line) for line in lines) <= width, f"a line is wider than {width} columns"
    assert "…" not in text, "something was cut"


# -- the clip timeline -------------------------------------------------------------------------
def long_result():
    """Ten clips an hour into a video: the widest time cells a timeline has."""
    r = fine_result(clips=10)
    clips = [replace(c, start_s=3590.0 + c.index, end_s=3591.0 + c.index) for c in r.clips]
    return replace(r, clips=clips)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("make", [fine_result, long_result, overall_only_result], ids=["fine", "hour", "overall"])
def test_the_timeline_fits_every_width_and_cuts_no_number(width, make):
    result = make()
    text = render(timeline(result, Console(width=width)), width)
    assert_fits(text, width)
    for c in result.clips:  # every clip's time and score, whole, on its own row
        assert f"{c.start_s:.1f}-{c.end_s:.1f}" in text and f"{c.score:.1f}" in text
    header = next(line for line in text.splitlines() if "clip" in line and "score" in line)
    assert "time (s)" in header  # one header line: no name broken over two
    shown = [d for d in ABBREVIATIONS if re.search(rf"\b({d}|{ABBREVIATIONS[d]})\b", header)]
    for d in shown:  # the dimension scores of the dimensions shown, every one whole
        assert all(f"{c.dimensions[d].score:.1f}" in text for c in result.clips)


def test_at_80_columns_headers_are_abbreviated_with_a_legend_and_at_160_nothing_gives_way():
    result = fine_result()
    narrow = render(timeline(result, Console(width=80)), 80)
    header = next(line for line in narrow.splitlines() if "clip" in line)
    assert re.findall(r"\b(col|noi|art|blu|tmp)\b", header) == ["col", "noi", "art", "blu", "tmp"]
    assert "col color" in narrow and "tmp temporal" in narrow and "artif…" not in narrow
    wide = render(timeline(result, Console(width=160)), 160)
    header = next(line for line in wide.splitlines() if "clip" in line)
    assert all(name in header for name in ("color", "noise", "artifact", "blur", "temporal"))
    assert "█" in wide and "col color" not in wide  # the bar, and no legend needed


def test_too_narrow_for_every_dimension_the_best_scored_give_way_and_are_named():
    result = fine_result()  # video scores: color 72, noise 55, artifact 45, blur ~42, temporal 58
    text = render(timeline(result, Console(width=50)), 50)
    assert_fits(text, 50)
    assert "█" not in text  # the bar goes first
    legend = " ".join(text.split()).split("not shown at 50 columns:")[1]
    assert "color" in legend  # the highest-scoring dimension gives way first
    assert "blur" not in legend and "artifact" not in legend  # the weakest stay


def test_score_prints_a_result_that_fits_80_columns(capsys, monkeypatch, video_factory):
    monkeypatch.setenv("COLUMNS", "80")  # what Rich gives any pipe
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    assert main(["score", video_factory("six_s.mp4", n=144, fps=24), "--no-progress", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert_fits(out, 80)
    assert "Clip timeline" in out and "0.0-1.0" in out and "5.0-6.0" in out
    # each dimension's sentence wraps beside its numbers instead of running past the edge
    assert re.search(r"^  blur +\d+\.\d fair +Blur is fair", out, re.MULTILINE)


@pytest.mark.parametrize("width", WIDTHS)
def test_print_result_fits(width):
    console = Console(width=width, file=io.StringIO(), color_system=None)
    _print_result(fine_result(), console)
    assert_fits(console.file.getvalue(), width)


# -- several videos on the terminal ------------------------------------------------------------
@pytest.fixture
def fine(monkeypatch):
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    return model


@pytest.fixture
def two_and_a_broken(tmp_path, video_factory):
    d = tmp_path / "clips"
    d.mkdir()
    shutil.copy(video_factory("first.mp4", n=48, seed=1), d / "first.mp4")
    shutil.copy(video_factory("second.mp4", n=72, seed=2), d / "second.mp4")
    (d / "broken.mp4").write_text("not a video")
    return d


def test_several_files_print_a_summary_table_not_json(capsys, monkeypatch, fine, two_and_a_broken):
    monkeypatch.setenv("COLUMNS", "80")
    code = main(["score", str(two_and_a_broken), "--no-progress"])
    captured = capsys.readouterr()
    assert code == EXIT_SOME_FAILED
    out = captured.out
    assert_fits(out, 80)
    assert "{" not in out  # not JSON lines
    assert "2 of 3 videos scored" in out and str(two_and_a_broken) in out
    for header in ("video", "score", "grade", "weakest", "likely"):
        assert header in out
    lines = out.splitlines()
    first = next(line for line in lines if line.lstrip().startswith("first.mp4"))
    assert re.search(r"\b\d+\.\d\b", first) and "compression artifacts 0.7" in first
    broken = next(line for line in lines if "broken.mp4" in line)
    assert "error" in broken
    # rows follow the input (sorted folder) order
    assert [n for line in lines for n in ("broken", "first", "second") if line.lstrip().startswith(n)] == \
        ["broken", "first", "second"]
    # the skip note names the file once
    assert captured.err.count("broken.mp4") == 1 and "skipped " in captured.err


def test_several_files_with_json_stay_json_lines(capsys, fine, two_and_a_broken):
    assert main(["score", str(two_and_a_broken), "--no-progress", "--json"]) == EXIT_SOME_FAILED
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["status"] for r in records) == ["error", "ok", "ok"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_summary_fits_and_cuts_nothing(width):
    long = "/data/campaign-2026/" + "a-very-long-folder-name/" * 2
    records = [{**fine_result(video=long + f"clip-{i}-with-a-long-descriptive-name.mp4").to_dict(), "status": "ok"}
               for i in range(3)]
    records.append({"video": long + "bad.mp4", "model": "fine@1", "status": "error", "error": "not_a_video",
                    "message": f"{long}bad.mp4: not a video file (no container format recognised)"})
    text = render(summary(records, width), width)
    assert_fits(text, width)
    cells = table_cells(text)
    assert [c[0] for c in cells] == [f"clip-{i}-with-a-long-descriptive-name.mp4" for i in range(3)] + ["bad.mp4"]
    assert [c[1] for c in cells] == ["44.0"] * 3 + [""]
    assert cells[0][4] == "motionblur0.86,compressionartifacts0.75"
    assert cells[3][2:] == ["error", "", "notavideofile(nocontainerformatrecognised)"]
    assert long.rstrip("/") in " ".join(text.split())  # the shared folder, once, in the title


def table_cells(text: str) -> list[list[str]]:
    """The body of a printed table read back: each row's cells with the pieces of folded or
    wrapped lines joined (without the spaces wrapping took), a row starting at a grade."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if "│" not in line:
            continue
        parts = [p.strip() for p in line.split("│")]
        if parts[2]:  # grade: on the first line of every row
            rows.append(parts)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], parts)]
    return [[c.replace(" ", "") for c in row] for row in rows]


# -- files: flat columns, the timeline, one rounding and re-run rule ----------------------------
def read(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    return pq.read_table(path).to_pylist()


def test_csv_has_flat_columns_and_a_clip_file(capsys, tmp_path, fine, two_and_a_broken):
    out = tmp_path / "results.csv"
    assert main(["score", str(two_and_a_broken), "--out", str(out), "--no-progress"]) == EXIT_SOME_FAILED
    assert "clip timeline in" in capsys.readouterr().err
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(COLUMNS)
    assert {"color_score", "color_grade", "temporal_grade", "p_compression", "p_flicker"} <= set(header)
    rows = {r["video"].rsplit("/", 1)[-1]: r for r in read(out)}
    first = rows["first.mp4"]
    assert all(not str(v).startswith(("{", "[")) for v in first.values())  # no JSON in cells
    assert float(first["blur_score"]) > 0 and first["blur_grade"] and float(first["p_motion_blur"]) >= 0
    assert int(first["clip_count"]) == 2
    assert rows["broken.mp4"]["status"] == "error" and rows["broken.mp4"]["blur_score"] == ""

    clips = read(tmp_path / "results.clips.csv")
    with open(tmp_path / "results.clips.csv", newline="") as fh:
        assert next(csv.reader(fh)) == list(CLIP_COLUMNS)
    by_video = {}
    for c in clips:
        by_video.setdefault(c["video"].rsplit("/", 1)[-1], []).append(c)
    assert sorted(by_video) == ["first.mp4", "second.mp4"]  # no clips for a failure
    assert [c["clip_index"] for c in by_video["second.mp4"]] == ["0", "1", "2"]
    assert [c["start_s"] for c in by_video["second.mp4"]] == ["0.0", "1.0", "2.0"]
    assert by_video["first.mp4"][0]["blur_score"] and by_video["first.mp4"][0]["p_motion_blur"]


def test_parquet_has_the_same_flat_columns_and_the_timeline_nested(capsys, tmp_path, fine, two_and_a_broken):
    out = tmp_path / "results.parquet"
    main(["score", str(two_and_a_broken), "--out", str(out), "--no-progress"])
    capsys.readouterr()
    table = pq.read_table(out)
    assert table.column_names == [*COLUMNS, "clips"]
    rows = {r["video"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
    second = rows["second.mp4"]
    assert isinstance(second["color_score"], float) and isinstance(second["p_noise"], float)
    assert [c["clip_index"] for c in second["clips"]] == [0, 1, 2] and second["clip_count"] == 3
    assert set(second["clips"][0]) == set(CLIP_COLUMNS[2:])
    assert rows["broken.mp4"]["clips"] is None and rows["broken.mp4"]["error"] == "not_a_video"
    assert not (tmp_path / "results.clips.csv").exists()


def test_jsonl_keeps_the_full_record(capsys, tmp_path, fine, two_and_a_broken):
    out = tmp_path / "results.jsonl"
    main(["score", str(two_and_a_broken), "--out", str(out), "--no-progress"])
    capsys.readouterr()
    ok = [r for r in read(out) if r["status"] == "ok"]
    assert all(set(r["dimensions"]["blur"]) >= {"score", "grade"} and len(r["distortions"]) == 12 for r in ok)
    assert all(isinstance(r["clips"], list) and r["clips"][0]["distortions"] for r in ok)


def decimals_of(value) -> int:
    text = repr(float(value))
    return 0 if "e" in text else len(text.split(".")[1].rstrip("0"))


def test_one_rounding_rule_in_every_format_and_in_batch(capsys, tmp_path, two_and_a_broken):
    model_file = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    good = sorted(str(p) for p in two_and_a_broken.glob("*.mp4") if p.name != "broken.mp4")
    scores = {}
    for suffix in (".jsonl", ".csv", ".parquet"):
        out = tmp_path / f"r{suffix}"
        main(["score", *good, "--model", model_file, "--out", str(out), "--no-progress"])
        scores[suffix] = {r["video"]: (float(r["score"]), float(r["scaled_score"])) for r in read(out)}
    run_batch(good, tmp_path / "batch.parquet", BatchSettings(model=model_file))
    scores["batch"] = {r["video"]: (r["score"], r["scaled_score"]) for r in read_results(tmp_path / "batch.parquet")}
    capsys.readouterr()
    assert scores[".jsonl"] == scores[".csv"] == scores[".parquet"] == scores["batch"]
    assert all(decimals_of(v) <= 2 for pair in scores["batch"].values() for v in pair)


def test_flat_rows_round_scores_to_2_and_probabilities_to_4():
    record = {**fine_result().to_dict(), "status": "ok", "score": 51.234567, "scaled_score": 12.3456}
    record["distortions"]["noise"] = 0.123456789
    record["dimensions"]["blur"]["score"] = 41.98765
    row = flat_row(record)
    assert (row["score"], row["scaled_score"], row["blur_score"], row["p_noise"]) == (51.23, 12.35, 41.99, 0.1235)
    assert all(decimals_of(row[c]) <= 4 for c in DISTORTION_COLUMNS)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_rerun_replaces_error_rows_and_skips_scored_videos(capsys, tmp_path, video_factory, fine, suffix):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(video_factory("a.mp4", n=48, seed=1), d / "a.mp4")
    (d / "late.mp4").write_text("not yet a video")
    out = tmp_path / f"results{suffix}"
    args = ["score", str(d), "--out", str(out), "--no-progress"]

    assert main(args) == EXIT_SOME_FAILED
    assert main(args) == EXIT_SOME_FAILED  # the failure again: still one row for it
    assert "0 scored, 1 failed, 1 already" in capsys.readouterr().err
    rows = read(out)
    assert [r["video"].rsplit("/", 1)[-1] for r in rows] == ["a.mp4", "late.mp4"]

    shutil.copy(video_factory("b.mp4", n=72, seed=2), d / "late.mp4")  # fixed
    assert main(args) == 0
    assert "1 scored, 0 failed, 1 already" in capsys.readouterr().err
    rows = read(out)
    assert [(r["video"].rsplit("/", 1)[-1], r["status"]) for r in rows] == [("a.mp4", "ok"), ("late.mp4", "ok")]
    if suffix == ".csv":  # the timeline of the fixed video once, beside the others
        clips = read(tmp_path / "results.clips.csv")
        assert [c["video"].rsplit("/", 1)[-1] for c in clips] == ["a.mp4"] * 2 + ["late.mp4"] * 3


def test_a_crashed_runs_leftovers_are_resolved_at_the_end_of_the_next(tmp_path, fine, video_factory):
    """A crash can leave a superseded row (JSONL) and clip rows without their video's row (CSV)."""
    video = video_factory("a.mp4", n=48, seed=1)
    record = {**fine.score(video).to_dict(), "status": "ok"}
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(json.dumps({"video": video, "model": "fine@1", "status": "error", "error": "x", "message": "m"})
                     + "\n" + json.dumps(record) + "\n")
    with ResultFile(jsonl) as f:
        assert f.scored("fine@1") == {video}
    assert [r["status"] for r in read(jsonl)] == ["ok"]

    out = tmp_path / "r.csv"
    with ResultFile(out) as f:
        f.write(record)
    with open(tmp_path / "r.clips.csv", "a", newline="") as fh:  # a half-written timeline of a later video
        csv.writer(fh).writerow(["/gone.mp4", "fine@1", "0", "0.0", "1.0", "50.0"])
    with ResultFile(out):
        pass
    assert {c["video"] for c in read(tmp_path / "r.clips.csv")} == {video}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_line_cut_short_by_a_crash_does_not_swallow_the_next_record(tmp_path, fine, video_factory, suffix):
    video = video_factory("a.mp4", n=48, seed=1)
    record = {**fine.score(video).to_dict(), "status": "ok"}
    out = tmp_path / f"r{suffix}"
    with ResultFile(out) as f:
        f.write({**record, "video": "/first.mp4"})
    appended = out.with_name(out.name + ".partial.jsonl") if suffix == ".parquet" else out
    with open(appended, "a") as fh:
        fh.write('{"video": "/half' if suffix != ".csv" else '/half.mp4,fine@1,o')
    with ResultFile(out) as f:
        f.write(record)
    assert [r["video"] for r in read(out)] == ["/first.mp4", video]


def test_an_older_csv_with_json_cells_is_converted(tmp_path, fine, video_factory):
    video = video_factory("a.mp4", n=48, seed=1)
    record = {**fine.score(video).to_dict(), "status": "ok"}
    old_columns = ["video", "model", "status", "score", "scaled_score", "grade", "duration_s", "width", "height",
                   "fps", "description", "padded", "clips", "dimensions", "distortions", "warnings", "error",
                   "message", "elapsed_s"]
    out = tmp_path / "old.csv"
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({**record, **{c: json.dumps(record[c]) for c in ("clips", "dimensions", "distortions",
                                                                          "warnings")}})
    with ResultFile(out) as f:
        assert f.scored("fine@1") == {video}
    (row,) = read(out)
    assert list(row) == list(COLUMNS) and float(row["blur_score"]) == record["dimensions"]["blur"]["score"]
    assert len(read(tmp_path / "old.clips.csv")) == len(record["clips"])


def test_batch_rows_have_the_flat_columns_of_score_out(tmp_path, video_factory):
    model_file = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    run_batch([video_factory("a.mp4", n=48, seed=1)], tmp_path / "b.parquet", BatchSettings(model=model_file))
    table = pq.read_table(tmp_path / "b.parquet")
    assert table.column_names == [*COLUMNS, "clips", "result"]


# -- models ------------------------------------------------------------------------------------
def test_sizes_read_in_kb_and_mb():
    assert [format_size(b) for b in (512, 43872, 710056, 5257148, 12_345_678)] == \
        ["512 B", "44 KB", "710 KB", "5.3 MB", "12 MB"]


def test_a_stored_claim_to_be_the_default_is_left_out():
    assert own_summary("offline default; six dimensions; AUC 0.93") == "six dimensions; AUC 0.93"
    assert own_summary("the default model", "boosted trees on statistics") == "boosted trees on statistics"
    assert own_summary("", "a description") == "a description"


def test_models_lists_each_models_own_summary_and_marks_only_the_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.count("(default)") == 1 and "offline default" not in out
    assert "0.0 MB" not in out and "…" not in out
    for m in list_models():
        assert format_size(m.size_bytes) in out
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sum(m["default"] for m in listed) == 1
    assert all("default" not in m["summary"].lower() for m in listed)
    assert all(m["size"] == format_size(m["size_bytes"]) for m in listed)


# -- messages ----------------------------------------------------------------------------------
def test_a_message_names_its_file_once():
    assert name_once("/v/a.mp4", "/v/a.mp4: not a video") == "/v/a.mp4: not a video"
    assert name_once("/v/a.mp4", "not_a_video: /v/a.mp4: not a video") == "/v/a.mp4: not_a_video: not a video"
    assert name_once("/v/a.mp4", "cannot open /v/a.mp4 (busy)") == "cannot open /v/a.mp4 (busy)"
    assert name_once("/v/a.mp4", "no features in the cache") == "/v/a.mp4: no features in the cache"


def test_skipped_and_failed_notes_name_the_file_once(capsys, tmp_path, video_factory):
    model_file = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    main(["score", str(bad), video_factory("a.mp4", n=48, seed=1), "--model", model_file, "--no-progress",
          "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    note = next(line for line in err.splitlines() if "skipped" in line)
    assert note.count(str(bad)) == 1



def test_a_datasets_training_line_names_it_once(tmp_path):
    """`vqscope train` logged "konvid1k: konvid1k: 1 found, ..." where the config's name is the dataset's."""
    from types import SimpleNamespace

    from vqscope.experiment.config import DatasetEntry
    from vqscope.experiment.runner import run_training

    root = tmp_path / "KoNViD_1k"
    (root / "KoNViD_1k_metadata").mkdir(parents=True)
    (root / "KoNViD_1k_metadata" / "KoNViD_1k_attributes.csv").write_text(
        ",flickr_id,file_name,MOS,SD,n\n1,3240926995,3240926995_original_centercrop_960x540_8s.mp4,4.6,0.5,50\n")
    (root / "KoNViD_1k_videos").mkdir()
    (root / "KoNViD_1k_videos" / "3240926995.mp4").write_bytes(b"")
    lines = []

    class Seen(Exception):
        pass

    def log(text):
        lines.append(text)
        raise Seen  # the first line is all this test needs: no training

    config = SimpleNamespace(datasets=(DatasetEntry(name="konvid1k", spec=f"konvid1k:{root}"),))
    with pytest.raises(Seen):
        run_training(config, log=log)
    assert lines == ["konvid1k: 1 found, 0 missing, MOS scale 1-5, no official splits"]


def test_a_batch_folder_with_parts_of_the_older_layout_reads_as_one_table_after_a_run(tmp_path, video_factory):
    import pyarrow as pa

    model_file = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    old_video, new_video = video_factory("a.mp4", n=48, seed=1), video_factory("b.mp4", n=30, seed=2)
    record = {**tiny_model().score(old_video).to_dict(), "status": "ok"}
    old_columns = ["video", "model", "status", "score", "scaled_score", "grade", "duration_s", "width", "height",
                   "fps", "description", "padded", "clips", "dimensions", "distortions", "warnings", "error",
                   "message", "elapsed_s", "result"]
    row = {c: record.get(c) for c in old_columns}
    row.update({c: json.dumps(record[c]) for c in ("clips", "dimensions", "distortions", "warnings")},
               score=record["score"] + 0.001234, result=json.dumps(record))
    folder = tmp_path / "fleet.parquet"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([row]), folder / "part-00000000000000000001-000001.parquet")

    report = run_batch([old_video, new_video], folder, BatchSettings(model=model_file))
    assert (report.scored, report.already) == (1, 1)
    table = pq.read_table(folder)
    assert table.column_names == [*COLUMNS, "clips", "result"] and table.num_rows == 2
    old = next(r for r in table.to_pylist() if r["video"] == old_video)
    assert old["score"] == record["score"] and len(old["clips"]) == len(record["clips"])
