import pytest
import torch

from impasto.models.analysis import FGSM, PGD, ClassVisualization, Neuron, fooling_image
from impasto.models.analysis.objectives import target_scores


def test_class_visualisation_raises_the_target_logit(tiny):
    tiny.eval()
    res = ClassVisualization(tiny, steps=30, jitter=2)(3, 32)
    start = tiny(0.5 + torch.zeros(1, 3, 32, 32))[0, 3]
    assert res.image.shape == (3, 32, 32) and 0 <= res.image.min() and res.image.max() <= 1
    assert tiny(res.image[None])[0, 3] > start + 1.0
    assert res.scores[-1] > res.scores[0]


def test_neuron_visualisation_raises_the_activation(tiny):
    tiny.eval()
    neuron = Neuron("features.5", 4)
    res = ClassVisualization(tiny, steps=30, jitter=0)(neuron, 32)
    with torch.no_grad():
        assert target_scores(tiny, res.image[None], neuron) > target_scores(tiny, torch.full((1, 3, 32, 32), 0.5), neuron)


def test_fooling_image_reaches_the_target(tiny, images):
    tiny.eval()
    original = tiny(images).argmax(1)
    target = (original + 1) % 5
    res = fooling_image(tiny, images, target, max_steps=200)
    assert res.success.all() and torch.equal(res.predicted, target)


def test_fgsm_stays_in_budget(tiny, images):
    tiny.eval()
    res = FGSM(tiny, eps=0.05)(images)
    assert (res.adversarial - images).abs().max() <= 0.05 + 1e-6
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1


def test_pgd_flips_the_default_classifier_on_a_photo(effnet, chelsea_224):
    eps = 4 / 255
    before = effnet(chelsea_224).argmax(1)
    res = PGD(effnet, eps, steps=5, alpha=eps / 2, stop_when_fooled=True)(chelsea_224)
    assert (res.adversarial - chelsea_224).abs().max() <= eps + 1e-6
    assert res.success.all() and not torch.equal(effnet(res.adversarial).argmax(1), before)


@pytest.mark.slow
def test_targeted_pgd_on_the_default_classifier(effnet, chelsea_224):
    eps = 4 / 255
    target = torch.tensor([6])  # stingray
    res = PGD(effnet, eps, steps=8, alpha=eps / 2)(chelsea_224, target, targeted=True)
    assert res.success.all() and int(res.predicted[0]) == 6
