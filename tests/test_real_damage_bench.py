"""bench/real_damage.py runs end to end on a tiny clip (run as a command, never imported).

Skipped where FFmpeg is absent: the bench renders with FFmpeg's own encoders and filters,
and CI installs FFmpeg for no test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "real_damage.py"

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="bench/real_damage.py renders with FFmpeg, which is not installed here",
)


def test_real_damage_bench_on_a_tiny_clip(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(media / "ugc_tiny.mp4")], check=True)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--work-dir", str(tmp_path / "work"), "--media", str(media), "--no-held-out",
         "--ladders", "gblur,duplicated", "--levels", "1,5", "--seconds", "1.5", "--no-baselines", "--jobs", "1",
         "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### Ladders" in proc.stdout
    summary = json.loads(out.read_text())
    assert [r["ladder"] for r in summary["ladders"]] == ["gblur", "duplicated"]
    by = {(r["ladder"], r["level"]): r for r in summary["records"]}
    assert set(by) == {("", 0), ("gblur", 1), ("gblur", 5), ("duplicated", 1), ("duplicated", 5)}
    assert by[("", 0)]["fr"] == 100.0
    # The full-reference measure falls with the damage: the sanity check of the bench itself.
    assert by[("gblur", 5)]["fr"] < by[("gblur", 1)]["fr"] < 100.0
    assert by[("duplicated", 5)]["fr"] < by[("duplicated", 1)]["fr"] <= 100.0
    assert set(by[("gblur", 5)]["distortions"]) >= {"defocus_blur", "stutter"}
