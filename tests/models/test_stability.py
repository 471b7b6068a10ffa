"""The temporal-stability term learned from single images (impasto.models.stability)."""
import pytest
import torch
from torch import nn

from impasto.models.stability import StabilitySettings, Warp, identity_coords, random_warp, stability_loss

SETTINGS = StabilitySettings(weight=1.0, max_shift=2.0, flow_magnitude=1.5, flow_grid=4, noise_std=0.0)


def shifted(n, height, width, dx, dy):
    return Warp(identity_coords(n, height, width) + torch.tensor([dx, dy], dtype=torch.float32))


def test_zero_for_a_network_that_commutes_with_the_warp():
    # A per-pixel affine colour map commutes with bilinear resampling wherever the four neighbours
    # are inside the image (the weights sum to one), so the term is zero up to rounding.
    torch.manual_seed(0)
    colour = nn.Conv2d(3, 3, 1)
    images = torch.rand(2, 3, 40, 36)
    warp = random_warp(2, 40, 36, SETTINGS)
    with torch.no_grad():
        loss = stability_loss(colour, images, colour(images), warp)
    assert loss.item() < 1e-12


def test_positive_for_a_network_that_is_not_shift_equivariant():
    # A stride-2 stem with a nearest-neighbour head (the cause of phase flips under odd shifts).
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 3, 3, stride=2, padding=1), nn.Upsample(scale_factor=2))
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        odd = stability_loss(network, images, network(images), shifted(1, 32, 32, 1.0, 0.0))
    assert odd.item() > 1e-3


def test_noise_is_penalised_for_the_identity_network():
    images = torch.rand(2, 3, 24, 24)
    still = shifted(2, 24, 24, 0.0, 0.0)
    assert stability_loss(nn.Identity(), images, images, still, noise_std=0.0).item() == 0.0
    noisy = stability_loss(nn.Identity(), images, images, still, noise_std=0.1).item()
    assert noisy == pytest.approx(0.01, rel=0.1)  # E[n^2] = std^2


def test_integer_shift_moves_pixels_exactly_and_masks_what_came_from_outside():
    images = torch.rand(1, 3, 10, 12)
    warp = shifted(1, 10, 12, 3.0, -2.0)
    moved = warp(images)
    torch.testing.assert_close(moved[..., 2:, :9], images[..., :8, 3:])
    valid = warp.valid()[0, 0]
    assert valid[2:, :9].all() and not valid[:2].any() and not valid[:, 9:].any()


def test_random_warp_is_smooth_and_bounded():
    torch.manual_seed(1)
    warp = random_warp(3, 64, 48, SETTINGS)
    flow = warp.coords - identity_coords(3, 64, 48)
    assert flow.abs().max() <= SETTINGS.max_shift + SETTINGS.flow_magnitude * 1.2  # bicubic overshoot
    assert (flow[:, 1:] - flow[:, :-1]).abs().max() < 0.5  # neighbouring pixels move alike


@pytest.mark.parametrize("bad", [{"weight": -1.0}, {"noise_std": -0.1}, {"flow_grid": 1}])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError, match="stability"):
        StabilitySettings(**bad)
