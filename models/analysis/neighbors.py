"""The last hidden layer as a space: nearest neighbours there vs in pixel space, and 2-D
embeddings (PCA, t-SNE) of it (Krizhevsky et al. 2012; van der Maaten & Hinton 2008)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import capture, frozen, last_linear

EMBEDDINGS = ("pca", "tsne")


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """The input of the classifier's last linear layer (the pooled features): ``[N, D]``."""
    head = last_linear(model)
    out = []
    with frozen(model), capture(head, inputs=True) as cap:
        for s in range(0, x.shape[0], batch_size):
            model(x[s:s + batch_size])
            out.append(cap.value.detach().flatten(1))
    return torch.cat(out)


def nearest_neighbors(features: torch.Tensor, queries, k: int = 5) -> torch.Tensor:
    """For each query index, the ``k`` nearest other items by Euclidean distance: ``[Q, k]``."""
    feats = features.flatten(1).double()
    if feats.shape[0] < 2:
        raise AnalysisError("nearest neighbours need at least 2 images")
    k = min(k, feats.shape[0] - 1)
    q = torch.as_tensor(queries, dtype=torch.long)
    dist = torch.cdist(feats[q], feats)
    dist[torch.arange(len(q)), q] = float("inf")  # an image is not its own neighbour
    return dist.topk(k, largest=False).indices


def embed_2d(features: torch.Tensor, method: str = "tsne", *, seed: int = 0) -> np.ndarray:
    """``[N, D]`` -> ``[N, 2]`` with scikit-learn's PCA or t-SNE (perplexity capped for small sets)."""
    feats = features.flatten(1).double().numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(feats)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if len(feats) < 4:
            raise AnalysisError("t-SNE needs at least 4 images")
        perplexity = float(min(30.0, (len(feats) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(feats)
    raise AnalysisError(f"unknown embedding {method!r}; choose one of {', '.join(EMBEDDINGS)}")
