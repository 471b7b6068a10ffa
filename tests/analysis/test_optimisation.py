"""The shared image-optimisation loop and the methods built on it (inversion, texture, DeepDream,
Gatys). Tiny images and a shallow VGG19 prefix keep this fast on shared CPUs."""
import pytest
import torch
import torch.nn.functional as F

from impasto.models.analysis.color import match_color, rgb_to_ycbcr
from impasto.models.analysis.hooks import all_hook_counts
from impasto.models.analysis.optimize import OPTIMIZERS, optimize_image
from impasto.models.analysis.style_transfer import GatysObjective, gatys_transfer
from impasto.models.analysis.synthesis import DreamObjective, deepdream, invert_features, synthesize_texture
from impasto.models.features import FeatureExtractor
from impasto.models.losses import gram_matrix, total_variation
from tests.analysis.conftest import TinyNet

SHALLOW = ["relu1_1", "relu2_1", "relu2_2", "relu3_1"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny convolutions gain nothing from threads, and OpenMP spin-waits badly on busy shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder():
    return FeatureExtractor(layers=SHALLOW)


def smooth_image(seed: int, size: int = 48) -> torch.Tensor:
    """A photo stand-in: smooth random colour blobs plus a little fine detail."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=gen)
    image = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (image + 0.1 * torch.rand(1, 3, size, size, generator=gen)).clamp(0, 1)


# -- the loop ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("parametrization", ["clamp", "sigmoid"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_loop_minimises_with_every_optimizer(optimizer, parametrization):
    target = smooth_image(0, 16)
    init = torch.full_like(target, 0.5)
    lr = {"lbfgs": None, "adam": 0.05, "normgd": 0.02}[optimizer]
    res = optimize_image(lambda x: {"mse": (x - target).pow(2).mean()}, init, steps=40, optimizer=optimizer,
                         lr=lr, parametrization=parametrization, progress=False)
    assert torch.equal(init, torch.full_like(target, 0.5))  # the start image is not modified
    assert res.image.shape == target.shape and 0 <= res.image.min() and res.image.max() <= 1
    assert res.losses("mse")[-1] < 0.2 * res.losses("mse")[0]
    assert (res.image - target).pow(2).mean() < 0.2 * (init - target).pow(2).mean()


def test_loop_records_terms_and_calls_back():
    seen = []
    res = optimize_image(lambda x: {"a": x.mean(), "b": 2 * x.pow(2).mean()}, torch.rand(1, 3, 8, 8), steps=6,
                         optimizer="adam", progress=False, callback=lambda s, img, t: seen.append((s, t)),
                         callback_every=4)
    assert len(res.history) == 6
    assert all(h["total"] == pytest.approx(h["a"] + h["b"]) for h in res.history)
    assert [s for s, _ in seen] == [4, 6]


def snapshot(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loop_leaves_networks_untouched(optimizer, encoder):
    """A caller's model with mixed modes and requires_grad flags, and the frozen loss network: same
    modes, flags, buffers, no hooks and no gradients accumulated, also when the loop fails."""
    model = TinyNet()
    model.eval()
    model.fc.train()  # mixed modes; BatchNorm in eval, so its statistics must not move either
    model.fc.weight.requires_grad_(False)
    before, enc_before = snapshot(model), snapshot(encoder)
    objective = lambda x: {"logit": -model(x)[0, 1], "feat": encoder(x)["relu1_1"].mean()}  # noqa: E731
    optimize_image(objective, torch.rand(1, 3, 32, 32), steps=3, optimizer=optimizer, progress=False)

    def failing(x):
        objective(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        optimize_image(failing, torch.rand(1, 3, 32, 32), steps=3, optimizer=optimizer, progress=False)
    for net, ref in ((model, before), (encoder, enc_before)):
        after = snapshot(net)
        assert all_hook_counts(net) == 0
        assert after[0] == ref[0] and after[1] == ref[1]
        assert all(g is None for g in after[2])
        assert all(torch.equal(a, b) for a, b in zip(after[3], ref[3]))
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())


def test_loop_runs_under_no_grad():
    with torch.no_grad():
        res = optimize_image(lambda x: {"m": x.pow(2).mean()}, torch.rand(1, 1, 4, 4), steps=3, optimizer="adam",
                             progress=False)
    assert res.history[-1]["m"] < res.history[0]["m"]


def test_loop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="optimizer"):
        optimize_image(lambda x: {"m": x.sum()}, torch.rand(1, 1, 2, 2), steps=1, optimizer="sgd")
    with pytest.raises(ValueError, match="steps"):
        optimize_image(lambda x: {"m": x.sum()}, torch.rand(1, 1, 2, 2), steps=0)


# -- methods -----------------------------------------------------------------------------------------

def test_inversion_loss_falls(encoder):
    image = smooth_image(1)
    res = invert_features(image, "relu2_2", encoder=encoder, steps=15, tv_weight=0.01, progress=False)
    assert res.image.shape == image.shape
    assert res.losses("features")[-1] < 0.3 * res.losses("features")[0]
    # Moving towards the image's features moves towards the image.
    start_error = (torch.full_like(image, 0.5) - image).pow(2).mean()
    assert (res.image - image).pow(2).mean() < start_error


def test_texture_loss_falls_and_canvas_is_larger(encoder):
    sample = smooth_image(2, 32)
    layers = ["relu1_1", "relu2_1"]
    res = synthesize_texture(sample, scale=1.5, layers=layers, encoder=encoder, steps=15, progress=False)
    assert res.image.shape == (1, 3, 48, 48)
    assert res.losses()[-1] < 0.1 * res.losses()[0]


def test_deepdream_increases_activation(encoder):
    image = smooth_image(3)
    res = deepdream(image, layers=["relu2_2"], encoder=encoder, octaves=2, steps=4, jitter=4, progress=False)
    probe = DreamObjective(encoder, ["relu2_2"])
    with torch.no_grad():
        before, after = probe.activation(image), probe.activation(res.image)
    assert res.image.shape == image.shape
    assert after > 1.5 * before


GATYS = dict(content_layers={"relu2_2": 1.0}, style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
             content_weight=1.0, style_weight=1e3, tv_weight=1.0)


def test_gatys_loss_falls_and_moves_towards_style(encoder):
    content, style = smooth_image(4), smooth_image(5, 40)
    res = gatys_transfer(content, [style], encoder=encoder, steps=10, progress=False, **GATYS)
    assert res.losses()[-1] < 0.5 * res.losses()[0]
    assert res.losses("style")[-1] < 0.5 * res.losses("style")[0]
    assert not torch.allclose(res.image, content, atol=1e-3)


def test_gatys_objective_is_content_plus_gram_style_plus_tv(encoder):
    content, style, image = smooth_image(14, 32), smooth_image(15, 40), smooth_image(16, 32)
    terms = GatysObjective(encoder, content, [style], **GATYS)(image)
    with torch.no_grad():
        feats, c_feats, s_feats = encoder(image), encoder(content), encoder(style)
    expected = {
        "content": F.mse_loss(feats["relu2_2"], c_feats["relu2_2"]),
        "style": 1e3 * sum(F.mse_loss(gram_matrix(feats[l]), gram_matrix(s_feats[l])) for l in ("relu1_1", "relu2_1")),
        "tv": total_variation(image),
    }
    assert set(terms) == set(expected)  # the loop adds the total itself
    for k, v in expected.items():
        torch.testing.assert_close(terms[k].detach(), v)


def test_gatys_style_image_weights(encoder):
    content, a, b = smooth_image(6, 32), smooth_image(7, 32), smooth_image(8, 40)
    layers = {k: v for k, v in GATYS.items() if k.endswith("layers")}
    only_a = GatysObjective(encoder, content, [a], **layers).style_target
    one_zero = GatysObjective(encoder, content, [a, b], [1.0, 0.0], **layers).style_target
    only_b = GatysObjective(encoder, content, [b], **layers).style_target
    mix = GatysObjective(encoder, content, [a, b], [3.0, 1.0], **layers).style_target
    for layer in layers["style_layers"]:
        assert torch.allclose(one_zero(layer), only_a(layer))
        assert torch.allclose(mix(layer), 0.75 * only_a(layer) + 0.25 * only_b(layer), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(only_a(layer), only_b(layer))
    run = lambda styles, w: gatys_transfer(content, styles, w, encoder=encoder, steps=3, progress=False,  # noqa: E731
                                           **GATYS).image
    assert torch.allclose(run([a, b], [1.0, 0.0]), run([a], None), atol=1e-5)


def test_luminance_transfer_keeps_content_chroma(encoder):
    # Mid-range content so clipping to [0, 1] cannot alter the recombined colours.
    content = 0.25 + 0.5 * smooth_image(9, 32)
    style = smooth_image(10, 32)
    res = gatys_transfer(content, [style], encoder=encoder, steps=5, preserve_color="luminance", progress=False,
                         **GATYS)
    out, ref = rgb_to_ycbcr(res.image), rgb_to_ycbcr(content)
    inside = ((res.image > 0.002) & (res.image < 0.998)).all(dim=1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.9
    assert torch.allclose(out[:, 1:][inside], ref[:, 1:][inside], atol=2e-3)
    assert (out[:, :1] - ref[:, :1]).abs().mean() > 1e-3  # the luminance did change: style was applied


def test_histogram_matching_gives_the_style_the_content_colours():
    style = 0.2 + 0.3 * smooth_image(11, 40) * torch.tensor([1.0, 0.3, 0.6]).view(1, 3, 1, 1)
    content = 0.3 + 0.4 * smooth_image(12, 32).flip(1)
    mapped = match_color(style, content)

    def stats(x):
        p = x.reshape(3, -1).double()
        return p.mean(1), torch.cov(p, correction=0)

    (m_mean, m_cov), (c_mean, c_cov) = stats(mapped), stats(content)
    assert torch.allclose(m_mean, c_mean, atol=1e-3)
    assert torch.allclose(m_cov, c_cov, atol=1e-4)


def test_gatys_rejects_bad_options(encoder):
    content = smooth_image(13, 16)
    with pytest.raises(ValueError, match="preserve_color"):
        gatys_transfer(content, [content], encoder=encoder, steps=1, preserve_color="hue", **GATYS)
    with pytest.raises(ValueError, match="style"):
        gatys_transfer(content, [content], [1.0, 2.0], encoder=encoder, steps=1, **GATYS)
