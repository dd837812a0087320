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


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The bench on one 2-second test pattern, levels 1 and 5, no baselines; its JSON summary."""
    media = tmp_path / "media"
    media.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(media / "ugc_tiny.mp4")], check=True)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--work-dir", str(tmp_path / "work"), "--media", str(media),
         "--no-held-out", "--levels", "1,5", "--seconds", "1.5", "--no-baselines", "--jobs", "1", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_real_damage_bench_on_a_tiny_clip(tmp_path):
    proc, summary = run_bench(tmp_path, "--ladders", "gblur,duplicated")
    assert "### Ladders" in proc.stdout
    assert [r["ladder"] for r in summary["ladders"]] == ["gblur", "duplicated"]
    by = {(r["ladder"], r["level"]): r for r in summary["records"]}
    assert set(by) == {("", 0), ("gblur", 1), ("gblur", 5), ("duplicated", 1), ("duplicated", 5), ("reencode", 1)}
    # The no-damage control is measured and reported, outside the ladders.
    assert summary["reencoded"]["files"] == 1 and by[("reencode", 1)]["fr"] > by[("gblur", 1)]["fr"]
    assert by[("", 0)]["fr"] == 100.0
    # The full-reference measure falls with the damage: the sanity check of the bench itself.
    assert by[("gblur", 5)]["fr"] < by[("gblur", 1)]["fr"] < 100.0
    assert by[("duplicated", 5)]["fr"] < by[("duplicated", 1)]["fr"] <= 100.0
    assert set(by[("gblur", 5)]["distortions"]) >= {"defocus_blur", "stutter"}
    # The score's two halves are recorded and average back to it.
    r = by[("gblur", 5)]
    assert r["score"] == pytest.approx((r["composition"] + r["regression"]) / 2, abs=1e-6)
    # Steps between levels are counted once each: untouched to 1 and 1 to 5 on both ladders, where
    # the FR measure falls at every step (checked above).
    assert sum(row["steps"] for row in summary["steps"]) == 4
    product = summary["halves_as_score"]["composition"]
    assert product["untouched_mean"] == pytest.approx(by[("", 0)]["composition"])


def test_generator_ladders_render_vqscope_damage_on_the_same_cut(tmp_path):
    """--generator: the same cut through vqscope's own distortion code, graded like FFmpeg's ladders."""
    _, summary = run_bench(tmp_path, "--generator", "--ladders", "gen_defocus_blur,gen_stutter")
    assert [r["ladder"] for r in summary["ladders"]] == ["gen_defocus_blur", "gen_stutter"]
    by = {(r["ladder"], r["level"]): r for r in summary["records"]}
    # Level 1 is half the generator's mildest blur (sigma 0.5), level 5 its strongest (6): the
    # full-reference measure sees the difference, and the stutter ladder holds frames.
    assert by[("gen_defocus_blur", 5)]["fr"] < by[("gen_defocus_blur", 1)]["fr"] < 100.0
    assert by[("gen_stutter", 5)]["fr"] < by[("gen_stutter", 1)]["fr"] < 100.0
    clip = tmp_path / "work" / "clips" / "ugc_tiny"
    assert (clip / "gen_stutter" / "L5.mp4").is_file() and (clip / "gen_defocus_blur" / "L1.mp4").is_file()
