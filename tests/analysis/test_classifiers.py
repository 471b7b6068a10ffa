import pytest
import torch

from impasto.models.analysis import AnalysisError, load_classifier, resolve_class, top_k
from impasto.models.analysis.classifiers import imagenet_classes


def test_efficientnet_offline_classifies_chelsea_as_a_cat(effnet, chelsea_224):
    preds = top_k(effnet, chelsea_224, 5)[0]
    cats = {resolve_class(n) for n in ("tabby cat", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat")}
    assert cats & {index for index, _, _ in preds}
    assert preds[0][0] in cats


def test_input_convention_is_rgb_01(effnet):
    """Normalisation is inside the wrapper: mid-grey input reaches the backbone as zeros."""
    x = torch.full((1, 3, 8, 8), 0.5)
    assert torch.equal(effnet.normalize(x), torch.zeros_like(x))


def test_classes_are_in_sorted_wnid_order():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert [c.wnid for c in classes] == sorted(c.wnid for c in classes)
    assert classes[0].name == "tench" and classes[0].wnid == "n01440764"


@pytest.mark.parametrize("query,index", [(281, 281), ("281", 281), ("tabby cat", 281), ("TABBY", 281),
                                         ("space shuttle", 812), ("espresso", 967), ("goldfin", 11)])
def test_resolve_class(query, index):
    assert resolve_class(query) == index


def test_resolve_class_ambiguous_lists_candidates():
    with pytest.raises(AnalysisError, match=r"ambiguous: .*282 tiger cat.*283 Persian cat"):
        resolve_class("cat")


@pytest.mark.parametrize("query", ["no such thing", 1000, "-3"])
def test_resolve_class_unknown(query):
    with pytest.raises(AnalysisError):
        resolve_class(query)


def test_torchvision_model_without_weights_is_a_one_line_error(tmp_path):
    with pytest.raises(AnalysisError, match="resnet18: ImageNet weights unavailable") as err:
        load_classifier("resnet18", tmp_path / "missing.pth")
    assert "\n" not in str(err.value)


def test_torchvision_model_from_local_weights(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    model = load_classifier("resnet18", path)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_unknown_model_name():
    with pytest.raises(AnalysisError, match="unknown classifier"):
        load_classifier("not_a_model")
