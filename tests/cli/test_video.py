"""`impasto stylize` on video files (PyAV): round trips keep frames, timing, size and audio; bad
files fail in one line and leave nothing behind; frames get the same treatment as images."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from impasto.core.model import StyleModel, default_model_path
from impasto.core.request import OutputControls
from impasto.serving import video
from impasto.serving.stylize import main

pytest.importorskip("av")

from benchmarks.video import pan_frames, write_clip  # noqa: E402  (needs PyAV)

FPS = 12


def frames_of(path, limit=None):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        out = []
        for frame in container.decode(stream):
            out.append((frame.pts, frame.to_ndarray(format="rgb24").astype(np.float32)))
            if limit and len(out) == limit:
                break
        return out


def audio_packets(path):
    import av

    with av.open(str(path)) as container:
        return [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.dts is not None]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    write_clip(d / "clip.mp4", pan_frames(1.0, 33, 21, FPS), FPS)  # 12 frames, odd size, AAC tone
    write_clip(d / "long.mkv", pan_frames(2.0, 32, 20, FPS), FPS, audio_rate=None)
    gif = [Image.fromarray(f) for f in pan_frames(0.6, 35, 23, 10)]
    gif[0].save(d / "anim.gif", save_all=True, append_images=gif[1:], duration=100, loop=0)
    gif[0].save(d / "still.gif")
    Image.fromarray(next(iter(pan_frames(0.1, 40, 30, 10)))).save(d / "photo.png")
    return d


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_round_trip_keeps_frames_timing_size_and_audio(clips, tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes((clips / "clip.mp4").read_bytes())
    # As a user runs it, with the default output name next to the input.
    result = subprocess.run([sys.executable, "-m", "impasto.core.cli", "stylize", str(source), "-s", "wave"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_wave.mp4"
    before, after = video.probe(source), video.probe(out)
    assert (after.frames, after.fps, after.width, after.height) == (12, FPS, 33, 21)  # odd size kept
    assert abs(after.duration - before.duration) <= 1 / FPS
    assert after.audio == before.audio == (("aac", 44100),)
    assert audio_packets(out) == audio_packets(source)  # copied, not re-encoded
    original, stylized = frames_of(source), frames_of(out)
    assert [pts for pts, _ in stylized] == [pts for pts, _ in original]  # every timestamp kept
    assert np.abs(stylized[0][1] - original[0][1]).mean() > 10  # it was stylised
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_wave.mp4"]  # no temporary left


def test_frames_get_the_image_pipeline_blend_strength_color_size(clips, tmp_path, capsys):
    """Blend, strength, colour preservation and --max-size act on frames as on a photo; a WebM
    takes no AAC, so the audio is re-encoded (and said so), at the exact odd size in VP9."""
    options = ["-s", "wave:0.5,udnie:0.5", "--strength", "0.6", "--preserve-color", "--max-size", "17"]
    assert main([str(clips / "clip.mp4"), *options, "-o", str(tmp_path / "out.webm")]) == 0
    assert "audio re-encoded aac -> libopus" in capsys.readouterr().out
    info = video.probe(tmp_path / "out.webm")
    assert (info.frames, info.width, info.height, info.audio) == (12, 17, 11, (("opus", 48000),))
    # The first frame, as a photo through the image path with the same options.
    Image.fromarray(frames_of(clips / "clip.mp4", 1)[0][1].astype(np.uint8)).save(tmp_path / "first.png")
    assert main([str(tmp_path / "first.png"), *options, "-o", str(tmp_path / "first_out.png")]) == 0
    as_photo = np.asarray(Image.open(tmp_path / "first_out.png"), dtype=np.float32)
    assert main([str(tmp_path / "first.png"), "-s", "wave", "-o", str(tmp_path / "plain.png")]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain.png").resize((17, 11)), dtype=np.float32)
    frame = frames_of(tmp_path / "out.webm", 1)[0][1]
    assert np.abs(frame - as_photo).mean() < 0.5 * np.abs(frame - plain).mean()


def test_gif_in_and_out_and_a_still_gif_stays_an_image(clips, tmp_path):
    assert main([str(clips / "anim.gif"), str(clips / "still.gif"), "-o", str(tmp_path)]) == 0
    info = video.probe(tmp_path / "anim_starry_night.mp4")
    assert (info.frames, info.fps, info.width, info.height) == (6, 10, 35, 23)
    assert abs(info.duration - 0.6) < 0.1
    assert Image.open(tmp_path / "still_starry_night.png").size == (35, 23)
    assert main([str(clips / "clip.mp4"), "-o", str(tmp_path / "out.gif")]) == 0
    info = video.probe(tmp_path / "out.gif")
    assert (info.frames, info.width, info.height, info.audio) == (12, 33, 21, ())
    assert abs(info.duration - 1.0) <= 1 / FPS


def test_corrupt_and_truncated_files_fail_in_one_line_and_leave_nothing(clips, tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "random.mp4").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = (clips / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: cannot open
    write_clip(tmp_path / "fast.mp4", pan_frames(2.0, 32, 20, FPS), FPS, audio_rate=None,
               options={"movflags": "+faststart"})  # index first: decodes up to the cut
    data = (tmp_path / "fast.mp4").read_bytes()
    (tmp_path / "fast.mp4").write_bytes(data[: len(data) // 2])
    data = (clips / "long.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])  # no error at all from the decoder
    names = ["random.mp4", "cut.mp4", "fast.mp4", "cut.mkv"]
    out = tmp_path / "out"
    assert main([str(tmp_path / n) for n in names] + ["-o", str(out)]) == 1
    errors = lines(capsys.readouterr().err)
    assert len(errors) == 4 and all("Traceback" not in e for e in errors)
    assert [e.split(": ")[1].rsplit("/", 1)[-1] for e in errors] == names
    assert "truncated" in errors[3]
    assert not out.exists() or list(out.iterdir()) == []


def test_an_interrupted_run_leaves_no_file(clips, tmp_path, monkeypatch):
    model = StyleModel(default_model_path(), device="cpu")
    calls = []
    real_run = model.run

    def run(images, weights=None):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(images, weights)

    monkeypatch.setattr(model, "run", run)
    with pytest.raises(KeyboardInterrupt):
        video.stylize_video(model, clips / "clip.mp4", model.style_weights(), OutputControls(), None,
                            tmp_path / "out.mp4", batch=5)
    assert calls == [5, 5]  # frames go through the model in batches
    assert list(tmp_path.iterdir()) == []


def test_a_rotation_flag_is_applied(tmp_path):
    """A phone's portrait clip: landscape frames flagged to show turned 90 degrees clockwise."""
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :6] = 255  # a white band on the left, at the top once turned
    clip = write_clip(tmp_path / "phone.mp4", [frame] * 3, FPS, audio_rate=None)
    data = bytearray(clip.read_bytes())
    matrix = data.index(b"tkhd") + 4 + 4 + 20 + 8 + 8  # version 0 track header: the display matrix
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    clip.write_bytes(bytes(data))
    assert main([str(clip), "--strength", "0", "-o", str(tmp_path / "out.mp4")]) == 0
    (_, out), *_ = frames_of(tmp_path / "out.mp4")
    assert out.shape == (40, 20, 3)
    assert out[:6].mean() > out[8:].mean() + 100


