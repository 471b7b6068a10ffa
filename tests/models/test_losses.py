import pytest
import torch

from impasto.models.features import FeatureExtractor
from impasto.models.losses import (
    PerceptualLoss,
    build_perceptual_loss,
    content_loss,
    gram_matrix,
    layer_sum,
    relative_distance,
    style_loss,
    total_variation,
    weighted_gram_targets,
)


def test_gram_matrix_hand_computed():
    # One sample, C=2, H=1, W=2: F = [[1, 2], [3, 4]] -> F F^T = [[5, 11], [11, 25]] / (C*H*W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    torch.testing.assert_close(gram_matrix(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


def test_gram_matrix_properties():
    f = torch.randn(3, 8, 5, 7)
    g = gram_matrix(f)
    assert g.shape == (3, 8, 8)
    torch.testing.assert_close(g, g.transpose(1, 2))  # symmetric
    assert (torch.linalg.eigvalsh(g) > -1e-5).all()  # positive semi-definite
    # Independent of spatial arrangement and normalised for size: tiling the map 2x2 keeps it.
    torch.testing.assert_close(gram_matrix(f.repeat(1, 1, 2, 2)), g, atol=1e-5, rtol=1e-5)
    perm = torch.randperm(35)
    torch.testing.assert_close(gram_matrix(f.flatten(2)[..., perm].reshape(f.shape)), g, atol=1e-5, rtol=1e-5)


def test_style_loss_zero_for_own_gram_and_positive_otherwise():
    f = torch.randn(2, 4, 6, 6)
    assert style_loss(f, gram_matrix(f)) < 1e-10
    assert style_loss(f, gram_matrix(torch.randn(2, 4, 6, 6))) > 0


def test_total_variation():
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert total_variation(flat) == 0
    stripes = torch.zeros(1, 1, 2, 4)
    stripes[..., 1::2] = 1.0  # every horizontal neighbour differs by 1, vertical ones by 0
    assert total_variation(stripes) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def encoder():
    return FeatureExtractor("vgg19-caffe", ["relu1_1", "relu2_1", "relu2_2"])


def test_weighted_gram_targets_average_several_style_images(encoder):
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 24)
    ga = weighted_gram_targets(encoder, [a], None, ["relu1_1"])["relu1_1"]
    gb = weighted_gram_targets(encoder, [b], None, ["relu1_1"])["relu1_1"]
    mix = weighted_gram_targets(encoder, [a, b], [3.0, 1.0], ["relu1_1"])["relu1_1"]
    torch.testing.assert_close(mix, 0.75 * ga + 0.25 * gb)
    only_a = weighted_gram_targets(encoder, [a, b], [1.0, 0.0], ["relu1_1"])["relu1_1"]
    torch.testing.assert_close(only_a, ga)
    with pytest.raises(ValueError):
        weighted_gram_targets(encoder, [a, b], [0.0, 0.0], ["relu1_1"])


def test_perceptual_loss_blends_style_targets(encoder):
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0})
    loss.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([torch.zeros(1, 3, 32, 32)], None)])
    t0 = loss.style_target("relu1_1", torch.tensor([[1.0, 0.0]]))
    t1 = loss.style_target("relu1_1", torch.tensor([[0.0, 1.0]]))
    half = loss.style_target("relu1_1", torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(half, (t0 + t1) / 2)
    terms = loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.tensor([[1.0, 0], [0, 1.0]]))
    assert set(terms) == {"content", "style", "tv", "total"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("distance,weights", [("mse", (1e-4, 3e-3, 1.0)), ("relative", (1.0, 1.0, 0.0))])
def test_losses_go_down_over_a_few_steps(distance, weights):
    """A tiny network trained for a few Adam steps lowers the perceptual loss."""
    from impasto.models.transformer import StylizationNetwork

    torch.manual_seed(0)
    content_weight, style_weight, tv_weight = weights
    loss = build_perceptual_loss(content_layers={"relu2_2": 1.0}, style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                                 content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                                 style_distance=distance)
    loss.set_style_targets([([torch.rand(1, 3, 48, 48)], None)])
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    content = torch.rand(2, 3, 48, 48)
    history = []
    for _ in range(25):
        terms = loss(net(content), content)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append(terms["total"].item())
    assert history[-1] < 0.8 * history[0]


def test_identity_style_targets_the_content_itself(encoder):
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0})
    loss.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([], None)])  # style 1: identity
    content = torch.rand(2, 3, 32, 32)
    identity = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    terms = loss(content, content, identity)  # reproducing the input is a perfect identity stylisation
    assert terms["content"] < 1e-8 and terms["style"] < 1e-6
    assert loss(content, content, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))["style"] > 1e-3
    half = loss.style_target("relu1_1", torch.tensor([[0.5, 0.5]]), torch.ones(1, 64, 64))
    torch.testing.assert_close(half, 0.5 * loss.style_target("relu1_1", torch.tensor([[1.0, 0.0]])) + 0.5)


