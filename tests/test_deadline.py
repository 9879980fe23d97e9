"""Calls with a hard deadline (``deepsade.verification.deadline``): Marabou does not always keep its own
timeout, so each query runs in a child process that is killed when it overruns."""

from __future__ import annotations

import math
import signal
import time

import pytest

from deepsade.verification.deadline import GRACE_SECONDS, call_with_deadline


def deaf_sleep(seconds: float) -> str:
    """A call that overruns and, like Marabou inside a solve, ignores SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "woke up"


def unpicklable_result():
    return lambda: None


def test_a_call_that_overruns_is_killed_at_the_deadline_and_the_next_call_gets_a_fresh_process():
    assert call_with_deadline(math.hypot, (3.0, 4.0), 60.0) == (True, 5.0)  # the child starts (spawn) here
    started = time.perf_counter()
    assert call_with_deadline(deaf_sleep, (120.0,), 1.0) == (False, None)
    assert time.perf_counter() - started < 15.0
    assert call_with_deadline(math.hypot, (6.0, 8.0), 60.0) == (True, 10.0)
    with pytest.raises(ValueError):
        call_with_deadline(math.sqrt, (-1.0,), 60.0)  # an error inside the call is raised here
    with pytest.raises(RuntimeError, match="could not be sent back"):
        call_with_deadline(unpicklable_result, (), 60.0)  # reported, and the child lives on
    assert call_with_deadline(math.hypot, (5.0, 12.0), 60.0) == (True, 13.0)
    assert call_with_deadline(deaf_sleep, (0.0,), 60.0) == (True, "woke up")
    # this child now ignores SIGTERM: the module's exit handler must kill it, or the test run would not end


def test_verify_keeps_its_timeout_on_a_network_where_marabou_overruns_its_own(tmp_path):
    """Sequential clamps on a tiny network: Marabou ran past --timeout 10 for over 150 s (deaf to SIGTERM)
    before its queries got a child process; now the command answers within the timeout and the grace."""
    from deepsade.estimator import DeepSaDe
    from tests.conftest import run_cli
    from tests.test_export import BOUNDS_RULE, regression_frame

    model = DeepSaDe(BOUNDS_RULE, ["y"], hidden=(8, 4), epochs=3, seed=0).fit(regression_frame())
    assert model.artifact_.method == "polytope"
    directory = model.save(tmp_path / "clamped")
    started = time.perf_counter()
    result = run_cli("verify", str(directory), "--timeout", "2")
    elapsed = time.perf_counter() - started
    assert result.returncode in (0, 3), result.stderr  # verified, or unknown: never a hang
    assert elapsed < 2 * (2 + GRACE_SECONDS) + 30, elapsed


def test_weights_sent_to_the_child_leave_their_exact_cache_behind():
    import pickle
    from fractions import Fraction

    import numpy as np

    from deepsade.verification.network import NetworkWeights

    weights = NetworkWeights(hidden=[(np.array([[0.5, -1.0]]), np.array([0.25]))], last_weight=np.array([[2.0, 1.0]]),
                             last_bias=np.array([0.0]), mapped=np.array([1]))
    point = [Fraction(1), Fraction(3)]
    expected = weights.forward_exact(point)
    assert weights._exact is not None
    copy = pickle.loads(pickle.dumps(weights))
    assert copy._exact is None and weights._exact is not None
    assert copy.forward_exact(point) == expected
