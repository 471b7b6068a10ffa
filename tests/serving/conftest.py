"""Fixtures for the HTTP service: tiny randomly initialised ONNX models and a ready app client."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.serving.helpers import app_client, make_settings

# trio: conditional instance norm, styles wave/ink/plain, "plain" declared the identity style.
# solo: instance norm, one style also called "wave" -> "wave" alone is ambiguous.
TRIO_STYLES = ["wave", "ink", "plain"]


def export_test_models(directory: Path) -> None:
    with warnings.catch_warnings():  # tracer chatter from the ONNX exporter
        warnings.simplefilter("ignore")
        _export(directory)


def _export(directory: Path) -> None:
    torch = pytest.importorskip("torch")
    from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    trio = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="conditional_instance",
                              num_styles=3, style_names=TRIO_STYLES)
    for module in trio.modules():  # untrained CIN starts with identical styles: make them differ
        if isinstance(module, ConditionalInstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.5)
            torch.nn.init.normal_(module.bias, 0.0, 0.5)
    export_onnx(trio, directory / "trio.onnx", style_info={"wave": {"title": "Wave"}}, identity_style="plain")
    solo = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="instance", style_names=["wave"])
    export_onnx(solo, directory / "solo.onnx")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    export_test_models(directory)
    return directory


@pytest.fixture(scope="module")
def client(model_dir):
    """A TestClient on an app with default settings (module-scoped: start-up once per file)."""
    from impasto.serving.app import create_app

    with app_client(create_app(make_settings(model_dir))) as c:
        yield c
