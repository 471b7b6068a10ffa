"""Training-step options that make a step cheaper without changing what it computes:
several styles per photo (one content pass per photo), channels-last tensors, and the data options
of the bundled preset (crops of larger photos, a validation slice)."""
import pytest
import torch
from PIL import Image

from impasto.training.data import ContentDataModule, crop_transform
from impasto.training.train import build_system
from tests.conftest import compose_train_config
from tests.training.test_loss_options import SMALL

THREE_STYLES = ('styles=[{name: ihc, images: ["skimage:immunohistochemistry"]},'
                ' {name: hubble, images: ["skimage:hubble_deep_field"]}, {name: identity, identity: true}]')
CIN = [*SMALL, "network.norm=conditional_instance", THREE_STYLES, "loss.identity_weight=2.0"]


def system_for(tmp_path, *overrides):
    system = build_system(compose_train_config(tmp_path, [*CIN, *overrides]))
    system.setup("fit")
    return system


@pytest.mark.parametrize("identity_loss", ["perceptual", "pixel"])
def test_styles_per_photo_shares_the_content_pass_and_changes_nothing_else(tmp_path, identity_loss):
    shared = system_for(tmp_path, "styles_per_photo=2", f"loss.identity_loss={identity_loss}")
    single = system_for(tmp_path, f"loss.identity_loss={identity_loss}")
    single.network.load_state_dict(shared.network.state_dict())
    photos = torch.rand(3, 3, 32, 32)
    for step in (0, 1):  # step 0: no identity sample among the 6; step 1: two of them
        got = shared.training_losses(photos, step)
        # The same samples spelled out: each photo twice, with the styles the shared step gave them.
        images = photos.repeat_interleave(2, 0)
        weights = shared.style_weights_for(6, step)
        assert all(weights[i].argmax() != weights[i + 1].argmax() for i in range(0, 6, 2))  # two styles per photo
        expected = single._losses(images, weights)
        assert set(got) == set(expected)
        for term in expected:
            torch.testing.assert_close(got[term], expected[term], rtol=1e-5, atol=1e-6)


def test_channels_last_computes_the_same_step(tmp_path):
    nchw = system_for(tmp_path)
    nhwc = system_for(tmp_path, "channels_last=true")
    nhwc.network.load_state_dict(nchw.network.state_dict())
    convs = [m.weight for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4
             and m.weight.shape[-1] > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    photos = torch.rand(2, 3, 32, 32)
    a, b = nchw.training_losses(photos, 3), nhwc.training_losses(photos, 3)
    for term in a:
        torch.testing.assert_close(b[term], a[term], rtol=1e-4, atol=1e-6)
    b["total"].backward()
    assert all(p.grad is not None for p in nhwc.network.parameters() if p.requires_grad)


def test_more_styles_per_photo_than_styles_is_refused(tmp_path):
    with pytest.raises(ValueError, match="styles_per_photo=4"):
        system_for(tmp_path, "styles_per_photo=4")
    with pytest.raises(ValueError, match="styles_per_photo must be"):
        build_system(compose_train_config(tmp_path, [*CIN, "styles_per_photo=0"]))


def test_resize_size_crops_from_the_larger_photo():
    photo = Image.new("RGB", (300, 200))
    photo.paste((255, 0, 0), (0, 0, 100, 200))  # left third red, the rest black
    # Shorter side to 128 first (192x128): the central 64x64 crop spans x 64..128, all black.
    larger = crop_transform(64, train=False, resize_size=128)(photo)
    assert larger.shape == (3, 64, 64) and larger[0, :, 2:].max() < 0.05  # (the resize blurs the edge)
    # Shorter side to the crop size (96x64): the crop spans x 16..80, its first 16 columns red.
    default = crop_transform(64, train=False)(photo)
    assert default.shape == (3, 64, 64) and default[0, :, :12].min() > 0.9
    assert crop_transform(64, train=True, resize_size=128)(photo).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="resize_size"):
        ContentDataModule(image_size=64, resize_size=32)


def test_val_range_keeps_a_slice_of_the_validation_photos():
    names = ["skimage:astronaut", "skimage:coffee", "skimage:rocket", "skimage:chelsea"]
    data = ContentDataModule(skimage_photos=["camera"], val_images=names, val_range=[1, 3], image_size=32, val_size=32)
    data.setup("fit")
    assert data.val_set.refs == names[1:3]
    for bad in ([3, 3], [-1, 2], [1], [0, "2"]):
        with pytest.raises(ValueError, match="val_range"):
            ContentDataModule(skimage_photos=["camera"], val_images=names, val_range=bad)
    past = ContentDataModule(skimage_photos=["camera"], val_images=names, val_range=[4, 8])
    with pytest.raises(ValueError, match="past the 4 validation photos"):
        past.setup("fit")


def test_stability_term_is_added_to_the_step_when_weighted(tmp_path):
    plain = system_for(tmp_path)
    stable = system_for(tmp_path, "stability.weight=50.0")
    stable.network.load_state_dict(plain.network.state_dict())
    photos = torch.rand(2, 3, 32, 32)
    torch.manual_seed(0)
    a = plain.training_losses(photos, 1)
    torch.manual_seed(0)
    b = stable.training_losses(photos, 1)
    assert "stability" not in a and b["stability"] > 0
    for term in a:
        torch.testing.assert_close(b[term], a[term] + (b["stability"] if term == "total" else 0))
    b["total"].backward()
    assert all(p.grad is not None for p in stable.network.parameters() if p.requires_grad)


def test_stability_preset_composes(tmp_path):
    cfg = compose_train_config(tmp_path, ["experiment=bundled_stable"])
    assert cfg.stability.weight > 0 and cfg.styles_per_photo == 2 and cfg.init_from == "bundled"