def test_identity_pixel_term_weighs_each_sample_by_its_identity_share(encoder):
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0}, identity_weight=2.0)
    loss.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([], None)])  # style 1: identity
    content = torch.rand(2, 3, 32, 32)
    output = content.clone()
    output[1] += 0.1  # only sample 1 is off, by 0.1 everywhere
    weights = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    terms = loss(output, content, weights)
    # mean over the batch of share * mean |output - content|: (1 * 0 + 0.5 * 0.1) / 2, times 2
    assert terms["identity"].item() == pytest.approx(0.05, rel=1e-4)
    assert terms["total"] == pytest.approx(sum(v for k, v in terms.items() if k != "total").item())
    unweighted = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0})
    unweighted.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([], None)])
    assert "identity" not in unweighted(output, content, weights)  # off by default


def test_an_identity_style_alone_can_be_retuned(encoder):
    # `add_style` with styles=[{name: identity, identity: true}]: no painting, so no Gram target to
    # read the shapes from; the pixel identity term is all there is to train.
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0}, identity_weight=2.0, identity_loss="pixel")
    loss.set_style_targets([([], None)])
    content = torch.rand(2, 3, 32, 32)
    terms = loss(content + 0.1, content, torch.ones(2, 1))
    assert terms["identity"].item() == pytest.approx(0.2, rel=1e-4)
    assert loss(content, content, torch.ones(2, 1))["total"].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least one style"):
        loss.set_style_targets([])


class CountingEncoder(torch.nn.Module):
    """Wraps a feature extractor and records the batch size and layers of every pass."""

    def __init__(self, encoder):
        super().__init__()
        self.inner, self.passes = encoder, []

    def forward(self, image, layers=None):
        self.passes.append((image.shape[0], tuple(layers) if layers else None))
        return self.inner(image, layers=layers)


@pytest.mark.parametrize("distance", ["mse", "relative"])
def test_pixel_identity_scores_identity_samples_by_pixels_alone(encoder, distance):
    counting = CountingEncoder(encoder)
    loss = PerceptualLoss(counting, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0}, identity_weight=3.0,
                          tv_weight=0.5, distance=distance, identity_loss="pixel")
    reference = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0}, identity_weight=3.0,
                               tv_weight=0.5, distance=distance)
    styles = [([torch.rand(1, 3, 32, 32)], None), ([], None)]  # style 1: identity
    loss.set_style_targets(styles)
    reference.set_style_targets(styles)
    torch.manual_seed(0)
    output, content = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    counting.passes.clear()
    terms = loss(output, content, weights)
    # Only the two painted samples go through the loss network, the content pass to relu2_2 only.
    assert sorted(counting.passes, key=str) == sorted([(2, ("relu2_2",)), (2, None)], key=str)
    painted = reference(output[[0, 2]], content[[0, 2]], weights[[0, 2]])
    for term in ("content", "style", "tv"):  # means over the batch: half of the painted samples' means
        torch.testing.assert_close(terms[term], painted[term] / 2)
    pixel = (output - content).abs().flatten(1).mean(1)
    torch.testing.assert_close(terms["identity"], 3.0 * (pixel[1] + pixel[3]) / 4)
    # A batch of identity samples alone needs no loss-network pass at all.
    counting.passes.clear()
    alone = loss(output[[1, 3]], content[[1, 3]], weights[[1, 3]])
    assert counting.passes == [] and alone["style"] == 0 and alone["total"] == alone["identity"]
    # Perceptual (the default) identity samples need the content's Grams: a full content pass.
    assert reference.content_layers_needed(weights) == ["relu2_2", "relu1_1", "relu2_1"]
    assert loss.content_layers_needed(weights) == ["relu2_2"]
    with pytest.raises(ValueError, match="identity_loss"):
        PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0}, identity_loss="none")


