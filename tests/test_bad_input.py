"""Every way an input can be unusable ends in one line on stderr and its own exit code."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from vqscope import errors
from vqscope.cli import main
from vqscope.data.encode import write_video
from conftest import cli_without_file_access, textured_frames


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, expected: type[errors.VQScopeError], fragment: str) -> None:
    assert code == expected.exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vqscope: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


def _faststart_mp4(path, n=96) -> bytes:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 128, 72, "yuv420p"
        for f in textured_frames(n, 72, 128):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def audio_only_file(path) -> str:
    """An AAC file with no picture stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return str(path)


def truncated_mp4(folder) -> str:
    """A faststart MP4 cut at 60%: its index promises more than the file holds."""
    data = _faststart_mp4(folder / "full-for-cut.mp4")
    (folder / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    return str(folder / "cut.mp4")


def damaged_mp4(folder) -> str:
    """A faststart MP4 with random bytes written over its packets."""
    data = bytearray(_faststart_mp4(folder / "full-for-damage.mp4"))
    rng = np.random.default_rng(0)
    for offset in range(len(data) // 5, len(data) - 200, 97):
        data[offset : offset + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    (folder / "damaged.mp4").write_bytes(bytes(data))
    return str(folder / "damaged.mp4")


def test_missing_path(capsys, tmp_path):
    code, _, err = run_cli(capsys, "probe", str(tmp_path / "nope.mp4"))
    assert_one_line_error(code, err, errors.InputNotFoundError, "no such file")


def test_directory_is_not_a_video_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "probe", str(tmp_path))
    assert_one_line_error(code, err, errors.InputIsDirectoryError, "is a directory")


def test_empty_file(capsys, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "score", str(empty))
    assert_one_line_error(code, err, errors.EmptyFileError, "empty")


def test_shared_empty_file(capsys, shared_media):
    code, _, err = run_cli(capsys, "score", str(shared_media / "empty_file.mp4"))
    assert_one_line_error(code, err, errors.EmptyFileError, "empty")


def test_text_file_is_not_a_video(capsys, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 20)
    code, _, err = run_cli(capsys, "score", str(fake))
    assert_one_line_error(code, err, errors.NotAVideoError, "not a video")


def test_still_image_is_not_a_video(capsys, tmp_path):
    from PIL import Image

    png = tmp_path / "picture.png"
    Image.fromarray(textured_frames(1, 72, 128)[0]).save(png)
    code, _, err = run_cli(capsys, "score", str(png))
    assert_one_line_error(code, err, errors.NotAVideoError, "still image")


def test_audio_only(capsys, tmp_path):
    code, _, err = run_cli(capsys, "score", audio_only_file(tmp_path / "song.m4a"))
    assert_one_line_error(code, err, errors.NoVideoStreamError, "audio only")


def test_truncated_stream(capsys, tmp_path):
    code, _, err = run_cli(capsys, "score", truncated_mp4(tmp_path))
    assert_one_line_error(code, err, errors.TruncatedVideoError, "truncated")


def test_mp4_cut_before_its_index(capsys, tmp_path):
    full = write_video(tmp_path / "full.mp4", textured_frames(48, 72, 128), 24)
    data = open(full, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the moov box is written last: it is gone
    code, _, err = run_cli(capsys, "score", str(cut))
    assert_one_line_error(code, err, errors.TruncatedVideoError, "moov")


def test_corrupt_stream(capsys, tmp_path):
    code, _, err = run_cli(capsys, "score", damaged_mp4(tmp_path))
    assert_one_line_error(code, err, errors.CorruptVideoError, "damaged")


def test_zero_duration(capsys, tmp_path):
    one = write_video(tmp_path / "one.mp4", textured_frames(1, 72, 128), 24)
    code, _, err = run_cli(capsys, "score", one)
    assert_one_line_error(code, err, errors.ZeroDurationError, "zero duration")


def test_unreadable_permissions(capsys, tmp_path, video_factory):
    path = tmp_path / "locked.mp4"
    path.write_bytes(open(video_factory("basic.mp4"), "rb").read())
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            code, _, err = run_cli(capsys, "probe", str(path))
            assert_one_line_error(code, err, errors.InputPermissionError, "permission denied")
            return
        code, err = cli_without_file_access(["probe", str(path)])  # root reads anything
        assert_one_line_error(code, err, errors.InputPermissionError, "permission denied")
    finally:
        path.chmod(0o644)


def test_exit_codes_are_distinct():
    classes = [
        errors.InputNotFoundError, errors.InputPermissionError, errors.EmptyFileError, errors.NotAVideoError,
        errors.NoVideoStreamError, errors.CorruptVideoError, errors.TruncatedVideoError, errors.ZeroDurationError,
        errors.InputIsDirectoryError, errors.ModelNotFoundError, errors.ModelFileError, errors.WeightsError,
    ]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes)
    assert all(c not in (0, 1, 2, errors.EXIT_SOME_FAILED) for c in codes)


@pytest.mark.parametrize("bad_option", [["--max-clips", "0"], ["--clip-seconds", "-1"]])
def test_bad_options_are_usage_errors(capsys, video_factory, bad_option):
    code, _, err = run_cli(capsys, "score", video_factory("basic.mp4"), *bad_option)
    assert code == 2 and err.startswith("vqscope: error:")
