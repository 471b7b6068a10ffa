import pytest
import torch

from impasto.core.errors import ImpastoError
from impasto.models.features import FeatureExtractor, WeightsUnavailableError, load_caffe_vgg19_state, vgg_layer_names

VGG19_RELUS = ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4",
               "relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1", "relu5_2", "relu5_3", "relu5_4"]


@pytest.fixture(scope="module")
def vgg():
    return FeatureExtractor("vgg19-caffe", ["relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1"])


def test_embedded_vgg19_loads_offline_with_documented_names(vgg):
    assert [n for n in vgg.all_layer_names if n.startswith("relu")] == VGG19_RELUS
    assert "pool5" in vgg.all_layer_names and "conv4_2" in vgg.all_layer_names
    out = vgg(torch.rand(1, 3, 64, 64))
    assert list(out) == ["relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1"]
    assert out["relu1_1"].shape == (1, 64, 64, 64) and out["relu5_1"].shape == (1, 512, 4, 4)
    assert all((v >= 0).all() for v in out.values())


def test_weights_are_the_original_caffe_vgg19():
    state = load_caffe_vgg19_state()
    assert state["0.weight"].shape == (64, 3, 3, 3) and len(state) == 32
    # The quantised file stores 256 distinct values per layer (8-bit k-means codes).
    assert state["0.weight"].unique().numel() <= 256


def test_runs_only_up_to_the_deepest_requested_layer():
    shallow = FeatureExtractor("vgg19-caffe", ["relu2_1"])
    convs = [m for m in shallow.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3  # conv1_1, conv1_2, conv2_1


def test_a_subset_of_layers_runs_only_as_deep_as_it_needs(vgg):
    image = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        full = vgg(image)
        part = vgg(image, layers=["relu2_2", "relu1_1"])
    assert list(part) == ["relu1_1", "relu2_2"]  # the extractor's order, not the request's
    for layer, value in part.items():
        assert torch.equal(value, full[layer])
    convs = [m for m in vgg._extractor(["relu2_2"]).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4  # conv1_1 ... conv2_2, not the 13 relu5_1 needs
    assert all(any(c is m for m in vgg.body.modules()) for c in convs)  # the same (frozen) weights
    assert len(vgg.state_dict()) == 26  # subsets add no state
    with pytest.raises(ValueError, match="relu3_2"):
        vgg(image, layers=["relu3_2"])


def test_frozen_eval_and_gradients_reach_the_input(vgg):
    vgg.train()  # a parent module switching modes must not change the loss network
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x)["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_caffe_preprocessing_is_bgr_0_255_minus_mean(vgg):
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red in RGB [0,1]
    y = vgg.preprocess(x)
    torch.testing.assert_close(y.flatten(), torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_unknown_layer_and_backend_errors():
    with pytest.raises(ValueError, match="relu9_9"):
        FeatureExtractor("vgg19-caffe", ["relu9_9"])
    with pytest.raises(ValueError, match="backend"):
        FeatureExtractor("alexnet", ["relu1_1"])


def test_torchvision_backend_without_weights_is_a_clear_error(tmp_path):
    # The network guard blocks the download; the error names the way out.
    with pytest.raises(WeightsUnavailableError, match="weights_path"):
        FeatureExtractor("vgg16", ["relu2_2"])
    with pytest.raises(WeightsUnavailableError, match="not found"):
        FeatureExtractor("vgg19", ["relu2_2"], weights_path=str(tmp_path / "missing.pth"))


def test_torchvision_backend_from_local_weights_file(tmp_path):
    from torchvision.models import vgg16

    path = tmp_path / "vgg16.pth"
    torch.save(vgg16(weights=None).state_dict(), path)
    fe = FeatureExtractor("vgg16", ["relu2_2", "relu4_3"], weights_path=str(path))
    assert fe.all_layer_names.count("relu3_3") == 1 and "relu3_4" not in fe.all_layer_names
    assert fe(torch.rand(1, 3, 32, 32))["relu4_3"].shape == (1, 512, 4, 4)
    assert len(vgg_layer_names(vgg16(weights=None).features)) == 31


def test_unusable_weights_file_is_a_user_error(tmp_path):
    """A user error (one line at the command line), never a traceback from torch.load."""
    assert issubclass(WeightsUnavailableError, ImpastoError)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="not a readable vgg16 weights file"):
        FeatureExtractor("vgg16", ["relu2_2"], weights_path=str(garbage))
    with pytest.raises(WeightsUnavailableError, match="not a readable VGG19 weights file"):
        FeatureExtractor("vgg19-caffe", ["relu2_2"], weights_path=str(garbage))
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsUnavailableError, match="not vgg16 weights"):
        FeatureExtractor("vgg16", ["relu2_2"], weights_path=str(other))
