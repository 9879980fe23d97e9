"""The float32 rounding bound's building blocks: interval bounds of the exact values carry the error."""

from __future__ import annotations

import numpy as np

from deepsade.float_error import affine_error, gamma, relu_error, relu_stack_error


def test_a_unit_that_cannot_be_positive_carries_no_error():
    low, high, error = relu_error(np.array([-5.0, -1.0]), np.array([-1.0, 2.0]), np.array([0.5, 0.5]))
    assert list(error) == [0.0, 0.5]  # the first stays <= -0.5 even computed: both outputs are exactly 0
    assert list(low) == [0.0, 0.0] and list(high) == [0.0, 2.0]
    # ... but a unit the error can lift above 0 keeps it
    assert relu_error(np.array([-5.0]), np.array([-0.1]), np.array([0.5]))[2][0] == 0.5


def test_signed_interval_bounds_give_the_magnitude_the_next_layer_sees():
    # z in [0, 10]; u = relu(z - 9) lies in [0, 1], so the next sum's rounding is of magnitude 1, not 19
    one = np.array([[1.0]])
    low, high, error = relu_stack_error([(one, np.array([-9.0]))], np.array([0.0]), np.array([10.0]),
                                        np.array([0.0]))
    assert high[0] < 1.0 + 1e-8 and low[0] == 0.0
    assert error[0] <= gamma(2) * 19.0 * (1 + 1e-9)
    *_, out = affine_error(one, np.array([0.0]), low, high, error)
    assert out[0] <= error[0] + gamma(2) * (1.0 + 1e-8 + error[0])


def test_the_bound_holds_against_float32_passes_of_a_random_relu_stack():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=16).astype(np.float32)),
              (rng.normal(size=(8, 16)).astype(np.float32), rng.normal(size=8).astype(np.float32))]
    low, high = np.zeros(4), np.ones(4)
    h_low, h_high, h_error = relu_stack_error(layers, low, high, np.zeros(4))
    x = rng.random((20000, 4)).astype(np.float32)
    fast, exact = x, x.astype(np.float64)
    for weight, bias in layers:
        fast = np.maximum(fast @ weight.T + bias, np.float32(0))
        exact = np.maximum(exact @ weight.T.astype(np.float64) + bias.astype(np.float64), 0.0)
    assert np.all(exact >= h_low - 1e-9) and np.all(exact <= h_high + 1e-9)
    assert np.all(np.abs(fast.astype(np.float64) - exact) <= h_error)
