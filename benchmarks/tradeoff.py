"""Style distance against content distance, per style, from quality benchmark reports.

    python -m benchmarks.tradeoff REPORT.md [REPORT.md ...] -o tradeoff.png [--judge vgg|eff]
        [--methods NAME ...] [--title TEXT]

Each report is a Markdown file written by ``python -m benchmarks.quality``; every method of every
style table becomes one point (C on x, S on y; lower-left is better, and the two pull against each
other), one panel per style. Methods named the same in several reports are one series.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = {"vgg": (1, 2), "eff": (3, 4)}  # (S, C) cell positions after "photos" in a style table
HEADER = "| method | photos | S_vgg | C_vgg | S_eff | C_eff | s/photo |"
UNSTYLISED = "photo (no stylisation)"


def style_tables(text: str) -> dict[str, dict[str, list[str]]]:
    """``{style: {method: cells}}`` from the report's per-style sections (``## <style>`` + table)."""
    tables: dict[str, dict[str, list[str]]] = {}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        if HEADER not in body:
            continue
        rows = [[c.strip() for c in line.split("|")[1:-1]] for line in body.splitlines() if line.startswith("| ")]
        tables[title.strip()] = {r[0]: r[1:] for r in rows[2:]}
    return tables


def points(reports: list[Path], judge: str) -> dict[str, dict[str, tuple[float, float]]]:
    """``{style: {method: (C, S)}}`` over all reports (the unstylised photo left out)."""
    s_col, c_col = COLUMNS[judge]
    found: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for report in reports:
        for style, rows in style_tables(report.read_text()).items():
            for method, cells in rows.items():
                if method != UNSTYLISED:
                    found[style][method] = (float(cells[c_col]), float(cells[s_col]))
    if not found:
        raise ValueError("no per-style tables of benchmarks.quality in the report(s)")
    return found


def plot(found: dict[str, dict[str, tuple[float, float]]], output: Path, judge: str, title: str = "",
         methods: list[str] | None = None) -> Path:
    from matplotlib.figure import Figure

    styles = sorted(found)
    names = methods or sorted({m for rows in found.values() for m in rows})
    cols = min(len(styles), 3)
    rows = -(-len(styles) // cols)
    fig = Figure(figsize=(3.8 * cols, 3.3 * rows + 0.6))
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(styles):]:
        ax.set_visible(False)
    markers = "osD^vP*Xh<>p"
    for ax, style in zip(axes, styles):
        for i, method in enumerate(names):
            if method in found[style]:
                c, s = found[style][method]
                ax.plot(c, s, markers[i % len(markers)], color=f"C{i % 10}", markersize=7, label=method)
        ax.set_title(style)
        ax.set_xlabel(f"C_{judge} (content distance)")
        ax.grid(alpha=0.3)
    for row in grid:
        row[0].set_ylabel(f"S_{judge} (style distance)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.6 / (3.3 * rows + 0.6), 1, 1))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tradeoff", description=__doc__.split("\n")[0])
    parser.add_argument("reports", type=Path, nargs="+", help="Markdown reports of benchmarks.quality")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--judge", choices=sorted(COLUMNS), default="vgg", help="which judge's S and C (default vgg)")
    parser.add_argument("--methods", nargs="+", help="only these methods, in this order (default: all)")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.reports if not p.is_file()]
    if missing:
        print(f"benchmarks.tradeoff: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        out = plot(points(args.reports, args.judge), args.output, args.judge, args.title, args.methods)
    except (ValueError, IndexError) as err:
        print(f"benchmarks.tradeoff: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