def test_mixed_inputs_and_output_names(clips, tmp_path, capsys):
    assert main([str(clips / "photo.png"), str(clips / "clip.mp4"), "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_starry_night.mp4", "photo_starry_night.png"]
    assert main([str(clips / "clip.mp4"), "-o", str(tmp_path / "x.png")]) == 2
    assert main([str(clips / "clip.mp4"), "-o", str(tmp_path / "x.avi")]) == 2
    errors = lines(capsys.readouterr().err)
    assert len(errors) == 2 and all("unknown video output extension" in e for e in errors)


def test_without_pyav_a_video_says_what_to_install(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(video, "available", lambda: False)
    assert main([str(clips / "photo.png"), str(clips / "clip.mp4"), "-o", str(tmp_path)]) == 2
    (error,) = lines(capsys.readouterr().err)
    assert "pip install 'impasto[video]'" in error
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_mid_video_leaves_no_partial_file_and_exits_130(clips, tmp_path, capsys, monkeypatch):
    run, calls = StyleModel.run, []

    def interrupted_on_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # 1: the photo, 2: the video's first batch
            raise KeyboardInterrupt
        return run(self, *args, **kwargs)

    monkeypatch.setattr(StyleModel, "run", interrupted_on_the_second_batch)
    assert main([str(clips / "photo.png"), str(clips / "long.mkv"), "-o", str(tmp_path)]) == 130
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "interrupted" in err[0] and "long.mkv not written" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo_starry_night.png"]  # complete, no temporary
