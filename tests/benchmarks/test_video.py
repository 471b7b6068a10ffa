"""``python -m benchmarks.video`` on a tiny clip: the checks pass and the figures are printed."""
from __future__ import annotations

import pytest

pytest.importorskip("av")

from benchmarks.video import main  # noqa: E402  (needs PyAV)


def test_tiny_clip_round_trips_with_two_batch_sizes(tmp_path, capsys):
    assert main(["--seconds", "0.5", "--size", "64x36", "--batch", "1,3", "--threads", "1",
                 "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out and out.count("  ok") == 10  # 5 checks per batch size
    assert "batch 1: " in out and "batch 3: " in out and "frames/s" in out
    assert {p.name for p in tmp_path.glob("*.mp4")} == {"pan.mp4", "pan_batch1.mp4", "pan_batch3.mp4"}


def test_bad_options_exit_2():
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "64by36"])
    assert exit_.value.code == 2
