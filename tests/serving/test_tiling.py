"""Seam-free tiling with thumbnail statistics, and stroke-size control (impasto.core.tiling)."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from impasto.core import imageio, tiling
from impasto.core.errors import ModelError, OptionError
from impasto.core.model import StyleModel
from tests.serving.tiling_models import export_plain, export_tiling, tiny_realtime


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiling")
    net = tiny_realtime()
    return {"tiling": StyleModel(export_tiling(net, directory / "tiling.onnx"), device="cpu"),
            "plain": StyleModel(export_plain(net, directory / "plain.onnx"), device="cpu")}


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(data.astronaut()[40:107, 150:243])  # 67 x 93: odd, not multiples of 4


def tiled_float(model, rgb, weights, stats, tile, margin):
    """The tiled result before uint8 rounding, with a given overlap, as [3, H, W]."""
    out = np.zeros((*rgb.shape[:2], 3), np.float32)
    return tiling.stylize_tiles(model, rgb, weights, stats, tile, margin=margin, out=out).transpose(2, 0, 1)


def test_the_export_declares_radius_alignment_and_statistics(models):
    contract = models["tiling"].tiling
    # 7x7 stride-2 stem (3), 3x3 stride-2 (2), four 3x3 at quarter resolution (4 x 4), depthwise
    # and head 3x3 at half resolution (2 + 2), plus one quarter-resolution step of rounding (4).
    assert (contract.radius, contract.align, contract.margin) == (29, 4, 32)
    assert contract.num_stats == 2 * (8 + 16 + 4 * 16 + 8)
    assert models["plain"].tiling is None


@pytest.mark.parametrize("tile", [8, 20, 36])
def test_tiled_equals_untiled_with_the_same_frozen_statistics(models, photo, tile):
    model = models["tiling"]
    weights = model.style_weights("wave:0.6,ink:0.4")
    stats = tiling.thumbnail_stats(model, photo, weights)
    whole = model.run(imageio.to_array(photo)[None], weights[None], stats)[0]
    tiles = tiling.plan_tiles(*photo.shape[:2], tile, model.tiling.margin, model.tiling.align)
    assert len(tiles) >= 4
    assert np.abs(tiled_float(model, photo, weights, stats, tile, model.tiling.margin) - whole).max() <= 1e-3
    out = tiling.stylize_tiles(model, photo, weights, stats, tile, batch=3)
    assert np.abs(out.astype(int) - imageio.to_uint8(whole).astype(int)).max() <= 1


def test_an_overlap_under_the_receptive_radius_shows_seams(models, photo):
    model = models["tiling"]
    weights = model.style_weights("ink")
    stats = tiling.thumbnail_stats(model, photo, weights)
    whole = model.run(imageio.to_array(photo)[None], weights[None], stats)[0]
    assert np.abs(tiled_float(model, photo, weights, stats, 20, 8) - whole).max() > 1e-2


def test_statistics_of_an_image_within_the_thumbnail_size_are_its_own(models, photo):
    """At most the thumbnail size, frozen statistics change nothing: the policy's switch is seamless."""
    model = models["tiling"]
    weights = model.style_weights("wave")
    own = model.run(imageio.to_array(photo)[None], weights[None])[0]
    frozen = model.run(imageio.to_array(photo)[None], weights[None], tiling.thumbnail_stats(model, photo, weights))[0]
    assert np.abs(own - frozen).max() <= 1e-5


def test_naive_tiles_differ_from_thumbnail_statistics(models):
    """Each tile's own statistics (naive tiling) is not what the frozen run gives."""
    model = models["tiling"]
    rgb = np.ascontiguousarray(data.astronaut()[::2, ::2])
    weights = model.style_weights("wave")
    stats = tiling.thumbnail_stats(model, rgb, weights)
    window = imageio.to_array(rgb[:64, :64])[None]
    assert np.abs(model.run(window, weights[None]) - model.run(window, weights[None], stats)).max() > 1e-2


