"""Tests for dqn_tf.schedules."""

import sys

import pytest

from dqn_tf.schedules import linear_epsilon


@pytest.mark.parametrize("step,expected", [(0, 1.0), (99, 1.0), (100, 1.0), (150, 0.55),
                                           (200, 0.1), (10_000, 0.1)])
def test_linear_epsilon(step, expected):
    value = linear_epsilon(step, start=1.0, end=0.1, decay_agent_steps=100,
                           warmup_agent_steps=100)
    assert value == pytest.approx(expected)


def test_zero_decay_jumps_to_end_after_warmup():
    assert linear_epsilon(5, start=1.0, end=0.01, decay_agent_steps=0,
                          warmup_agent_steps=5) == 0.01


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
