"""CNN analysis toolkit (CS231n lecture 12 "Visualizing and Understanding"): classifier-based
methods. Every method takes a model mapping RGB [0, 1] NCHW to logits (``Method(model, layer)``,
then ``method(x, target)``), registers its hooks only for the call and leaves the model's modes
and ``requires_grad`` flags as it found them."""
from impasto.models.analysis.adversarial import FGSM, PGD, AttackResult, fooling_image
from impasto.models.analysis.cam import CAM, GradCAM, GuidedGradCAM
from impasto.models.analysis.class_viz import ClassVisualization
from impasto.models.analysis.classifiers import (
                                         Classifier,
                                         class_name,
                                         imagenet_classes,
                                         load_classifier,
                                         resolve_class,
                                         top_k,
)
from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.filters import ActivationMaps, conv_filters
from impasto.models.analysis.guided import Deconvnet, GuidedBackprop, relu_backward_rule
from impasto.models.analysis.neighbors import embed_2d, nearest_neighbors, penultimate_features
from impasto.models.analysis.objectives import Neuron
from impasto.models.analysis.occlusion import Occlusion
from impasto.models.analysis.patches import MaxActivatingPatches
from impasto.models.analysis.receptive_field import ReceptiveField, receptive_field
from impasto.models.analysis.saliency import Saliency, grabcut_from_saliency

__all__ = [
    "ActivationMaps", "AnalysisError", "AttackResult", "CAM", "Classifier", "ClassVisualization", "Deconvnet",
    "FGSM", "GradCAM", "GuidedBackprop", "GuidedGradCAM", "MaxActivatingPatches", "Neuron", "Occlusion", "PGD",
    "ReceptiveField", "Saliency", "class_name", "conv_filters", "embed_2d", "fooling_image", "grabcut_from_saliency",
    "imagenet_classes", "load_classifier", "nearest_neighbors", "penultimate_features", "receptive_field",
    "relu_backward_rule", "resolve_class", "top_k",
]