def test_layer_sum_weights_each_layer():
    feats = {"a": torch.ones(1, 2, 3, 3), "b": torch.zeros(1, 2, 3, 3)}
    targets = {"a": torch.zeros(1, 2, 3, 3), "b": torch.full((1, 2, 3, 3), 2.0)}
    # mse: a -> 1, b -> 4
    assert layer_sum(content_loss, feats, targets, {"a": 3.0, "b": 0.5}).item() == pytest.approx(3.0 + 2.0)


def test_given_content_features_give_the_same_terms(encoder):
    """A caller with a fixed content image (Gatys) passes its features once instead of per call."""
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.5}, style_weight=10.0, tv_weight=0.1)
    loss.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([], None)])  # one image style, one identity
    output, content = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    weights = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    with torch.no_grad():
        features = encoder(content)
    fresh, given = loss(output, content, weights), loss(output, content, weights, content_features=features)
    assert set(fresh) == set(given)
    for k in fresh:
        torch.testing.assert_close(given[k], fresh[k])


class TwoScales(torch.nn.Module):
    """A stand-in loss network whose features are exactly periodic when the image is: the image
    itself and its 2x2 average pool, so tiling an (even-sized) image tiles both maps exactly."""

    def forward(self, image, layers=None):
        features = {"fine": image, "coarse": torch.nn.functional.avg_pool2d(image, 2)}
        return {k: v for k, v in features.items() if layers is None or k in layers}


def relative_loss(encoder, **kwargs):
    layers = {"fine": 1.0, "coarse": 3.0} if isinstance(encoder, TwoScales) else {"relu1_1": 1.0, "relu2_1": 2.0}
    content = {"coarse": 1.0} if isinstance(encoder, TwoScales) else {"relu2_2": 1.0}
    return PerceptualLoss(encoder, content, layers, distance="relative", **kwargs)


