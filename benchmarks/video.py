"""Video stylisation: a generated clip through ``impasto stylize``'s video path, checked and timed.

    python -m benchmarks.video [--seconds 10] [--size 640x360] [--fps 30] [--threads N]
        [--batch 4 | --batch 1,4] [--style starry_night] [--keep DIR]

The clip pans across scikit-image's photos (a moving crop of a strip of them, so neighbouring
frames differ as in real footage) with a sine tone as its AAC audio track. It is stylised with the
bundled model by :func:`impasto.serving.video.stylize_video`, the function ``impasto stylize`` calls
for videos, once per ``--batch`` value; the output's frame count, frame rate, duration, size and
audio are checked against the input's and the stylisation speed (frames per second of the whole
decode -> stylise -> encode job) is printed. Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from impasto.core.model import StyleModel, default_model_path
from impasto.core.request import OutputControls
from impasto.serving.video import VideoInfo, probe, stylize_video

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: int, *, audio_rate: int | None = 44100,
               options: dict[str, str] | None = None) -> Path:
    """Encode ``[H, W, 3]`` uint8 frames as H.264 (4:4:4 when a side is odd, so any size is exact),
    with a 440 Hz AAC tone as long as the video when ``audio_rate`` is set; any container PyAV
    writes H.264 and AAC to (``.mp4``, ``.mkv``, ``.mov``). ``options``: the muxer's."""
    import av

    with av.open(str(path), "w", options=options or {}) as container:
        video = audio = None
        count = 0
        for image in frames:
            if video is None:
                height, width = image.shape[:2]
                video = container.add_stream("libx264", rate=fps)
                video.width, video.height = width, height
                video.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
                if audio_rate:
                    audio = container.add_stream("aac", rate=audio_rate, layout="mono")
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            count += 1
        if video is None:
            raise ValueError("no frames")
        if audio is not None:
            t = np.arange(round(audio_rate * count / fps)) / audio_rate
            tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                              format="flt", layout="mono")
            tone.sample_rate = audio_rate
            for packet in [*audio.encode(tone), *audio.encode(None)]:
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def pan_frames(seconds: float, width: int, height: int, fps: int) -> Iterable[np.ndarray]:
    """A crop window panning along a strip of scikit-image photos (with a slow vertical sway)."""
    from PIL import Image

    from impasto.core.imageio import skimage_photo

    strip_height = round(height * 1.25)
    photos = [skimage_photo(name) for name in PHOTOS]
    strip = np.concatenate([np.asarray(p.resize((max(1, round(p.width * strip_height / p.height)), strip_height),
                                                Image.Resampling.LANCZOS)) for p in photos], axis=1)
    if strip.shape[1] < width:
        strip = np.tile(strip, (1, -(-width // strip.shape[1]), 1))
    count = max(1, round(seconds * fps))
    for i in range(count):
        t = i / max(1, count - 1)
        x = round(t * (strip.shape[1] - width))
        y = round((strip_height - height) * (0.5 + 0.5 * np.sin(2 * np.pi * t)))
        yield np.ascontiguousarray(strip[y:y + height, x:x + width])


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch must be N or N,N,..., got {text!r}") from None
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text!r}")
    return batches


def compare(source: VideoInfo, output: VideoInfo) -> list[tuple[str, str, str, bool]]:
    """(what, input, output, kept) rows; the duration may differ by up to one frame."""
    frame = 1 / source.fps if source.fps else 0.0
    return [
        ("frames", str(source.frames), str(output.frames), source.frames == output.frames),
        ("frame rate", f"{source.fps:g}", f"{output.fps:g}", abs(source.fps - output.fps) < 1e-6),
        ("duration (s)", f"{source.duration:.3f}", f"{output.duration:.3f}",
         abs(source.duration - output.duration) <= frame + 1e-6),
        ("size", f"{source.width}x{source.height}", f"{output.width}x{output.height}",
         (source.width, source.height) == (output.width, output.height)),
        ("audio", _audio(source), _audio(output), bool(output.audio) and output.audio == source.audio),
    ]


def _audio(info: VideoInfo) -> str:
    return ", ".join(f"{codec} {rate} Hz" for codec, rate in info.audio) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="WIDTHxHEIGHT (default 640x360)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    parser.add_argument("--batch", type=parse_batches, default=[4], help="frames per model run; N,N,... to compare")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--keep", type=Path, help="write the clip and the outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.fps < 1:
        parser.error("--seconds and --fps must be positive")
    model_path = default_model_path()
    if model_path is None:
        print("no bundled model", file=sys.stderr)
        return 2
    model = StyleModel(model_path, device="cpu", threads=args.threads)
    weights = model.style_weights(args.style)
    width, height = args.size
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        clip = write_clip(folder / "pan.mp4", pan_frames(args.seconds, width, height, args.fps), args.fps)
        source = probe(clip)
        print(f"clip: {args.seconds:g} s of {width}x{height} at {args.fps} fps with AAC audio, panning over "
              f"scikit-image photos; bundled model {model.path.name}, style {args.style}, "
              f"onnxruntime threads {args.threads or 'default'}")
        ok = True
        speeds = []
        for batch in args.batch:
            result = stylize_video(model, clip, weights, OutputControls(), None, folder / f"pan_batch{batch}.mp4",
                                   batch=batch)
            rows = compare(source, probe(result.target))
            ok &= all(kept for *_, kept in rows)
            print(f"\nbatch {batch}: {result.target.name}" + (f" ({'; '.join(result.notes)})" if result.notes else ""))
            print(f"  {'':<14}{'input':>16}{'output':>16}")
            for what, before, after, kept in rows:
                print(f"  {what:<14}{before:>16}{after:>16}  {'ok' if kept else 'MISMATCH'}")
            speeds.append((batch, result.frames / result.seconds, result.seconds))
        print("\nstylisation speed (decode + stylise + encode, whole clip):")
        for batch, fps, seconds in speeds:
            print(f"  batch {batch}: {fps:.2f} frames/s ({seconds:.1f} s for {source.frames} frames)")
    if not ok:
        print("a check failed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
