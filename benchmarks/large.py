"""Large images: time and peak memory of ``impasto stylize`` at 4K and 8K, tiled against untiled,
the exactness and seams of thumbnail-statistics tiling, stroke scale, and a server under 4K load.

The seam ratio (mean luminance gradient across tile lines over the mean across the other lines of
the same phase) also depends on what the photo has along those lines, so where the image fits
untiled (``--untiled-max-pixels``) it is measured again on the image run whole with the same
statistics, and the exit status judges the quotient: the part tiling adds.

    python -m benchmarks.large [--model M.onnx] [--photo FILE] [--sizes 3840x2160,7680x4320]
        [--untiled-max-pixels 8294400] [--parity-size 1920x1080] [--seam-size 3840x2160]
        [--serve-requests 20] [--seam-figure data/figures/tiling_seams.png]
        [--stroke-figure data/figures/stroke_scale.png]

Photos are the first held-out photo of ``--content-dir`` (every ``--holdout-every``-th sorted file;
default ``../shared/data/content/imagenet-sample``), or ``--photo``, or scikit-image's astronaut,
up-scaled (bicubic) to each size. Each ``impasto stylize`` runs in a child process; its peak RSS is
the child's own (``os.wait4``). The server part starts ``impasto serve`` on loopback and sends
``--serve-requests`` requests alternating a 4K upload (``max_size`` 3840, tiled) and a 256-px one,
then reads the server's resident memory (``/proc``, VmRSS now and VmHWM peak).
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.load import BenchmarkError, _free_port, peak_rss_mib, running_server
from benchmarks.tables import text_table
from impasto.core import imageio, tiling
from impasto.core.model import StyleModel, default_model_path

SHARED_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "content" / "imagenet-sample"


def parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise BenchmarkError(f"sizes are WIDTHxHEIGHT (each at least 8), not {text!r}")
    return int(width), int(height)


def source_photo(args) -> Image.Image:
    if args.photo:
        return Image.open(args.photo).convert("RGB")
    content = Path(args.content_dir)
    if content.is_dir():
        from benchmarks.quality import held_out_photos

        photos, _ = held_out_photos(content, args.holdout_every, 1)
        return Image.open(photos[0]).convert("RGB")
    from skimage import data

    return Image.fromarray(data.astronaut())


def upscaled(photo: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(photo.resize(size, Image.Resampling.BICUBIC))


# Measures the command from a small process: a child's peak RSS (ru_maxrss) also counts the
# copy of its parent it starts as before exec, so the child must not be forked from this process.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_cli(model: Path, photo: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """``impasto stylize`` in a child process -> (seconds, the child's peak RSS in MiB)."""
    cmd = [sys.executable, "-m", "impasto.core.cli", "stylize", str(photo), "-m", str(model), "-o", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rc, maxrss = (done.stdout.split() + ["?", "?"])[:2]
    if done.returncode != 0 or rc != "0":
        raise BenchmarkError(f"impasto stylize failed ({rc}): {done.stderr.strip()[:300]}")
    return seconds, int(maxrss) / 1024.0


def seam_ratio(rgb: np.ndarray, tile: int, align: int) -> float:
    """Mean luminance gradient magnitude across tile lines over the mean across the other lines of
    the same phase of the network's ``align``-pixel grid (its stride and pixel shuffle give the
    output a texture of that period, seams or not)."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dx, dy = np.abs(np.diff(luma, axis=1)), np.abs(np.diff(luma, axis=0))

    def lines(n: int) -> tuple[np.ndarray, np.ndarray]:
        step = np.arange(n) + 1  # step i goes from pixel i to i + 1
        same_phase = step % align == 0
        return same_phase & (step % tile == 0), same_phase & (step % tile != 0)

    (on_x, off_x), (on_y, off_y) = lines(dx.shape[1]), lines(dy.shape[0])
    across = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()])
    elsewhere = np.concatenate([dx[:, off_x].ravel(), dy[off_y].ravel()])
    return float(across.mean() / elsewhere.mean())


def _panel(images: list[tuple[str, np.ndarray]], scale: int = 1) -> Image.Image:
    """Images side by side (each ``scale`` times larger, nearest), labelled above."""
    tiles = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
             for _, a in images]
    width, height = sum(t.width for t in tiles) + 8 * (len(tiles) - 1), max(t.height for t in tiles) + 18
    sheet = Image.new("RGB", (width, height), "white")
    draw, x = ImageDraw.Draw(sheet), 0
    for (label, _), t in zip(images, tiles):
        sheet.paste(t, (x, 18))
        draw.text((x + 2, 3), label, fill="black")
        x += t.width + 8
    return sheet


def _stack(rows: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + 6 * len(rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 6
    return sheet


def seams(model: StyleModel, rgb: np.ndarray, weights: np.ndarray, tile: int, figure: Path | None,
          untiled: bool = True) -> dict[str, float]:
    """Seam ratios of thumbnail-statistics and naive tiles; with ``untiled``, also of the whole image
    run at once with the same statistics, on the same lines: the ratio photo content alone gives
    there (the tiled result equals that image), and the largest difference between the two."""
    stats = tiling.thumbnail_stats(model, rgb, weights)
    thumb = tiling.stylize_tiles(model, rgb, weights, stats, tile)
    naive = tiling.stylize_tiles(model, rgb, weights, None, tile)
    align = model.tiling.align if model.tiling else 1
    ratios = {"thumbnail": seam_ratio(thumb, tile, align), "naive": seam_ratio(naive, tile, align)}
    if untiled:
        whole = imageio.to_uint8(model.run(imageio.to_array(rgb)[None], weights[None], stats)[0])
        ratios["untiled"] = seam_ratio(whole, tile, align)
        ratios["max_diff"] = float(np.abs(whole.astype(np.int16) - thumb).max())
        del whole
    if figure is not None:
        y, x, half = 2 * tile, 2 * tile, 96  # a tile corner, away from the image border
        crop = (slice(y - half, y + half), slice(x - half, x + half))
        figure.parent.mkdir(parents=True, exist_ok=True)
        _panel([("photo", rgb[crop]), ("naive tiles (own statistics)", naive[crop]),
                ("thumbnail statistics", thumb[crop])], scale=2).save(figure)
    return ratios


def parity(model: StyleModel, rgb: np.ndarray, weights: np.ndarray, tile: int) -> float:
    stats = tiling.thumbnail_stats(model, rgb, weights)
    whole = model.run(imageio.to_array(rgb)[None], weights[None], stats)[0].transpose(1, 2, 0)
    tiled = tiling.stylize_tiles(model, rgb, weights, stats, tile, out=np.empty(rgb.shape, np.float32))
    return float(np.abs(tiled - whole).max())


def stroke_figure(model: StyleModel, photo: Image.Image, weights: np.ndarray, size: tuple[int, int],
                  figure: Path) -> None:
    rgb = upscaled(photo, size)
    outs = [(f"stroke scale {k}x", tiling.stylize_image(model, rgb, weights, stroke_scale=k)) for k in (1, 2, 4)]
    small = [(label, np.asarray(Image.fromarray(a).resize((size[0] // 3, size[1] // 3), Image.Resampling.LANCZOS)))
             for label, a in outs]
    h, w = size[1] // 2, size[0] // 2
    crops = [(f"{label}, crop 1:1", a[h - 128:h + 128, w - 128:w + 128]) for label, a in outs]
    figure.parent.mkdir(parents=True, exist_ok=True)
    _stack([_panel(small), _panel(crops)]).save(figure)


def serve_load(model: Path, requests: int, photo: Image.Image, bound_mib: float,
               size: tuple[int, int]) -> dict[str, float]:
    """``requests`` alternating ``size`` (4K: tiled) and 256-px uploads to a real server, one at a time."""
    import httpx

    big, small = io.BytesIO(), io.BytesIO()
    photo.resize(size, Image.Resampling.BICUBIC).save(big, "JPEG", quality=90)
    photo.resize((256, 256), Image.Resampling.BICUBIC).save(small, "PNG")
    statuses: list[int] = []
    with tempfile.TemporaryDirectory() as directory:
        models = Path(directory)
        (models / model.name).symlink_to(model.resolve())
        os.environ.setdefault("IMPASTO_REQUEST_TIMEOUT_S", "3600")
        port = _free_port()
        options = Namespace(max_batch_size=8, max_batch_wait_ms=5.0, clients=1, threads=None)
        with running_server(models, port, True, options) as server, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            before = peak_rss_mib(server.proc.pid, "VmRSS")
            for i in range(requests):
                data, query = (big.getvalue(), f"?max_size={max(size)}") if i % 2 == 0 else (small.getvalue(), "")
                statuses.append(client.post(f"/v1/stylize{query}", files={"image": ("p", data)}).status_code)
            after = peak_rss_mib(server.proc.pid, "VmRSS")
            peak = peak_rss_mib(server.proc.pid, "VmHWM")
    return {"ok": sum(s == 200 for s in statuses), "requests": len(statuses), "before": before, "after": after,
            "peak": peak, "bound": bound_mib}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.large", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="ONNX model (default: the bundled one)")
    p.add_argument("--style", default="wave")
    p.add_argument("--photo")
    p.add_argument("--content-dir", default=str(SHARED_PHOTOS))
    p.add_argument("--holdout-every", type=int, default=10)
    p.add_argument("--sizes", default="3840x2160,7680x4320")
    p.add_argument("--untiled-max-pixels", type=int, default=3840 * 2160,
                   help="also run untiled (--tile-size 0) up to this many pixels (default 4K)")
    p.add_argument("--tile-size", type=int, default=tiling.DEFAULT_TILE_SIZE)
    p.add_argument("--parity-size", default="1920x1080")
    p.add_argument("--seam-size", default="3840x2160")
    p.add_argument("--seam-figure", type=Path)
    p.add_argument("--stroke-figure", type=Path)
    p.add_argument("--stroke-size", default="1536x1024")
    p.add_argument("--serve-requests", type=int, default=20, help="0 skips the server part")
    p.add_argument("--cli-only", action="store_true", help="only the impasto stylize runs")
    p.add_argument("--serve-size", default="3840x2160", help="the large uploads' size (default 4K)")
    p.add_argument("--rss-bound-mib", type=float, default=1024.0)
    args = p.parse_args(argv)
    try:
        return _run(args)
    except BenchmarkError as err:
        print(f"benchmarks.large: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    model_path = Path(args.model) if args.model else default_model_path()
    if model_path is None or not model_path.is_file():
        raise BenchmarkError(f"model not found: {model_path}")
    model = StyleModel(model_path, device="cpu")
    if model.tiling is None:
        raise BenchmarkError(f"{model_path} has no frozen-statistics capability; export it again with `impasto export`")
    weights = model.style_weights(args.style)
    photo = source_photo(args)
    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            path = Path(directory) / f"{size[0]}x{size[1]}.jpg"
            Image.fromarray(upscaled(photo, size)).save(path, quality=92)
            modes = [("tiled", ["--tile-size", str(args.tile_size)])]
            if size[0] * size[1] <= args.untiled_max_pixels:
                modes.append(("untiled", ["--tile-size", "0"]))
            for mode, extra in modes:
                seconds, rss = run_cli(model_path, path, Path(directory) / "out.png", ["-s", args.style, *extra])
                rows.append([f"{size[0]}x{size[1]}", mode, f"{seconds:.1f}", f"{rss:.0f}"])
    print(text_table(["size", "mode", "time s", "peak RSS MiB"], rows))
    if args.cli_only:
        return 0
    diff = parity(model, upscaled(photo, parse_size(args.parity_size)), weights, args.tile_size)
    seam_size = parse_size(args.seam_size)
    ratios = seams(model, upscaled(photo, seam_size), weights, args.tile_size, args.seam_figure,
                   untiled=seam_size[0] * seam_size[1] <= args.untiled_max_pixels)
    figures = [["max |tiled - untiled|, same statistics, " + args.parity_size, f"{diff:.2e}", "<= 1e-3",
                "yes" if diff <= 1e-3 else "NO"],
               ["seam ratio, thumbnail statistics, " + args.seam_size, f"{ratios['thumbnail']:.3f}", "<= 1.05",
                "yes" if ratios["thumbnail"] <= 1.05 else "NO"],
               ["seam ratio, naive tiles, " + args.seam_size, f"{ratios['naive']:.3f}", "", ""]]
    ok &= diff <= 1e-3
    if "untiled" in ratios:
        # The ratio on the same lines of the image run whole: what the photo's content gives there.
        # What tiling adds is the quotient; the tiled image equals the whole one (max difference).
        added = ratios["thumbnail"] / ratios["untiled"]
        figures += [["seam ratio, same lines, untiled (same statistics)", f"{ratios['untiled']:.3f}", "", ""],
                    ["max |tiled - untiled| (uint8), " + args.seam_size, f"{ratios['max_diff']:.0f}", "", ""],
                    ["seam ratio added by tiling (tiled / untiled)", f"{added:.3f}", "<= 1.05",
                     "yes" if added <= 1.05 else "NO"]]
        ok &= added <= 1.05
    else:
        ok &= ratios["thumbnail"] <= 1.05
    if args.serve_requests:
        load = serve_load(model_path, args.serve_requests, photo, args.rss_bound_mib, parse_size(args.serve_size))
        held = load["ok"] == load["requests"] and load["after"] <= load["bound"]
        ok &= held
        figures += [[f"server answers 200 ({args.serve_size} + 256 px alternating)", f"{load['ok']:.0f}/{load['requests']:.0f}",
                     "all", "yes" if load["ok"] == load["requests"] else "NO"],
                    ["server RSS before MiB", f"{load['before']:.0f}", "", ""],
                    ["server RSS after MiB", f"{load['after']:.0f}", f"<= {load['bound']:.0f}",
                     "yes" if load["after"] <= load["bound"] else "NO"],
                    ["server peak RSS MiB", f"{load['peak']:.0f}", "", ""]]
    print()
    print(text_table(["figure", "value", "bound", "held"], figures))
    if args.stroke_figure:
        stroke_figure(model, photo, weights, parse_size(args.stroke_size), args.stroke_figure)
        print(f"figure: {args.stroke_figure}")
    if args.seam_figure:
        print(f"figure: {args.seam_figure}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
