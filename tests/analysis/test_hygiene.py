"""Every method leaves the caller's model as it found it: no hooks, same train/eval mode per module,
same requires_grad per parameter, same in-place flags, untouched BatchNorm statistics; also when
the method raises half-way (in the forward or the backward pass)."""
import pytest
import torch

from impasto.models.analysis import (
    CAM,
    FGSM,
    PGD,
    ActivationMaps,
    ClassVisualization,
    Deconvnet,
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    MaxActivatingPatches,
    Neuron,
    Occlusion,
    Saliency,
    fooling_image,
    penultimate_features,
    receptive_field,
)
from impasto.models.analysis.hooks import all_hook_counts
from tests.analysis.conftest import TinyNet

GRADIENT_METHODS = {
    "saliency": lambda m, x: Saliency(m)(x, 1),
    "saliency-neuron": lambda m, x: Saliency(m)(x, Neuron("features.7", 2)),
    "guided": lambda m, x: GuidedBackprop(m)(x, 1),
    "deconvnet": lambda m, x: Deconvnet(m)(x, Neuron("features.8", 0, 3, 3)),
    "gradcam": lambda m, x: GradCAM(m, "features.5")(x, 1),
    "gradcam-default-layer": lambda m, x: GradCAM(m)(x, 1),
    "guided-gradcam": lambda m, x: GuidedGradCAM(m, "features.8")(x, 1),
    "class-viz": lambda m, x: ClassVisualization(m, steps=3, jitter=2)(1, 32),
    "fooling": lambda m, x: fooling_image(m, x, 3, max_steps=3),
    "fgsm": lambda m, x: FGSM(m, 0.03)(x),
    "pgd": lambda m, x: PGD(m, 0.03, steps=2)(x, 2, targeted=True),
}
FORWARD_METHODS = {
    "activations": lambda m, x: ActivationMaps(m, "features.5")(x),
    "penultimate": lambda m, x: penultimate_features(m, x),
    "occlusion": lambda m, x: Occlusion(m)(x, 1, window=8, stride=8),
    "cam": lambda m, x: CAM(m)(x, 1),
    "patches": lambda m, x: MaxActivatingPatches(m, "features.5")(x, [0, 1], k=2),
    "receptive-field": lambda m, x: receptive_field(m, "features.8", 32),
}
ALL = {**GRADIENT_METHODS, **FORWARD_METHODS}
# Methods whose backward pass crosses the failing module (Grad-CAM at the last layer stops before it).
BACKWARD_THROUGH_BOMB = [n for n in GRADIENT_METHODS if n != "gradcam-default-layer"]


def snapshot(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [getattr(m, "inplace", None) for m in model.modules()],
            [b.clone() for b in model.buffers()])


def assert_untouched(model, before):
    modes, flags, inplace, buffers = snapshot(model)
    assert all_hook_counts(model) == 0
    assert modes == before[0]
    assert flags == before[1]
    assert inplace == before[2]
    assert all(torch.equal(a, b) for a, b in zip(buffers, before[3]))


def prepared_model(inplace: bool):
    model = TinyNet(inplace=inplace)
    model.train()                         # the caller's mode: train, with one submodule in eval
    model.features[4].eval()
    model.fc.weight.requires_grad_(False)  # and mixed requires_grad flags
    return model


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("name", list(ALL))
def test_model_restored(name, inplace, images):
    model = prepared_model(inplace)
    before = snapshot(model)
    ALL[name](model, images)
    assert_untouched(model, before)


@pytest.mark.parametrize("name", list(ALL))
def test_model_restored_after_forward_error(name, images):
    model = prepared_model(inplace=True)
    before = snapshot(model)
    model.bomb.mode = "forward"
    with pytest.raises(RuntimeError, match="boom"):
        ALL[name](model, images)
    model.bomb.mode = None
    assert_untouched(model, before)


@pytest.mark.parametrize("name", BACKWARD_THROUGH_BOMB)
def test_model_restored_after_backward_error(name, images):
    model = prepared_model(inplace=True)
    before = snapshot(model)
    model.bomb.mode = "backward"
    with pytest.raises(RuntimeError, match="boom"):
        GRADIENT_METHODS[name](model, images)
    model.bomb.mode = None
    assert_untouched(model, before)


def test_methods_run_in_eval_mode(images):
    """A method that forgot eval mode would use batch statistics: compare with eval outputs."""
    model = prepared_model(inplace=False)
    eval_copy = TinyNet().eval()
    eval_copy.load_state_dict(model.state_dict())
    assert torch.allclose(penultimate_features(model, images), penultimate_features(eval_copy, images))
    assert torch.allclose(Saliency(model)(images, 1), Saliency(eval_copy)(images, 1))
