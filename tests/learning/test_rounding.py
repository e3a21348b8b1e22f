"""Models go on the wire with five significant digits, and peers' models are read strictly:
the fast paths give exactly what the plain per-value code gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernal.learning.mlp import MLPModel
from kernal.learning.model import MAX_ABS_PARAMETER, SIGNIFICANT_DIGITS, SoftmaxModel, rounded


def _by_string(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in values.ravel().tolist()]


def _same(a: float, b: float) -> bool:
    # Equal and the same sign of zero, or both NaN.
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)


def test_rounding_matches_the_string_form_everywhere() -> None:
    rng = np.random.default_rng(0)
    spread = 10 ** rng.uniform(-30, 30, 50_000) * rng.choice([-1.0, 1.0], 50_000)
    # Decimal ties at the fifth digit and their neighbouring doubles: where one rounding of the
    # scaling could fall on the wrong side.
    mantissas = np.arange(10_000, 100_000, 13) + 0.5
    ties = mantissas / 10.0 ** rng.integers(-3, 12, len(mantissas))
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1e-320, 1e308, 9.99995, 99999.5]
    values = np.concatenate(
        [
            rng.normal(0.0, 0.3, 50_000),
            spread,
            ties,
            np.nextafter(ties, 0.0),
            np.nextafter(ties, np.inf),
            np.array(special),
        ]
    )
    fast, slow = rounded(values), _by_string(values)
    assert len(fast) == len(slow)
    wrong = [
        (v, a, b) for v, a, b in zip(values.tolist(), fast, slow, strict=True) if not _same(a, b)
    ]
    assert wrong == []
    assert all(type(v) is float for v in fast)


@pytest.mark.parametrize("kind", ["softmax", "mlp"])
def test_a_model_reads_back_what_it_wrote(kind: str) -> None:
    model = SoftmaxModel.zeros(8, 3) if kind == "softmax" else MLPModel.initial(8, 3, (5,), seed=0)
    rng = np.random.default_rng(1)
    model = model.with_parameters(rng.normal(0.0, 2.0, model.parameters().shape))
    data = model.to_json()
    again = type(model).from_json(data)
    np.testing.assert_array_equal(again.parameters(), np.array(rounded(model.parameters())))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (True, "non-number"),
        ("1.0", "non-number"),
        (None, "non-number"),
        (math.inf, "non-finite"),
        (math.nan, "non-finite"),
        (MAX_ABS_PARAMETER * 2, "out-of-range"),
        (10**400, "out-of-range"),
    ],
)
def test_a_bad_value_in_a_peers_model_is_named(bad: object, message: str) -> None:
    data = SoftmaxModel.zeros(4, 2).to_json()
    data["b"] = [0.5, bad]
    with pytest.raises(ValueError, match=message):
        SoftmaxModel.from_json(data)


def test_whole_numbers_still_read_as_floats() -> None:
    data = SoftmaxModel.zeros(4, 2).to_json()
    data["b"] = [1, -2]
    assert SoftmaxModel.from_json(data).b.tolist() == [1.0, -2.0]