def test_the_policy_tiles_large_images_of_capable_models_only(models):
    tiling_model, plain = models["tiling"], models["plain"]
    assert tiling.tile_size_for(tiling_model, 1024, 768) is None
    assert tiling.tile_size_for(tiling_model, 2160, 3840) == tiling.DEFAULT_TILE_SIZE
    assert tiling.tile_size_for(tiling_model, 100, 100, 40) == 40
    assert tiling.tile_size_for(tiling_model, 2160, 3840, 0) is None
    assert tiling.tile_size_for(plain, 2160, 3840) is None
    assert tiling.tile_size_for(plain, 100, 100, 40) is None


def test_an_old_plain_model_still_runs_untiled_and_with_stroke_scale(models, photo):
    plain, capable = models["plain"], models["tiling"]
    weights = plain.style_weights("wave")
    out = tiling.stylize_image(plain, photo, weights, tile_size=16)
    assert out.shape == photo.shape and out.dtype == np.uint8
    # Same network, untiled: the plain model gives what the capable one gives on its own statistics.
    assert np.abs(out.astype(int) - tiling.stylize_image(capable, photo, weights, tile_size=0).astype(int)).max() <= 1
    scaled = tiling.stylize_image(plain, photo, weights, stroke_scale=2)
    assert scaled.shape == photo.shape
    with pytest.raises(ModelError, match="cannot take frozen statistics"):
        plain.run(imageio.to_array(photo)[None], weights[None], np.zeros((1, 8), np.float32))


def test_stroke_scale_keeps_the_size_tiles_seamlessly_and_changes_the_strokes(models):
    model = models["tiling"]
    rgb = np.ascontiguousarray(data.astronaut()[::3, ::3][:150, :139])
    weights = model.style_weights("ink")
    one = tiling.stylize_image(model, rgb, weights)
    two = tiling.stylize_image(model, rgb, weights, stroke_scale=2)
    two_tiled = tiling.stylize_image(model, rgb, weights, stroke_scale=2, tile_size=24)
    assert one.shape == two.shape == rgb.shape
    assert np.abs(one.astype(int) - two.astype(int)).mean() > 2
    # The low-resolution run is small enough to run whole; the filter's tiles are exact.
    assert np.abs(two.astype(int) - two_tiled.astype(int)).max() <= 1


@pytest.mark.parametrize("value", [0.5, 9, float("nan"), float("inf")])
def test_stroke_scale_out_of_range_is_an_option_error(value):
    with pytest.raises(OptionError, match="stroke scale must be between 1 and 8"):
        tiling.check_stroke_scale(value)


def test_tile_size_below_the_minimum_is_an_option_error():
    with pytest.raises(OptionError, match="tile size must be 0"):
        tiling.check_tile_size(3)


def test_plan_covers_every_pixel_once_with_aligned_windows():
    tiles = tiling.plan_tiles(67, 93, 20, 30, 4)
    cover = np.zeros((67, 93), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        assert t.window[0] % 4 == 0 and t.window[2] % 4 == 0
        assert t.window[0] <= y0 and t.window[1] >= y1
    assert (cover == 1).all()


def test_tiling_gives_the_arena_back_after_an_image_and_results_do_not_change(models, photo, monkeypatch):
    model = models["tiling"]
    image = imageio.to_array(photo)[None]
    weights = model.style_weights(model.style_names[1])[None]
    assert np.array_equal(model.run(image, weights), model.run(image, weights, release_memory=True))
    released = []
    run = StyleModel.run

    def spy(self, *args, release_memory=False, **kwargs):
        released.append(release_memory)
        return run(self, *args, release_memory=release_memory, **kwargs)

    monkeypatch.setattr(StyleModel, "run", spy)
    tiling.stylize_image(model, photo, weights[0], tile_size=24)
    assert len(released) > 1 and released[-1] and not any(released[:-1])  # once, after the last tiles
    # A caller's session without an arena (options of its own) still runs with release_memory.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    monkeypatch.undo()
    no_arena = StyleModel(model.path, device="cpu", options=options)
    assert np.array_equal(no_arena.run(image, weights, release_memory=True), model.run(image, weights))
