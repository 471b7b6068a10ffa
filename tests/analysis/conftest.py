"""Small models for the analysis tests: a tiny GAP + linear CNN (with BatchNorm, in-place ReLUs and
a module that can be told to fail mid-method), and the real default classifier, loaded once."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class _FailInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("boom (backward)")


class Bomb(nn.Module):
    """Identity, or raises in forward / backward when armed: to test cleanup after exceptions."""

    def __init__(self):
        super().__init__()
        self.mode: str | None = None

    def forward(self, x):
        if self.mode == "forward":
            raise RuntimeError("boom (forward)")
        return _FailInBackward.apply(x) if self.mode == "backward" else x


class TinyNet(nn.Module):
    """conv-BN-ReLU-pool-conv-ReLU-conv-ReLU -> global average pool -> linear."""

    def __init__(self, num_classes: int = 5, inplace: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=inplace), Bomb(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=inplace))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        # He initialisation and a unit-variance head: logits that depend clearly on the input.
        # Non-trivial BatchNorm statistics, so that a method left in train mode gives other outputs.
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.uniform_(m.bias, -0.1, 0.1)
            nn.init.normal_(self.fc.weight, std=1.0)
            self.features[1].running_mean.uniform_(-0.2, 0.2)
            self.features[1].running_var.uniform_(0.5, 1.5)

    @property
    def bomb(self) -> Bomb:
        return self.features[6]

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny():
    return TinyNet()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 32, 32)


@pytest.fixture(scope="session")
def effnet():
    from impasto.models.analysis.classifiers import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def chelsea_224():
    from PIL import Image
    from skimage import data

    from impasto.models.analysis.images import to_tensor

    return to_tensor(Image.fromarray(np.asarray(data.chelsea())), 224)[None]
