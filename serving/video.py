"""Stylise video files: decode (PyAV) -> batches of frames through the model -> encode.

Frames go through :class:`~impasto.core.model.StyleModel` a batch at a time and through the same
:class:`~impasto.core.request.OutputControls` as images (strength, colour preservation), so a
video frame comes out as the same frame saved as a photo would. Each output frame keeps its
input frame's timestamp and duration, so frame count, frame rate and duration are kept. Audio
packets are copied unchanged when the output container takes their codec, else re-encoded
(:data:`AUDIO_FALLBACK`); GIF holds no audio. The output is written atomically
(:func:`~impasto.core.outputs.atomic_path`): an interrupted run leaves no file at the target.

PyAV is the optional ``video`` extra; it is imported only when a video is actually processed.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import ProgressColumn
from rich.text import Text

from impasto.core.errors import ImpastoError
from impasto.core.imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, from_array, resize_longer, to_array, to_rgb
from impasto.core.model import StyleModel
from impasto.core.outputs import atomic_path
from impasto.core.request import OutputControls

# Frames per model run. Batching saves onnxruntime's per-call overhead and keeps a GPU busy; on a
# CPU the convolutions dominate and a batch gains little (benchmarks.video: within noise at
# 640x360 on 2 cores), while memory (activations grow linearly with N) and the steps of the
# progress bar grow with it. 4 is a small batch that is still a batch.
DEFAULT_BATCH = 4
# Suffixes read as video (any container FFmpeg demuxes works; these decide what is a video).
# An animated GIF is a video too, a still one an image (see :func:`is_video`).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts",
                            ".mts", ".flv", ".wmv", ".ogv", ".3gp"})
DEFAULT_SUFFIX = ".mp4"
# Output suffix -> (FFmpeg muxer, video encoder, encoder options).
# H.264 at CRF 18 is visually near-lossless; VP9 in constant-quality mode (b=0) with the faster
# "good" settings, row multithreading on.
OUTPUTS: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "fast"}),
    ".m4v": ("mp4", "libx264", {"crf": "18", "preset": "fast"}),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "fast"}),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "fast"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
    ".gif": ("gif", "gif", {}),
}
# Audio encoder for a container that does not take the input's audio codec.
AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
# A frame's display rotation (degrees counterclockwise) -> the transpose that shows it upright.
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
INSTALL_HINT = "pip install 'impasto[video]'"


class VideoError(ImpastoError):
    """A video could not be read or written, or PyAV is missing."""


class RateColumn(ProgressColumn):
    """A rich progress column: items per second of the tasks that set a ``unit`` field (frames)."""

    def render(self, task: Any) -> Text:
        unit = task.fields.get("unit")
        speed = task.finished_speed or task.speed
        return Text("" if unit is None or speed is None else f"{speed:.1f} {unit}", style="progress.data.speed")


def available() -> bool:
    return importlib.util.find_spec("av") is not None


def is_video(path: str | Path, output: str | None = None) -> bool:
    """A file to stylise as a video: a video suffix, or an animated GIF (unless ``output`` names an
    image file, which gets the first frame as before)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix != ".gif" or (output is not None and Path(output).suffix.lower() in IMAGE_SUFFIXES - {".gif"}):
        return False
    try:
        with Image.open(path) as img:
            return bool(getattr(img, "is_animated", False))
    except Exception:  # unreadable: the image path reports it in one line
        return False


