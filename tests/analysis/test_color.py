"""One colour transform for "preserve colour": the analysis (torch) side uses the base's YCbCr."""
import numpy as np
import torch

from impasto.core import postprocess
from impasto.models.analysis import color


def random_images(seed: int, shape=(3, 17, 23)):
    rng = np.random.default_rng(seed)
    return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)


def test_torch_preserve_color_equals_the_base_numpy_one():
    stylized, original = random_images(0)
    expected = postprocess.preserve_color(stylized, original)
    got = color.preserve_color(torch.from_numpy(stylized)[None], torch.from_numpy(original)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.abs(expected - stylized).mean() > 0.05  # the chroma really was replaced


def test_ycbcr_matches_the_base_and_round_trips():
    rgb, _ = random_images(1)
    ycc = color.rgb_to_ycbcr(torch.from_numpy(rgb)[None])
    np.testing.assert_allclose(ycc[0].numpy(), postprocess.rgb_to_ycbcr(rgb), atol=1e-6)
    torch.testing.assert_close(color.ycbcr_to_rgb(ycc)[0], torch.from_numpy(rgb), atol=1e-5, rtol=0)
    torch.testing.assert_close(color.luminance(torch.from_numpy(rgb)[None]), ycc[:, :1])
