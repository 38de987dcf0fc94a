"""Numbers as people write them: tidy floats for machines, rounded ones with units for people."""

from __future__ import annotations

import json
import math

import pytest
from chainpipe.core.numbers import duration, number, tidy


def test_tidy_removes_float_noise_at_any_depth_and_keeps_the_shape():
    noisy = (0.01 + 0.012 + 0.011) / 3  # a baseline mean: 0.011000000000000001
    assert noisy != 0.011
    result = tidy({"baseline": noisy, "metrics": [{"change": {"absolute": 0.1 + 0.2}}], "pair": (noisy, 1)})
    assert result == {"baseline": 0.011, "metrics": [{"change": {"absolute": 0.3}}], "pair": (0.011, 1)}
    assert json.dumps(result["baseline"]) == "0.011"


def test_tidy_keeps_full_precision_of_clean_values():
    for value in (0.1, 1 / 3, 123456789.123456, 2.5e-12, 1e300, -0.07):
        assert tidy(value) == float(f"{value:.15g}")
        assert abs(tidy(value) - value) <= abs(value) * 1e-14


def test_tidy_leaves_non_floats_and_non_finite_values_alone():
    data = {"n": 3, "ok": True, "none": None, "s": "0.30000000000000004", "inf": math.inf}
    assert tidy(data) == data
    assert math.isnan(tidy([math.nan])[0])
    assert tidy(True) is True and type(tidy(3)) is int


@pytest.mark.parametrize("value,shown", [
    (0.011000000000000001, "0.011"),
    (0.02, "0.02"),
    (1.5, "1.5"),
    (15.0, "15"),
    (99.99, "99.99"),
    (123456.789, "123457"),
    (-0.0001, "-0.0001"),
    (1e-09, "1e-09"),
    (0.0, "0"),
    (7, "7"),
])
def test_numbers_are_rounded_for_people(value, shown):
    assert number(value) == shown


@pytest.mark.parametrize("seconds,shown", [
    (15, "15 s"),
    (0.4, "0.4 s"),
    (60, "1 min"),
    (270, "4.5 min"),
    (3.2 * 3600, "3.2 h"),
    (2 * 86400, "2 d"),
    (123.4 * 86400, "123 d"),
])
def test_durations_take_the_unit_of_their_magnitude(seconds, shown):
    assert duration(seconds) == shown