def check_output(path: str | Path) -> str:
    """The muxer for an output path, or a one-line :class:`VideoError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUTS:
        raise VideoError(f"{path}: unknown video output extension (use {', '.join(OUTPUTS)})")
    return OUTPUTS[suffix][0]


def _av() -> Any:
    if not available():
        raise VideoError(f"video input needs PyAV: {INSTALL_HINT}")
    import av

    return av


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote: frames, seconds of stylising, notes for the user."""
    target: Path
    frames: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def stylize_video(model: StyleModel, source: Path, weights: np.ndarray, controls: OutputControls,
                  max_size: int | None, target: Path, *, batch: int = DEFAULT_BATCH,
                  progress: Any = None) -> VideoResult:
    """Stylise the video ``source`` into ``target`` (atomically). ``progress``: a rich Progress to
    add a frames task to. Every failure is a one-line :class:`VideoError` (or OSError on write)."""
    av = _av()
    if batch < 1:
        raise VideoError(f"batch must be at least 1, got {batch}")
    fmt = check_output(target)
    try:
        reader = av.open(str(source), "r")
    except av.FFmpegError as err:
        raise VideoError(f"{source}: not a readable video ({_reason(err)})") from None
    with reader, atomic_path(target) as temp:
        if not reader.streams.video:
            raise VideoError(f"{source}: no video stream")
        job = _Job(av, model, weights, controls, max_size, batch, source, reader, fmt)
        task = None if progress is None else progress.add_task(source.name, total=job.expected_frames(), unit="fps")
        try:
            # Reading errors are VideoErrors by now (see _Job._read); what FFmpeg raises here is
            # the output's: opening, encoding, muxing, writing the trailer.
            with av.open(str(temp), "w", format=fmt) as writer:
                job.run(writer, lambda n: progress.advance(task, n) if task is not None else None)
        except av.FFmpegError as err:
            raise VideoError(f"{target}: cannot write the video ({_reason(err)})") from None
        finally:
            if task is not None:
                progress.remove_task(task)
    return VideoResult(target, job.frames, job.seconds, job.notes)


def _reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return str(text).replace("\n", " ")


