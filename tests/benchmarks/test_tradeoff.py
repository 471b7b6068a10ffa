"""``python -m benchmarks.tradeoff``: S against C per style from quality benchmark reports."""
from __future__ import annotations

from PIL import Image

from benchmarks.tradeoff import main, points

REPORT = """# Stylisation quality benchmark

## wave

| method | photos | S_vgg | C_vgg | S_eff | C_eff | s/photo |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| ours | 30 | 0.250 | 1.100 | 0.600 | 0.950 | 0.05 |
| peer | 30 | 0.480 | 1.000 | 0.800 | 1.020 | 0.40 |
| photo (no stylisation) | 30 | 0.900 | 0.000 | 1.100 | 0.000 | 0.00 |

## Summary

| method | styles | photos | S_vgg | C_vgg | S_eff | C_eff |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| ours | 1 | 30 | 0.250 | 1.100 | 0.600 | 0.950 |
"""


def test_points_per_style_and_judge(tmp_path):
    report = tmp_path / "q.md"
    report.write_text(REPORT)
    assert points([report], "vgg") == {"wave": {"ours": (1.1, 0.25), "peer": (1.0, 0.48)}}
    assert points([report], "eff")["wave"]["peer"] == (1.02, 0.8)
    other = tmp_path / "r.md"
    other.write_text(REPORT.replace("| ours |", "| later |"))
    assert set(points([report, other], "vgg")["wave"]) == {"ours", "peer", "later"}


def test_writes_a_figure_and_refuses_reports_without_tables(tmp_path, capsys):
    report = tmp_path / "q.md"
    report.write_text(REPORT)
    out = tmp_path / "fig" / "tradeoff.png"
    assert main([str(report), "-o", str(out), "--title", "t"]) == 0
    assert Image.open(out).size[0] > 100
    empty = tmp_path / "e.md"
    empty.write_text("# nothing here\n")
    assert main([str(empty), "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("benchmarks.tradeoff: no per-style tables")
    assert main([str(tmp_path / "missing.md"), "-o", str(out)]) == 2