def test_relative_distance_matches_the_benchmark_definition():
    from impasto.models.quality import gram_distance

    x, ref = torch.randn(3, 4, 4), torch.randn(1, 4, 4)
    expected = (x - ref).flatten(1).norm(dim=1) / ref.flatten().norm()
    torch.testing.assert_close(relative_distance(x, ref), expected)
    torch.testing.assert_close(relative_distance(x, ref, squared=True), expected**2)
    torch.testing.assert_close(gram_distance(x, ref), expected)  # S is built on the same function
    assert relative_distance(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0  # finite at a zero reference


def test_relative_loss_is_zero_on_its_targets(encoder):
    loss = relative_loss(encoder)
    style = torch.rand(1, 3, 32, 32)
    loss.set_style_targets([([style], None)])
    terms = loss(style, style)  # the style image itself, as output and as content
    assert terms["style"].item() < 1e-10 and terms["content"].item() == 0


def test_relative_loss_is_the_weighted_layer_mean_of_squared_benchmark_distances(encoder):
    from impasto.models.quality import content_distance, gram_distance

    loss = relative_loss(encoder, style_weight=1.0, content_weight=1.0)
    style, output, content = torch.rand(1, 3, 40, 24), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss.set_style_targets([([style], None)])
    terms = loss(output, content)
    out, ref, sty = encoder(output), encoder(content), encoder(style)
    s = [gram_distance(gram_matrix(out[l]), gram_matrix(sty[l])) ** 2 for l in ("relu1_1", "relu2_1")]
    torch.testing.assert_close(terms["style"], ((s[0] + 2 * s[1]) / 3).mean())
    torch.testing.assert_close(terms["content"], (content_distance(out, ref, "relu2_2") ** 2).mean())


def test_relative_loss_does_not_depend_on_image_size_or_feature_scale():
    """What is exactly invariant: the same texture at twice the size (tiled 2x2), when the loss
    network's features tile with it, and any rescaling of a layer's features. A real CNN's padding
    breaks the tiling at the borders, so through VGG the invariance is only approximate (for 32 px
    noise tiled to 64 px the style term moved by about a fifth), and a 2x-upsampled copy of an
    image is a different texture to a CNN, not the same one: neither is claimed here."""
    torch.manual_seed(0)
    style, texture, photo = torch.rand(1, 3, 16, 16), torch.rand(2, 3, 8, 12), torch.rand(2, 3, 8, 12)
    loss = relative_loss(TwoScales(), style_weight=2.0)
    loss.set_style_targets([([style], None)])
    small = loss(texture, photo)
    large = loss(texture.repeat(1, 1, 2, 2), photo.repeat(1, 1, 2, 2))
    for term in ("style", "content"):
        torch.testing.assert_close(large[term], small[term])
        assert small[term] > 0.01

    class Scaled(TwoScales):  # a "backend" whose activations are 10x larger
        def forward(self, image, layers=None):
            return {k: 10 * v for k, v in super().forward(image, layers).items()}

    scaled = relative_loss(Scaled(), style_weight=2.0)
    scaled.set_style_targets([([style], None)])
    for term in ("style", "content"):
        torch.testing.assert_close(scaled(texture, photo)[term], small[term])
    mse = PerceptualLoss(Scaled(), {"coarse": 1.0}, {"fine": 1.0, "coarse": 3.0})  # for contrast: MSE scales
    mse.set_style_targets([([style], None)])
    plain = PerceptualLoss(TwoScales(), {"coarse": 1.0}, {"fine": 1.0, "coarse": 3.0})
    plain.set_style_targets([([style], None)])
    torch.testing.assert_close(mse(texture, photo)["style"], 1e4 * plain(texture, photo)["style"])


@pytest.mark.parametrize("distance", ["mse", "relative"])
def test_a_style_scale_multiplies_only_that_styles_style_term(encoder, distance):
    torch.manual_seed(0)
    styles = [([torch.rand(1, 3, 32, 32)], None), ([torch.rand(1, 3, 32, 32)], None)]
    output, content = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    one_each = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    def terms(scales, weights=one_each, out=output):
        loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.5}, distance=distance,
                              style_weight=3.0)
        loss.set_style_targets(styles, style_scales=scales)
        return loss(out, content[: len(out)], weights)

    base, doubled = terms(None), terms([2.0, 1.0])
    alone = [terms(None, one_each[i:i + 1], output[i:i + 1])["style"] for i in range(2)]
    doubled_alone = [terms([2.0, 1.0], one_each[i:i + 1], output[i:i + 1])["style"] for i in range(2)]
    torch.testing.assert_close(doubled_alone[0], 2 * alone[0])  # style 0's samples: doubled
    torch.testing.assert_close(doubled_alone[1], alone[1])  # style 1's: unchanged
    torch.testing.assert_close(doubled["style"], (2 * alone[0] + alone[1]) / 2)  # the batch mean of both
    torch.testing.assert_close(doubled["content"], base["content"])
    torch.testing.assert_close(terms([1.0, 1.0])["style"], base["style"])
    # A blended sample's scale is the same blend of its styles' scales.
    blend = torch.tensor([[0.25, 0.75]])
    ratio = terms([2.0, 1.0], blend, output[:1])["style"] / terms(None, blend, output[:1])["style"]
    assert ratio.item() == pytest.approx(0.25 * 2 + 0.75 * 1)
    with pytest.raises(ValueError):
        terms([1.0])
    with pytest.raises(ValueError):
        terms([-1.0, 1.0])


def test_scaled_mse_style_term_equals_the_unscaled_one_at_scale_one(encoder):
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.5})
    loss.set_style_targets([([torch.rand(1, 3, 32, 32)], None), ([], None)])
    output, content = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    weights = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    feats, ref = encoder(output), encoder(content)
    targets = {l: loss.style_target(l, weights, gram_matrix(ref[l])) for l in loss.style_layers}
    torch.testing.assert_close(loss.per_sample_style(feats, targets).mean(), loss(output, content, weights)["style"])


def test_unknown_distance_is_refused(encoder):
    with pytest.raises(ValueError, match="mse, relative"):
        PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0}, distance="l1")