class _Job:
    """One video's decode -> batch stylise -> encode, with its audio streams copied along."""

    def __init__(self, av: Any, model: StyleModel, weights: np.ndarray, controls: OutputControls,
                 max_size: int | None, batch: int, source: Path, reader: Any, fmt: str):
        self.av, self.model, self.controls, self.max_size, self.batch = av, model, controls, max_size, batch
        self.source, self.reader, self.fmt = source, reader, fmt
        # Decoded with PyAV's default slice threads: frame threading ("AUTO") hides the error of a
        # truncated last packet, and decoding costs little next to stylising.
        self.video = reader.streams.video[0]
        self.audio = list(reader.streams.audio)
        self.run_weights, self.mode = controls.network_weights(model, weights)
        self.frames, self.seconds = 0, 0.0
        self.notes: list[str] = []
        self.end = 0.0  # seconds from the stream's start to the end of the last decoded frame
        self.out_video: Any = None
        self.out_audio: dict[int, tuple[Any, bool]] = {}  # input index -> (output stream, copied)
        self.pending: list[Any] = []  # audio packets demuxed before the output streams exist
        self.next_pts, self.step = 0, 1

    def expected_frames(self) -> int | None:
        if self.video.frames:
            return int(self.video.frames)
        rate = self.video.average_rate or self.video.guessed_rate
        if self.video.duration and self.video.time_base and rate:
            return max(1, round(float(self.video.duration * self.video.time_base * rate)))
        if self.reader.duration and rate:  # in microseconds
            return max(1, round(self.reader.duration / 1e6 * float(rate)))
        return None

    def run(self, writer: Any, advance: Callable[[int], None]) -> None:
        import time

        self.writer, self.advance = writer, advance
        started = time.perf_counter()
        queued: list[Any] = []
        # The demuxer ends each stream with an empty packet, which flushes its decoder.
        for packet in self._read(self.reader.demux, self.video, *self.audio):
            if packet.stream.index != self.video.index:
                self._audio_packet(packet)
                continue
            for frame in self._read(self.video.decode, packet):
                queued.append(frame)
                if len(queued) == self.batch:
                    self._stylize(queued)
                    queued = []
        if queued:
            self._stylize(queued)
        if self.out_video is None:
            raise VideoError(f"{self.source}: no video frames could be decoded")
        self._check_complete()
        self._finish()
        self.seconds = time.perf_counter() - started

    def _check_complete(self) -> None:
        """Refuse a file whose frames stop well before the duration its header declares.

        Some containers (Matroska, WebM, MP4 with the index first) decode a cut-off file without
        any error, up to where the data ends; the tolerance leaves room for rounding and for
        streams whose declared duration counts a little more than their frames.
        """
        declared = _declared_seconds(self.video)
        rate = float(self.video.average_rate or self.video.guessed_rate or 25)
        if declared and declared - self.end > max(0.5, 3 / rate):
            raise VideoError(f"{self.source}: corrupt or truncated video (its frames end at {self.end:.2f} s "
                             f"of the {declared:.2f} s it declares)")

    def _read(self, read: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """``read(*args)``'s items; demuxing and decoding errors as one-line :class:`VideoError`."""
        try:
            yield from read(*args)
        except self.av.FFmpegError as err:
            raise VideoError(f"{self.source}: corrupt or truncated video ({_reason(err)})") from None

    # -- video --------------------------------------------------------------------------------
    def _rgb(self, frame: Any) -> Image.Image:
        """A decoded frame as RGB, transparency composited on white as for images."""
        if frame.width * frame.height > DEFAULT_MAX_PIXELS:
            raise VideoError(f"{self.source}: {frame.width}x{frame.height} frames are over the limit of "
                             f"{DEFAULT_MAX_PIXELS} pixels")
        # Palettes may hold transparency; 2 or 4 components are grey or colour plus alpha.
        if frame.format.has_palette or len(frame.format.components) in (2, 4):
            img = to_rgb(Image.fromarray(frame.to_ndarray(format="rgba"), "RGBA"))
        else:
            img = frame.to_image()
        # A rotation flag (phones filming upright) is applied, as EXIF orientation is for photos:
        # the output carries no flag, so it shows as the input did.
        turn = TURNS.get(round(frame.rotation or 0) % 360)
        return img if turn is None else img.transpose(turn)

    def _stylize(self, frames: list[Any]) -> None:
        originals = [to_array(resize_longer(self._rgb(frame), self.max_size)) for frame in frames]
        height, width = originals[0].shape[1:]
        if self.out_video is None:
            self._open_outputs(width, height)
        stylized: list[np.ndarray] = []
        # Frames of one batch share a size; a stream that changes size mid-way runs them apart.
        for group in _same_size_runs(originals):
            weights = None if self.run_weights is None else np.tile(self.run_weights, (len(group), 1))
            stylized += list(self.model.run(np.stack(group), weights))
        for frame, result, original in zip(frames, stylized, originals):
            out = self._frame(from_array(self.controls.finish(result, original, self.mode)))
            # The input frame's timing; a frame without a timestamp (raw streams) follows the last.
            out.time_base = self.out_video.codec_context.time_base
            out.pts = frame.pts if frame.pts is not None else self.next_pts
            out.duration = frame.duration or self.step
            self.next_pts = out.pts + out.duration
            self.end = max(self.end, float((self.next_pts - (self.video.start_time or 0)) * out.time_base))
            self._encode(self.out_video, out)
        self.frames += len(frames)
        self.advance(len(frames))

    def _frame(self, img: Image.Image) -> Any:
        if self.fmt != "gif":
            return self.av.VideoFrame.from_image(img)
        # FFmpeg's RGB -> 8-bit conversion is a fixed 3-3-2 palette; an adaptive palette per
        # frame (Pillow's median cut, dithered) looks like the frame.
        quantized = img.quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
        palette = np.zeros((256, 4), np.uint8)
        colours = np.frombuffer(bytes(quantized.getpalette() or []), np.uint8).reshape(-1, 3)[:256]
        palette[: len(colours), 1:] = colours
        palette[:, 0] = 255  # ARGB, opaque
        return self.av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")

    def _open_outputs(self, width: int, height: int) -> None:
        """Create the output streams (sized by the first stylised frame) and send pending audio."""
        muxer, codec, options = next(v for v in OUTPUTS.values() if v[0] == self.fmt)
        rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        stream = self.writer.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = _pixel_format(codec, width, height)
        # The input's time base, so every frame keeps its exact timestamp (variable rates too).
        stream.time_base = stream.codec_context.time_base = self.video.time_base or Fraction(1, rate)
        self.step = max(1, round(1 / (rate * stream.codec_context.time_base)))  # one frame, in time-base units
        stream.options = dict(options)
        self.out_video = stream
        for audio in self.audio:
            self._add_audio(audio, muxer)
        for packet in self.pending:
            self._audio_packet(packet)
        self.pending = []

    # -- audio --------------------------------------------------------------------------------
    def _add_audio(self, audio: Any, muxer: str) -> None:
        name = audio.codec_context.name
        if muxer not in AUDIO_FALLBACK:
            self.notes.append(f"audio ({name}) dropped: {muxer} holds no audio")
            return
        if name in self.writer.supported_codecs:
            self.out_audio[audio.index] = (self.writer.add_stream_from_template(audio), True)
            return
        fallback = AUDIO_FALLBACK[muxer]
        encoder = self.av.codec.Codec(fallback, "w")
        rates = encoder.audio_rates or ()
        rate = audio.rate if not rates or audio.rate in rates else max(rates)
        stream = self.writer.add_stream(fallback, rate=rate, layout=audio.layout.name)
        self.out_audio[audio.index] = (stream, False)
        self.notes.append(f"audio re-encoded {name} -> {stream.codec_context.name}"
                          + (f" at {rate} Hz (was {audio.rate})" if rate != audio.rate else "")
                          + f": {muxer} does not take {name}")

    def _audio_packet(self, packet: Any) -> None:
        if self.out_video is None:
            self.pending.append(packet)
            return
        if packet.stream.index not in self.out_audio:
            return
        stream, copied = self.out_audio[packet.stream.index]
        if copied:
            if packet.dts is not None:  # the demuxer's empty flush packet has none
                packet.stream = stream
                self.writer.mux(packet)
            return
        for frame in self._read(packet.decode):
            frame.pts = None  # the encoder counts samples itself
            self._encode(stream, frame)

    def _finish(self) -> None:
        """Flush the encoders (the decoders were flushed by the demuxer's final empty packets)."""
        for stream in [self.out_video, *(s for s, copied in self.out_audio.values() if not copied)]:
            self._encode(stream, None)

    def _encode(self, stream: Any, frame: Any) -> None:
        """Encode ``frame`` on ``stream`` (None flushes the encoder) and mux what comes out."""
        for packet in stream.encode(frame):
            self.writer.mux(packet)


def _declared_seconds(stream: Any) -> float | None:
    """The duration a video stream's header declares (Matroska keeps it in a DURATION tag)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    try:
        hours, minutes, seconds = str(tag).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _same_size_runs(arrays: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
    run: list[np.ndarray] = []
    for array in arrays:
        if run and array.shape != run[0].shape:
            yield run
            run = []
        run.append(array)
    if run:
        yield run


def _pixel_format(codec: str, width: int, height: int) -> str:
    """4:2:0 where the size allows; H.264 subsamples chroma in 2x2 blocks and cannot code an odd
    width or height in 4:2:0, so an odd-sized video is coded 4:4:4 at its exact size (fewer players
    decode that profile, but the size is never changed). VP9 codes odd sizes in 4:2:0."""
    if codec == "gif":
        return "pal8"
    if codec == "libx264" and (width % 2 or height % 2):
        return "yuv444p"
    return "yuv420p"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, for checking a round trip (decodes every frame to count them)."""
    frames: int
    fps: float
    duration: float  # seconds, from the first frame's start to the last frame's end
    width: int
    height: int
    audio: tuple[tuple[str, int], ...]  # (codec, sample rate) of each audio stream


def probe(path: str | Path) -> VideoInfo:
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            audio = tuple((a.codec_context.name, int(a.rate)) for a in container.streams.audio)
            first = last = None
            frames = 0
            for frame in container.decode(stream):
                if first is None:
                    first, width, height = frame, frame.width, frame.height
                last, frames = frame, frames + 1
            rate = float(stream.average_rate or stream.guessed_rate or 0)
    except (av.FFmpegError, IndexError) as err:
        raise VideoError(f"{path}: not a readable video ({_reason(err)})") from None
    if first is None or last is None:
        raise VideoError(f"{path}: no video frames")
    step = float(last.duration * last.time_base) if last.duration else (1 / rate if rate else 0.0)
    duration = float((last.pts - first.pts) * last.time_base) + step
    return VideoInfo(frames, rate, duration, width, height, audio)
