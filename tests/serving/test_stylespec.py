"""The one style-spec grammar: ``NAME``, ``NAME:W,NAME:W``, ``MODEL/NAME``."""
from __future__ import annotations

import numpy as np
import pytest

from impasto.core.errors import StyleError
from impasto.core.stylespec import StyleItem, format_style_spec, parse_style_spec, weight_vector


def test_names_weights_and_model_prefixes():
    assert parse_style_spec("wave") == [StyleItem(None, "wave", 1.0)]
    assert parse_style_spec(" trio/wave : 3 , ink:1 ") == [StyleItem("trio", "wave", 0.75), StyleItem(None, "ink", 0.25)]
    assert parse_style_spec("a:0,b") == [StyleItem(None, "a", 0.0), StyleItem(None, "b", 1.0)]
    assert parse_style_spec(None) == [] and parse_style_spec("  ") == []


@pytest.mark.parametrize("spec, message", [
    ("ink:", "is not a number"), ("ink:abc", "is not a number"), ("ink:-1", ">= 0"), ("ink:nan", "finite"),
    ("ink:inf", "finite"), ("a:0,b:0", "sum to zero"), ("a,,b", "empty"), (":1", "empty"), ("/ink", "empty"),
])
def test_malformed_specs_are_one_line_style_errors(spec, message):
    with pytest.raises(StyleError, match=message) as err:
        parse_style_spec(spec)
    assert "\n" not in str(err.value)


def test_weight_vector_adds_repeats_and_refuses_unknown_names():
    items = parse_style_spec("b:1,a:2,b:1")
    np.testing.assert_allclose(weight_vector(items, ["a", "b", "c"]), [0.5, 0.5, 0.0])
    with pytest.raises(StyleError, match="unknown style 'z'; available: a, b"):
        weight_vector(parse_style_spec("z"), ["a", "b"])


def test_format_drops_prefixes_and_shows_normalised_weights():
    assert format_style_spec(parse_style_spec("m/wave")) == "wave"
    assert format_style_spec(parse_style_spec("m/wave:3,ink:1")) == "wave:0.75,ink:0.25"


@pytest.mark.parametrize("spec, expected", [
    ("a:1e308,b:1e308", [0.5, 0.5]),  # their sum overflows a float
    ("a:3e38,b:3e38", [0.5, 0.5]),  # their sum overflows float32
    ("a:1e39,b:0", [1.0, 0.0]),
    ("a:1e-320,b:3e-320", [0.25, 0.75]),  # subnormal: dividing by their sum loses precision
])
def test_extreme_weights_normalise_to_the_blend_they_describe(spec, expected):
    items = parse_style_spec(spec)
    np.testing.assert_allclose([item.weight for item in items], expected, rtol=1e-6)
    np.testing.assert_allclose(weight_vector(items, ["a", "b"]), expected, rtol=1e-6)


def test_weight_vector_normalises_hand_built_items_and_refuses_unusable_weights():
    huge = [StyleItem(None, "a", 1e308), StyleItem(None, "a", 1e308), StyleItem(None, "b", 1e308)]
    np.testing.assert_allclose(weight_vector(huge, ["a", "b"]), [2 / 3, 1 / 3], rtol=1e-6)
    for weight, message in ((float("nan"), "finite"), (float("inf"), "finite"), (-1.0, ">= 0"), (0.0, "sum to zero")):
        with pytest.raises(StyleError, match=message):
            weight_vector([StyleItem(None, "a", weight)], ["a", "b"])
