"""Tables, Markdown report and figure of the flicker benchmark, from its per-clip records."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

INPUT = "input clip"
SCALE = 1e3  # warping errors are printed ×10⁻³


@dataclass
class Records:
    """Per (clip type, photo, style, method): the warping error and S/C of the last frame; the
    input clip's own error per (clip type, photo), whatever the style."""
    errors: dict = field(default_factory=dict)        # (clip, photo, style, method) -> error
    input_errors: dict = field(default_factory=dict)  # (clip, photo) -> error
    judged: dict = field(default_factory=lambda: defaultdict(list))  # method -> [(S, C)]

    def items(self, method: str, clip: str | None = None, style: str | None = None) -> list[tuple]:
        return [k for k in self.errors if k[3] == method and clip in (None, k[0]) and style in (None, k[2])]

    def mean_error(self, method: str, clip: str) -> tuple[float, float, int]:
        """Mean and standard deviation over photos × styles, and their count."""
        values = [self.errors[k] for k in self.items(method, clip)]
        if not values:
            return math.nan, math.nan, 0
        return float(np.mean(values)), float(np.std(values)), len(values)

    def mean_input(self, clip: str, photos: set | None = None) -> float:
        values = [e for (c, p), e in self.input_errors.items() if c == clip and (photos is None or p in photos)]
        return float(np.mean(values)) if values else math.nan

    def pooled_ratio(self, method: str, style: str | None = None) -> float:
        """Sum of the method's errors over every clip it ran / sum of the input's over the same clips."""
        keys = self.items(method, style=style)
        ours = sum(self.errors[k] for k in keys)
        theirs = sum(self.input_errors[k[0], k[1]] for k in keys)
        return ours / theirs if theirs > 0 else math.nan


def fmt_error(value: float, exact_zero_note: bool = False) -> str:
    if math.isnan(value):
        return "–"
    if value == 0:
        return "0 (exact)" if exact_zero_note else "0"
    return f"{value * SCALE:.3f}"


def fmt_ratio(value: float) -> str:
    return "–" if math.isnan(value) or math.isinf(value) else f"{value:.2f}"


def clip_header(methods: list[str]) -> list[str]:
    header = ["clip", "input ×1e-3"]
    for m in methods:
        header += [f"{m} ×1e-3", f"{m} / input"]
    return header


def clip_rows(records: Records, clips: list[str], methods: list[str]) -> list[list[str]]:
    """Per clip type: the input's error, each method's mean error and its ratio to the input's
    (none where the input's error is 0: a whole-pixel pan moves every pixel exactly); then the mean
    over clip types and the pooled ratio."""
    rows = []
    for clip in clips:
        inp = records.mean_input(clip)
        row = [clip, fmt_error(inp, exact_zero_note=True)]
        for m in methods:
            mean, _, n = records.mean_error(m, clip)
            photos = {k[1] for k in records.items(m, clip)}
            base = records.mean_input(clip, photos)
            row += [fmt_error(mean), fmt_ratio(mean / base) if n and base > 0 else "–"]
        rows.append(row)
    overall = ["mean over clip types", fmt_error(float(np.nanmean([records.mean_input(c) for c in clips])))]
    pooled = ["pooled ratio (Σ method / Σ input)", ""]
    for m in methods:
        means = [records.mean_error(m, c)[0] for c in clips]
        means = [x for x in means if not math.isnan(x)]
        overall += [fmt_error(float(np.mean(means)) if means else math.nan), ""]
        pooled += ["", fmt_ratio(records.pooled_ratio(m))]
    return [*rows, overall, pooled]


def style_rows(records: Records, styles: list[str], methods: list[str]) -> list[list[str]]:
    return [[s, *(fmt_ratio(records.pooled_ratio(m, style=s)) for m in methods)] for s in styles]


def judged_rows(records: Records, methods: list[str]) -> list[list[str]]:
    rows = []
    for m in [*methods, INPUT]:
        pairs = records.judged.get(m)
        if pairs:
            s, c = np.mean(pairs, axis=0)
            ratio = "" if m == INPUT else fmt_ratio(records.pooled_ratio(m))
            rows.append([m, str(len(pairs)), f"{s:.3f}", f"{c:.3f}", ratio])
    return rows


JUDGED_HEADER = ["method", "clips", "S_vgg", "C_vgg", "pooled flicker ratio"]


def plot(records: Records, clips: list[str], methods: list[str], title: str = ""):
    """Left: mean warping error per clip type (log scale; error bars: std over photos × styles),
    the input clip first. Right: each method's error / the input's, where the input's is > 0."""
    from matplotlib.figure import Figure

    series = [INPUT, *methods]
    fig = Figure(figsize=(max(9.0, 4.0 + 1.5 * len(clips)), 5.0))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(series)
    xs = np.arange(len(clips))
    for i, name in enumerate(series):
        if name == INPUT:
            values = [[e for (c, _), e in records.input_errors.items() if c == clip] for clip in clips]
        else:
            values = [[records.errors[k] for k in records.items(name, clip)] for clip in clips]
        means = np.array([np.mean(v) if v else np.nan for v in values])
        stds = np.array([np.std(v) if v else np.nan for v in values])
        shown = np.where(means > 0, means, np.nan)  # log scale: an exact 0 is written, not drawn
        left.bar(xs + (i - (len(series) - 1) / 2) * width, shown, width, yerr=stds, capsize=2,
                 color=f"C{i % 10}", label=name, error_kw={"elinewidth": 0.8})
        for x, m in zip(xs, means):
            if m == 0:
                left.annotate("0", (x + (i - (len(series) - 1) / 2) * width, 0), xycoords=("data", "axes fraction"),
                              ha="center", va="bottom", fontsize=7)
        if name != INPUT:
            inputs = np.array([records.mean_input(c) for c in clips])
            ratio = np.where(inputs > 0, means / np.where(inputs > 0, inputs, 1), np.nan)
            right.plot(xs, ratio, "o-", color=f"C{i % 10}", label=name)
    left.set_yscale("log")
    left.set_ylabel("warping error (mean squared, [0, 1] units)")
    left.set_title("warping error per clip type")
    right.set_yscale("log")
    right.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    right.set_ylabel("method / input clip")
    right.set_title("flicker added over the input's own")
    for ax in (left, right):
        ax.set_xticks(xs, clips, rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    # Below the panels: inside, it would hide the bars of the first clip type.
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=min(len(series), 5), fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
