"""`vqscope serve` start-up errors: one line, a documented exit code, and nothing started.

Exit codes (errors.py): 2 usage (a port out of range), 29 storage (the data folder or the
database file is unusable), 31 cannot listen (the port is in use). All on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from service_support import TOKEN, free_port, start_server, stop_server, tiny_model_file
from vqscope.cli import main
from vqscope.errors import ConfigError, DataFolderError, ListenError
from vqscope.service.leftovers import GRACE_S


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vqscope: error: "), err
    return err


def serve(data, *extra: str) -> int:
    return main(["serve", "--data-dir", str(data), "--token", TOKEN, "--log-level", "warning", *extra])


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_a_usage_error_before_anything_starts(tmp_path, capsys, port):
    assert serve(tmp_path / "data", "--port", port) == ConfigError.exit_code == 2
    assert f"--port must be a number from 0 to 65535 (0: any free port), not {port}" in one_line(capsys)
    assert not (tmp_path / "data").exists()  # checked before the data folder is made


def test_a_port_in_use_is_its_own_one_line_error_and_touches_nothing(tmp_path, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert serve(tmp_path / "data", "--port", str(port), "--model", "nosuch-model") == ListenError.exit_code == 31
    err = one_line(capsys)
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in err
    assert not (tmp_path / "data" / "vqscope.db").exists()  # bound before the model or database were opened


def test_an_unusable_data_folder_is_a_storage_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert serve(blocker / "data", "--port", str(free_port())) == DataFolderError.exit_code == 29
    assert f"data folder {blocker / 'data'} is not usable: Not a directory" in one_line(capsys)
    if os.geteuid() != 0:  # root writes anywhere: the read-only case needs an ordinary user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert serve(locked, "--port", str(free_port())) == 29
        assert f"data folder {locked} is not usable: Permission denied" in one_line(capsys)


def test_a_bad_database_stops_serve_and_frees_the_port(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "vqscope.db").write_bytes(b"")
    port = free_port()
    assert serve(data, "--port", str(port), "--model", tiny_model_file(tmp_path)) == 29
    assert f"{data / 'vqscope.db'}: the database file is empty (0 bytes)" in one_line(capsys)
    with socket.create_server(("127.0.0.1", port)):  # the socket it had bound was closed
        pass


def test_serve_removes_leftovers_at_start_and_stops_cleanly(tmp_path):
    data = tmp_path / "data"
    uploads = data / "uploads"
    uploads.mkdir(parents=True)
    old, young = uploads / f"{'a' * 32}.mp4.part", uploads / f"{'b' * 32}.mp4.part"
    for path in (old, young):
        path.write_bytes(b"half an upload")
    past = time.time() - 2 * GRACE_S
    os.utime(old, (past, past))
    proc, _ = start_server(data, tiny_model_file(tmp_path), free_port())
    try:
        assert not old.exists() and young.exists()  # the young one may be another process's upload
    finally:
        stop_server(proc, signal.SIGTERM)
    output = proc.stdout.read().decode(errors="replace")
    # uvicorn re-raises SIGTERM once it has shut down gracefully, so the exit is by that signal
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in output, output
    assert "removed 1 leftover file(s) of killed uploads" in output
