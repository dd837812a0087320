"""`vqscope batch`: video lists, the resumable Parquet parts folder, and Ray Data on a local Ray.

Most checks run the in-process engine (the same decode and score steps without Ray); one
module-scoped local Ray (2 CPUs) serves the few Ray runs, which are what cost time here.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vqscope.cli import main
from vqscope.distributed import (
    RESULT_COLUMNS,
    BatchSettings,
    GPURunner,
    ResultParts,
    read_results,
    read_video_list,
    run_batch,
)
from vqscope.errors import EXIT_SOME_FAILED, ConfigError, OutputError
from vqscope.model import Model
from test_model import tiny_model

ROUNDED = 0.0051  # scores are written to 2 decimals (vqscope.output's rounding rule)

# Ray Data's own DataContext touches its deprecated settings; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    return str(tiny_model().save(tmp_path_factory.mktemp("models") / "tiny-1.safetensors"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, video_factory):
    """Three small videos of different lengths and one file that is not a video."""
    d = tmp_path_factory.mktemp("fleet")
    for name, n, seed in (("a.mp4", 48, 1), ("b.mp4", 30, 2), ("c.mp4", 72, 3)):
        shutil.copy(video_factory(name, n=n, seed=seed), d / name)
    (d / "broken.mp4").write_text("not a video")
    return d


@pytest.fixture(scope="module")
def reference(videos, tiny_model_file):
    """What `vqscope score` gives for the good videos (full-precision scores; rows hold them to
    2 decimals, as `score --out` does: within ROUNDED of these)."""
    model = Model.load(tiny_model_file)
    return {str(videos / n): model.score(videos / n).score for n in ("a.mp4", "b.mp4", "c.mp4")}


@pytest.fixture(scope="module")
def http_root(videos):
    """The video folder over HTTP on localhost (never the internet)."""
    handler = functools.partial(_QuietHandler, directory=str(videos))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False)
    yield ray
    ray.shutdown()


# -- lists ------------------------------------------------------------------------------------
def test_lists_in_text_csv_and_parquet(tmp_path):
    (tmp_path / "list.txt").write_text("# fleet\na.mp4\n\n  sub/b.mp4 \nhttps://example.org/v.mp4\na.mp4\n/abs/c.mp4\n")
    expected = [str(tmp_path / "a.mp4"), str(tmp_path / "sub" / "b.mp4"), "https://example.org/v.mp4", "/abs/c.mp4"]
    assert read_video_list(tmp_path / "list.txt") == expected

    (tmp_path / "named.csv").write_text("id,URL,mos\n1,a.mp4,3.2\n2,sub/b.mp4,4\n3,https://example.org/v.mp4,1\n")
    assert read_video_list(tmp_path / "named.csv") == expected[:3]
    (tmp_path / "first.csv").write_text("file,mos\n/abs/c.mp4,3\n")
    assert read_video_list(tmp_path / "first.csv") == ["/abs/c.mp4"]

    pq.write_table(pa.table({"mos": [1.0, 2.0], "video": ["a.mp4", "/abs/c.mp4"]}), tmp_path / "list.parquet")
    assert read_video_list(tmp_path / "list.parquet") == [expected[0], "/abs/c.mp4"]


@pytest.mark.parametrize("name, content, match", [
    ("missing.txt", None, "not found"),
    ("list.xlsx", "x", "unknown list format"),
    ("empty.txt", "# nothing\n\n", "names no video"),
    ("empty.csv", "", "empty list"),
    ("bad.parquet", "not parquet", "not a readable Parquet"),
    ("numbers.parquet", pa.table({"n": [1, 2]}), "does not hold paths"),
])
def test_bad_lists_are_config_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        read_video_list(path)


def test_bad_list_on_the_command_line_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["batch", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "r.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error:") and "list file not found" in err and "Traceback" not in err


# -- in-process engine: output, resume, failures --------------------------------------------
def _list(tmp_path, entries, name="list.txt"):
    path = tmp_path / name
    path.write_text("\n".join(entries) + "\n")
    return path


def test_in_process_batch_matches_score_and_records_failures(capsys, tmp_path, videos, tiny_model_file, reference):
    listing = _list(tmp_path, [str(videos / n) for n in ("a.mp4", "b.mp4", "c.mp4", "broken.mp4", "gone.mp4")])
    out = tmp_path / "results.parquet"
    code = main(["batch", str(listing), "--out", str(out), "--model", tiny_model_file, "--no-progress"])
    assert code == EXIT_SOME_FAILED
    assert "3 scored, 2 failed, 0 already" in capsys.readouterr().err

    table = pq.read_table(out)  # the folder reads as one table
    assert tuple(table.column_names) == RESULT_COLUMNS
    rows = {r["video"]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows == 5
    for video, score in reference.items():
        row = rows[video]
        assert row["status"] == "ok" and row["model"] == "tiny@1" and row["error"] is None
        assert row["score"] == pytest.approx(score, abs=ROUNDED)
        full = json.loads(row["result"])
        assert full["video"] == video and full["score"] == row["score"] == round(row["score"], 2)
        assert full["scaled_score"] == row["scaled_score"] == round(row["scaled_score"], 2)
        assert row["grade"] == full["grade"] and row["width"] == 128 and row["height"] == 72
        # the timeline nested, as in `score --out results.parquet`
        assert [c["score"] for c in row["clips"]] == [c["score"] for c in full["clips"]] and len(row["clips"]) >= 1
        assert [c["clip_index"] for c in row["clips"]] == list(range(len(full["clips"])))
    assert rows[str(videos / "broken.mp4")]["error"] == "not_a_video"
    assert rows[str(videos / "gone.mp4")]["error"] == "not_found"
    assert rows[str(videos / "gone.mp4")]["status"] == "error" and rows[str(videos / "gone.mp4")]["score"] is None

    # A second run scores nothing new: it only tries the two failures again.
    report = run_batch(read_video_list(listing), out, BatchSettings(model=tiny_model_file))
    assert (report.scored, report.failed, report.already) == (0, 2, 3)
    assert len(read_results(out)) == 5 and pq.read_table(out).num_rows == 5  # superseded rows compacted away


def test_a_killed_run_keeps_its_parts_and_the_next_run_completes_it(tmp_path, videos, tiny_model_file, reference):
    listing = read_video_list(_list(tmp_path, list(reference)))
    out = tmp_path / "results.parquet"
    settings = BatchSettings(model=tiny_model_file, part_rows=1, batch_size=1)
    seen = []

    def die_after_first(record):
        seen.append(record["video"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(listing, out, settings, on_record=die_after_first)
    first = read_results(out)
    assert [r["video"] for r in first] == seen and first[0]["status"] == "ok"

    report = run_batch(listing, out, settings)
    assert (report.scored, report.already) == (2, 1)
    rows = {r["video"]: r for r in read_results(out)}
    assert set(rows) == set(reference)
    assert all(rows[v]["score"] == pytest.approx(s, abs=ROUNDED) for v, s in reference.items())


def test_a_fixed_failure_replaces_its_error_row(tmp_path, videos, tiny_model_file):
    late = tmp_path / "late.mp4"
    listing = [str(late)]
    out = tmp_path / "r.parquet"
    assert run_batch(listing, out, BatchSettings(model=tiny_model_file)).failed == 1
    shutil.copy(videos / "a.mp4", late)
    assert run_batch(listing, out, BatchSettings(model=tiny_model_file)).scored == 1
    (row,) = pq.read_table(out).to_pylist()
    assert row["status"] == "ok"


def test_output_that_is_a_file_is_refused(capsys, tmp_path, videos, tiny_model_file):
    listing = _list(tmp_path, [str(videos / "a.mp4")])
    (tmp_path / "r.parquet").write_text("a results file of `vqscope score`")
    assert main(["batch", str(listing), "--out", str(tmp_path / "r.parquet"), "--model", tiny_model_file]) == 24
    assert "folder of Parquet parts" in capsys.readouterr().err
    with pytest.raises(OutputError):
        ResultParts(tmp_path / "r.parquet")


def test_bad_settings_are_config_errors(capsys, tmp_path, videos):
    listing = _list(tmp_path, [str(videos / "a.mp4")])
    for flag in (["--batch-size", "0"], ["--actors", "0"], ["--max-clips", "0"], ["--ray-cpus", "0"]):
        assert main(["batch", str(listing), "--out", str(tmp_path / "r.parquet"), *flag]) == 2
    assert capsys.readouterr().err.count("vqscope: error:") == 4


def test_without_ray_installed_the_error_says_how_to_install(capsys, monkeypatch, tmp_path, videos, tiny_model_file):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    listing = _list(tmp_path, [str(videos / "a.mp4")])
    code = main(["batch", str(listing), "--out", str(tmp_path / "r.parquet"), "--model", tiny_model_file, "--ray"])
    err = capsys.readouterr().err
    assert code == 25 and "pip install" in err and "vqscope[ray]" in err


def test_importing_vqscope_does_not_import_ray():
    code = "import sys, vqscope, vqscope.cli, vqscope.distributed; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_gpu_runner_moves_inputs_and_features_between_devices():
    import torch

    class Doubler(torch.nn.Module):
        def features(self, x):
            return x * 2

    x = torch.ones(2, 3)
    assert torch.equal(GPURunner(Doubler(), "cpu").features(x), x * 2)


# -- Ray --------------------------------------------------------------------------------------
def test_ray_batch_matches_score_resumes_and_fetches_urls(capsys, local_ray, tmp_path, videos, tiny_model_file,
                                                          reference, http_root):
    url = f"{http_root}/c.mp4"
    missing_url = f"{http_root}/nothing-here.mp4"
    entries = [str(videos / "a.mp4"), str(videos / "b.mp4"), str(videos / "broken.mp4"), url, missing_url]
    listing = tmp_path / "fleet.csv"
    listing.write_text("video,note\n" + "".join(f"{e},x\n" for e in entries))
    out = tmp_path / "ray.parquet"
    args = ["batch", str(listing), "--out", str(out), "--model", tiny_model_file, "--ray", "--batch-size", "2",
            "--no-progress"]
    assert main(args) == EXIT_SOME_FAILED
    assert "3 scored, 2 failed, 0 already" in capsys.readouterr().err

    rows = {r["video"]: r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == set(entries)
    for name in ("a.mp4", "b.mp4"):
        assert rows[str(videos / name)]["score"] == pytest.approx(reference[str(videos / name)], abs=ROUNDED)
    assert rows[url]["status"] == "ok"
    assert rows[url]["score"] == pytest.approx(reference[str(videos / "c.mp4")], abs=ROUNDED)
    assert rows[str(videos / "broken.mp4")]["error"] == "not_a_video"
    assert rows[missing_url]["error"] == "download_failed" and "404" in rows[missing_url]["message"]

    # Resume on Ray: nothing new is scored, only the failures are tried again.
    report = run_batch(read_video_list(listing), out, BatchSettings(model=tiny_model_file), ray_address="local")
    assert (report.scored, report.failed, report.already, report.engine) == (0, 2, 3, "ray")
    assert pq.read_table(out).num_rows == 5


def test_the_cluster_side_driver_of_ray_client_sessions_streams_records(local_ray, videos, tiny_model_file,
                                                                        reference):
    """`ray://` sessions run the pipeline in a ClusterDriver actor; exercised here on the local Ray."""
    from pathlib import Path

    from vqscope.distributed import DecodeSpec, _model_identity, _through_cluster_driver

    settings = BatchSettings(model=tiny_model_file)
    model_id, features = _model_identity(Path(tiny_model_file))
    todo = [str(videos / "a.mp4"), str(videos / "broken.mp4")]
    job = (todo, [local_ray.put(Path(tiny_model_file).read_bytes())], model_id, DecodeSpec.of(features, settings),
           settings, 1, False)
    records = {r["video"]: r for r in _through_cluster_driver(local_ray, job)}
    assert records[todo[0]]["score"] == pytest.approx(reference[todo[0]], abs=ROUNDED)
    assert records[todo[1]]["error"] == "not_a_video"
