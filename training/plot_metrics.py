"""Loss curves of a training run as a PNG, from the CSV log every run writes.

    python -m impasto.training.plot_metrics outputs/train/<run>/logs/metrics*.csv -o loss.png [--smooth 10]

One panel per loss term (``train/*`` solid, smoothed with a running mean over ``--smooth`` logged
points; ``val/*`` as markers), log-scaled, against the training step, then one panel per per-style
validation figure (``val/S/<style>``, ``val/C/<style>``: a line per style). Several CSVs (a resumed
run keeps the log from before the resume as ``metrics.until-<time>.csv``) are merged by step.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def read_metrics(*paths: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{column: (steps, values)}`` for every column with at least one value, sorted by step; a
    later file wins where two log the same column at the same step."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in paths:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                step = int(row["step"])
                for key, value in row.items():
                    if key not in ("step", "epoch") and value not in ("", None):
                        series[key][step] = float(value)
    return {k: (np.array(sorted(v)), np.array([v[s] for s in sorted(v)])) for k, v in series.items()}


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(np.pad(values, (window - 1, 0), mode="edge"), kernel, mode="valid")


def plot(metrics: dict[str, tuple[np.ndarray, np.ndarray]], output: Path, smooth: int = 10, title: str = ""):
    # The object-oriented API renders without pyplot's global state or a GUI backend, so plotting
    # from a notebook or another tool changes nothing in their matplotlib setup.
    from matplotlib.figure import Figure

    names = [k.split("/", 1)[1] for k in metrics if k.startswith(("train/", "val/"))]
    terms = sorted({n for n in names if "/" not in n} - {"loss"})
    # Per-style validation figures (val/S/<style>, val/C/<style>): one panel per figure, one line per
    # style, so that many styles do not mean many panels.
    grouped = sorted({k.split("/")[1] for k in metrics if k.startswith("val/") and k.count("/") >= 2})
    if not terms and not grouped:
        raise ValueError("no train/* or val/* columns in the log")
    fig = Figure(figsize=(3.2 * (len(terms) + len(grouped)), 3.0))
    axes = fig.subplots(1, len(terms) + len(grouped), squeeze=False)
    for ax, group in zip(axes[0][len(terms):], grouped):
        keys = sorted(k for k in metrics if k.startswith(f"val/{group}/"))
        for key in keys:
            ax.plot(*metrics[key], "o-", markersize=4, label=key.split("/", 2)[2])
        ax.set_title(f"{group} (validation, per style)")
        ax.set_xlabel("step")
        if np.all(np.concatenate([metrics[k][1] for k in keys]) > 0):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax, term in zip(axes[0], terms):
        if f"train/{term}" in metrics:
            steps, values = metrics[f"train/{term}"]
            ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
            ax.plot(steps, running_mean(values, smooth), color="tab:blue", label="train")
        if f"val/{term}" in metrics:
            steps, values = metrics[f"val/{term}"]
            ax.plot(steps, values, "o-", color="tab:orange", markersize=4, label="validation")
        ax.set_title(term)
        ax.set_xlabel("step")
        if np.all(np.concatenate([metrics[k][1] for k in (f"train/{term}", f"val/{term}") if k in metrics]) > 0):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if terms:
        axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impasto.training.plot_metrics", description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path, nargs="+", help="logs/metrics*.csv of a run")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default: next to the first CSV)")
    parser.add_argument("--smooth", type=int, default=10, help="running-mean window in logged points (default 10)")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.csv if not p.is_file()]
    if missing:
        print(f"plot_metrics: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        metrics = read_metrics(*args.csv)
        out = plot(metrics, args.output or args.csv[0].with_suffix(".png"), args.smooth, args.title)
    except (ValueError, KeyError) as err:
        print(f"plot_metrics: {', '.join(map(str, args.csv))}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
