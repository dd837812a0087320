"""Dataset adapters: each official label format written small, videos as a few dummy bytes."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vqscope.data.datasets import (
    ADAPTERS,
    Dataset,
    DatasetSpec,
    VideoItem,
    list_adapters,
    load_dataset,
)
from vqscope.errors import ConfigError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def by_key(dataset: Dataset) -> dict[str, VideoItem]:
    return {item.key: item for item in (*dataset.items, *dataset.missing)}


# --- KoNViD-1k ----------------------------------------------------------------------------
@pytest.fixture
def konvid(tmp_path):
    root = tmp_path / "KoNViD_1k"
    write_csv(
        root / "KoNViD_1k_metadata" / "KoNViD_1k_attributes.csv",
        ["", "flickr_id", "file_name", "MOS", "SD", "n"],
        [
            [1, 3240926995, "3240926995_original_centercrop_960x540_8s.mp4", 4.64, 0.5, 50],
            [2, 2999049224, "2999049224_original_centercrop_960x540_8s.mp4", 3.1, 0.7, 51],
            [3, 5318356753, "5318356753_original_centercrop_960x540_8s.mp4", 1.22, 0.4, 49],
        ],
    )
    touch(root / "KoNViD_1k_videos" / "3240926995.mp4")
    touch(root / "KoNViD_1k_videos" / "2999049224_original_centercrop_960x540_8s.mp4")  # old naming
    return root


def test_konvid_attributes(konvid):
    ds = load_dataset(f"konvid1k:{konvid}")
    assert ds.name == "konvid1k" and ds.scale == (1.0, 5.0)
    assert [i.key for i in ds.items] == ["3240926995", "2999049224"]
    assert ds.items[0].mos == pytest.approx(4.64)
    assert ds.items[0].path == str(konvid / "KoNViD_1k_videos" / "3240926995.mp4")
    assert ds.items[1].path.endswith("2999049224_original_centercrop_960x540_8s.mp4")
    assert [i.key for i in ds.missing] == ["5318356753"]
    assert ds.missing[0].path == str(konvid / "KoNViD_1k_videos" / "5318356753.mp4")
    assert ds.splits == ()
    assert ds.summary() == "konvid1k: 2 found, 1 missing, MOS scale 1-5, no official splits"


def test_konvid_mos_csv_pointed_at_file(tmp_path):
    root = tmp_path / "kv"
    label = root / "KoNViD_1k_mos.csv"
    label.parent.mkdir(parents=True)
    label.write_text('"flickr_id","mos"\n3240926995,4.64\n2999049224,3.1\n')
    touch(root / "KoNViD_1k_videos" / "2999049224.mp4")
    ds = load_dataset(f"KoNViD-1k:{label}")  # alias spelling and the label file itself
    assert by_key(ds)["2999049224"].mos == pytest.approx(3.1)
    assert len(ds.items) == 1 and len(ds.missing) == 1


def test_konvid_missing_label_names_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="KoNViD_1k_attributes.csv") as info:
        load_dataset(f"konvid1k:{tmp_path / 'empty'}")
    assert str(tmp_path / "empty") in info.value.message and "\n" not in info.value.message


# --- LIVE-VQC -----------------------------------------------------------------------------
def write_livevqc(root: Path) -> None:
    names = ["A001.mp4", "A002.mp4", "B101.mp4"]
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = name
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "data.mat", {"video_list": cell, "mos": np.array([[80.23], [45.5], [6.22]])})


def test_livevqc_mat(tmp_path):
    root = tmp_path / "LIVE-VQC"
    write_livevqc(root)
    touch(root / "Video" / "A001.mp4")
    touch(root / "Video" / "B101.mp4")
    ds = load_dataset(f"live_vqc:{root}")
    assert ds.scale == (0.0, 100.0)
    items = by_key(ds)
    assert set(items) == {"A001", "A002", "B101"}
    assert items["A001"].mos == pytest.approx(80.23)
    assert items["B101"].path == str(root / "Video" / "B101.mp4")
    assert [i.key for i in ds.missing] == ["A002"]
    assert ds.to_unit(80.0) == pytest.approx(0.8)
    assert ds.from_unit(0.25) == pytest.approx(25.0)
    np.testing.assert_allclose(ds.to_unit([0, 50, 100]), [0.0, 0.5, 1.0])
    # pointed at data.mat itself
    assert len(load_dataset(f"livevqc:{root / 'data.mat'}").items) == 2


def test_livevqc_missing_mat(tmp_path):
    (tmp_path / "vqc").mkdir()
    with pytest.raises(ConfigError, match=r"livevqc: label file not found: .*data\.mat"):
        load_dataset(f"livevqc:{tmp_path / 'vqc'}")


def test_livevqc_wrong_variables(tmp_path):
    scipy.io.savemat(tmp_path / "data.mat", {"names": np.array([1.0])})
    with pytest.raises(ConfigError, match="video_list and mos"):
        load_dataset(f"livevqc:{tmp_path / 'data.mat'}")


# --- YouTube-UGC --------------------------------------------------------------------------
UGC_ROWS = [
    ["Animation_1080P-01b3", "Animation", "1080P", 3.8],
    ["Gaming_360P-1e4e", "Gaming", "360P", 2.1],
    ["Vlog_720P-0b9e", "Vlog", "720P", 4.5],
    ["Sports_480P-0000", "Sports", "480P", None],  # no MOS: not a labelled video
]


def ugc_videos(root: Path) -> None:
    touch(root / "original_videos" / "Animation" / "1080P" / "Animation_1080P-01b3.mkv")
    touch(root / "original_videos" / "Gaming" / "Gaming_360P-1e4e_crf_10_ss_00_t_20.0.mp4")


def test_youtubeugc_xlsx(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    root = tmp_path / "YouTube-UGC"
    root.mkdir()
    book = openpyxl.Workbook()
    book.active.title = "diff2"
    book.active.append(["vid", "MOS full"])
    sheet = book.create_sheet("MOS")
    sheet.append(["vid", "category", "resolution", "MOS full"])
    for row in UGC_ROWS:
        sheet.append(row)
    book.save(root / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx")
    ugc_videos(root)
    ds = load_dataset(f"youtube-ugc:{root}")
    assert ds.name == "youtubeugc" and ds.scale == (1.0, 5.0)
    items = by_key(ds)
    assert set(items) == {"Animation_1080P-01b3", "Gaming_360P-1e4e", "Vlog_720P-0b9e"}
    assert items["Animation_1080P-01b3"].path.endswith("Animation/1080P/Animation_1080P-01b3.mkv")
    assert items["Animation_1080P-01b3"].mos == pytest.approx(3.8)
    assert items["Gaming_360P-1e4e"].path.endswith("_crf_10_ss_00_t_20.0.mp4")
    assert [i.key for i in ds.missing] == ["Vlog_720P-0b9e"]
    assert ds.missing[0].path == str(root / "Vlog_720P-0b9e.mkv")


def test_youtubeugc_csv_export(tmp_path):
    root = tmp_path / "ugc"
    write_csv(root / "original_videos_MOS_for_YouTube_UGC_dataset.csv",
              ["vid", "category", "resolution", "MOS full"],
              [[c if c is not None else "" for c in row] for row in UGC_ROWS])
    ugc_videos(root)
    ds = load_dataset(f"youtubeugc:{root}")
    assert len(ds.items) == 2 and len(ds.missing) == 1
    assert by_key(ds)["Vlog_720P-0b9e"].mos == pytest.approx(4.5)


def test_youtubeugc_without_openpyxl(tmp_path, monkeypatch):
    root = tmp_path / "ugc"
    root.mkdir()
    xlsx = root / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx"
    xlsx.write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl now fails
    with pytest.raises(ConfigError, match="needs openpyxl") as info:
        load_dataset(f"youtubeugc:{root}")
    assert str(xlsx) in info.value.message
    # with a CSV export beside it, the CSV is used instead
    write_csv(root / "original_videos_MOS_for_YouTube_UGC_dataset.csv", ["vid", "MOS full"], [["A_360P-1", 2.0]])
    assert len(load_dataset(f"youtubeugc:{root}").missing) == 1


# --- LSVQ ---------------------------------------------------------------------------------
LSVQ_HEADER = (
    "name,p1,p2,p3,height,width,mos_p1,mos_p2,mos_p3,mos,frame_number,fn_last_frame,"
    "left_p1,right_p1,top_p1,bottom_p1,start_p1,end_p1,left_p2,right_p2,top_p2,bottom_p2,start_p2,end_p2,"
    "left_p3,right_p3,top_p3,bottom_p3,start_p3,end_p3,top_vid,left_vid,bottom_vid,right_vid,start_vid,end_vid"
)


def lsvq_row(name: str, mos: float, *tail: str) -> str:
    coords = ",".join(["0"] * 24)
    return (f'{name},"[15, 527, 421, 709, 0, 200]","[0, 1280, 0, 720, 101, 181]","[1, 2, 3, 4, 5, 6]",'
            f"720,1280,57.9,64.5,60.4,{mos},200,{name}/image_00200,{coords}" + "".join("," + t for t in tail))


@pytest.fixture
def lsvq(tmp_path):
    root = tmp_path / "LSVQ"
    root.mkdir()
    (root / "labels_train_test.csv").write_text("\n".join([
        LSVQ_HEADER + ",is_test,is_valid",
        lsvq_row("yfcc-batch1/747", 67.75, "False", "False"),
        lsvq_row("ia-batch1/video1", 40.0, "False", "False"),
        lsvq_row("yfcc-batch3/1724", 50.9, "True", "True"),
    ]) + "\n")
    (root / "labels_test_1080p.csv").write_text("\n".join([
        LSVQ_HEADER + ",is_valid",
        lsvq_row("yfcc-batch9/12345", 72.5, "True"),
    ]) + "\n")
    touch(root / "yfcc-batch1" / "747.mp4")
    touch(root / "yfcc-batch3" / "1724.mp4")
    touch(root / "yfcc-batch9" / "12345.mp4")
    return root


def test_lsvq_splits(lsvq):
    ds = load_dataset(f"lsvq:{lsvq}")
    assert ds.scale == (0.0, 100.0)
    assert ds.splits == ("train", "test", "test_1080p")
    items = by_key(ds)
    assert items["yfcc-batch1/747"].split == "train" and items["yfcc-batch1/747"].mos == pytest.approx(67.75)
    assert items["yfcc-batch3/1724"].split == "test"
    assert items["yfcc-batch3/1724"].path == str(lsvq / "yfcc-batch3" / "1724.mp4")
    assert items["yfcc-batch9/12345"].split == "test_1080p"
    assert [i.key for i in ds.missing] == ["ia-batch1/video1"]
    assert ds.summary() == ("lsvq: 3 found, 1 missing, MOS scale 0-100, "
                            "splits: train 1 (+1 missing), test 1, test_1080p 1")
    test = load_dataset(f"lsvq:{lsvq}@test_1080p")
    assert [i.key for i in test.items] == ["yfcc-batch9/12345"] and test.missing == []
    train = ds.split("train")
    assert len(train.items) == 1 and len(train.missing) == 1
    with pytest.raises(ConfigError, match=r"no split 'val' \(splits: train, test, test_1080p\)"):
        ds.split("val")


def test_lsvq_label_file_and_missing_1080p(lsvq):
    only = load_dataset(f"lsvq:{lsvq / 'labels_train_test.csv'}")
    assert only.splits == ("train", "test")
    (lsvq / "labels_test_1080p.csv").unlink()
    with pytest.raises(ConfigError, match="labels_test_1080p.csv, which does not exist"):
        load_dataset(f"lsvq:{lsvq}@test_1080p")
    assert load_dataset(f"lsvq:{lsvq}@test").items[0].key == "yfcc-batch3/1724"


# --- FineVD -------------------------------------------------------------------------------
FINEVD_HEADER = ["video_name", "color", "noise", "artifact", "blur", "temporal", "overall"]


@pytest.fixture
def finevd(tmp_path):
    root = tmp_path / "FineVD"
    write_csv(root / "FineVD" / "MOS_train.csv", FINEVD_HEADER, [
        ["1_05_05_1727504395.mp4", 3.1, 2.5, 3.0, 2.8, 3.9, 3.2],
        ["1_06_01_1719442192.mp4", 4.0, 4.1, 4.2, 4.3, 4.4, 4.25],
    ])
    write_csv(root / "FineVD" / "MOS_val.csv", FINEVD_HEADER, [
        ["1_06_01_1720288197.mp4", 1.5, 1.2, 2.0, 1.8, 2.2, 1.7],
    ])
    touch(root / "videos_all" / "videos_all_videos" / "1_05_05_1727504395.mp4")
    touch(root / "videos_all" / "videos_all_videos" / "1_06_01_1720288197.mp4")
    return root


def test_finevd_official_layout(finevd):
    ds = load_dataset(f"finevd:{finevd}")
    assert ds.scale == (1.0, 5.0)
    assert ds.splits == ("train", "val")
    item = by_key(ds)["1_05_05_1727504395"]
    assert item.mos == pytest.approx(3.2) and item.split == "train"
    assert dict(item.dimensions) == pytest.approx(
        {"color": 3.1, "noise": 2.5, "artifact": 3.0, "blur": 2.8, "temporal": 3.9, "overall": 3.2})
    assert item.path == str(finevd / "videos_all" / "videos_all_videos" / "1_05_05_1727504395.mp4")
    assert [i.key for i in ds.missing] == ["1_06_01_1719442192"]
    val = load_dataset(f"finevd:{finevd}@val")
    assert [i.key for i in val.items] == ["1_06_01_1720288197"]
    # pointed at one label file: its split comes from the file name
    one = load_dataset(f"finevd:{finevd / 'FineVD' / 'MOS_val.csv'}")
    assert one.splits == ("val",) and len(one.items) == 1


def test_finevd_json_and_scale(tmp_path):
    root = tmp_path / "fv"
    touch(root / "videos" / "a.mp4")
    records = {"train": [{"video": "a.mp4", "overall": 72.0, "blur": 60.0}],
               "test": [{"video": "b.mp4", "overall": 30.5, "color": 40.0}]}
    (root / "labels.json").write_text(json.dumps(records))
    ds = load_dataset(f"finevd:{root / 'labels.json'}")
    assert ds.scale == (0.0, 100.0)  # inferred: labels exceed 5
    assert ds.splits == ("train", "test")
    assert by_key(ds)["a"].dimensions == {"overall": 72.0, "blur": 60.0}
    assert [i.key for i in ds.missing] == ["b"]
    with pytest.raises(ConfigError, match="outside the given scale 1-5"):
        load_dataset(f"finevd:{root / 'labels.json'}?scale=1,5")


def test_finevd_missing_labels(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ConfigError, match="finevd: label file not found: .*MOS_train.csv"):
        load_dataset(f"finevd:{tmp_path / 'nothing'}")


# --- generic CSV --------------------------------------------------------------------------
def test_csv_generic(tmp_path):
    elsewhere = touch(tmp_path / "elsewhere" / "abs.mp4")
    touch(tmp_path / "data" / "clips" / "a.mp4")
    label = write_csv(tmp_path / "data" / "labels.csv", ["path", "mos", "split", "blur", "overall"], [
        ["clips/a.mp4", 4.5, "train", 4.0, ""],
        [str(elsewhere), 2.0, "test", "", 2.0],
        ["clips/gone.mp4", 1.0, "", "", ""],
    ])
    ds = load_dataset(f"csv:{label}")
    assert ds.scale == (1.0, 5.0)  # inferred: all within 1..5
    items = by_key(ds)
    assert items["clips/a.mp4"].path == str(tmp_path / "data" / "clips" / "a.mp4")
    assert items["clips/a.mp4"].dimensions == {"blur": 4.0} and items["clips/a.mp4"].split == "train"
    assert items[str(elsewhere)].path == str(elsewhere)
    assert items["clips/gone.mp4"].split is None
    assert [i.key for i in ds.missing] == ["clips/gone.mp4"]
    assert ds.splits == ("train", "test")
    explicit = load_dataset(f"csv:{label}?scale=0,10")
    assert explicit.scale == (0.0, 10.0) and explicit.to_unit(5) == pytest.approx(0.5)


def test_csv_scale_inference_and_errors(tmp_path):
    hundred = write_csv(tmp_path / "h.csv", ["path", "mos"], [["a.mp4", 3.0], ["b.mp4", 88.0]])
    assert load_dataset(f"csv:{hundred}").scale == (0.0, 100.0)
    odd = write_csv(tmp_path / "odd.csv", ["path", "mos"], [["a.mp4", -3.0], ["b.mp4", 120.0]])
    with pytest.raises(ConfigError, match=r"\?scale="):
        load_dataset(f"csv:{odd}")
    assert load_dataset(f"csv:{odd}?scale=-10,150").scale == (-10.0, 150.0)
    bad = write_csv(tmp_path / "bad.csv", ["path", "score"], [["a.mp4", 3.0]])
    with pytest.raises(ConfigError, match=r"no column 'mos' \(columns: path, score\)"):
        load_dataset(f"csv:{bad}")
    text = write_csv(tmp_path / "text.csv", ["path", "mos"], [["a.mp4", "good"]])
    with pytest.raises(ConfigError, match=r"line 2: mos 'good' is not a number"):
        load_dataset(f"csv:{text}")
    with pytest.raises(ConfigError, match="is a folder"):
        load_dataset(f"csv:{tmp_path}")
    with pytest.raises(ConfigError, match="csv has no official splits, so there is no split 'test'"):
        load_dataset(f"csv:{hundred}@test")


# --- specs and registry -------------------------------------------------------------------
def test_spec_parsing():
    spec = DatasetSpec.parse("lsvq:/data/LSVQ@test_1080p")
    assert (spec.adapter, spec.path, spec.split, dict(spec.options)) == ("lsvq", "/data/LSVQ", "test_1080p", {})
    spec = DatasetSpec.parse("CSV:/x/labels.csv@train?scale=1,5&videos=/v")
    assert (spec.adapter, spec.path, spec.split) == ("csv", "/x/labels.csv", "train")
    assert dict(spec.options) == {"scale": "1,5", "videos": "/v"}
    assert str(spec) == "csv:/x/labels.csv@train?scale=1,5&videos=/v"
    assert DatasetSpec.parse("csv:/home/me@host/labels.csv").split is None  # '@' inside the path
    assert DatasetSpec.parse("YouTube_UGC:/d").adapter == "youtubeugc"
    for bad, message in [
        ("/data/LSVQ", "not of the form ADAPTER:PATH"),
        ("lsvq:", "not of the form"),
        ("csv:/x.csv?scale=5", "not LOW,HIGH"),
        ("csv:/x.csv?scale=5,1", "LOW < HIGH"),
        ("csv:/x.csv?colour=red", r"unknown option 'colour' \(options: scale, videos\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            DatasetSpec.parse(bad)


def test_registry_and_unknown_adapter(tmp_path):
    assert list_adapters() == ["csv", "finevd", "konvid1k", "livevqc", "lsvq", "youtubeugc"]
    assert ADAPTERS["lsvq"].splits == ("train", "test", "test_1080p")
    assert ADAPTERS["konvid1k"].scale == (1.0, 5.0) and ADAPTERS["csv"].scale is None
    with pytest.raises(ConfigError) as info:
        load_dataset("konvid:/data")
    assert info.value.message == ("unknown dataset adapter 'konvid' "
                                  "(choices: csv, finevd, konvid1k, livevqc, lsvq, youtubeugc)")
    missing = tmp_path / "no_such_dir"
    with pytest.raises(ConfigError) as info:
        load_dataset(f"lsvq:{missing}")
    assert info.value.message == f"lsvq: dataset path not found: {missing}"
    assert info.value.exit_code == 2 and info.value.path == str(missing)


def test_videos_option(konvid, tmp_path):
    other = tmp_path / "mirror"
    touch(other / "5318356753.mp4")
    ds = load_dataset(f"konvid1k:{konvid}?videos={other}")
    assert [i.key for i in ds.items] == ["5318356753"]
    with pytest.raises(ConfigError, match="videos folder not found"):
        load_dataset(f"konvid1k:{konvid}?videos={tmp_path / 'nope'}")
