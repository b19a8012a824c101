"""Tests for dqn_tf.history: acting stacks per env, resets, layouts."""

import sys

import numpy as np
import pytest

from dqn_tf.history import HistoryStacker, stack_frames, stack_shape


def test_push_keeps_last_h_frames_history_major_per_env():
    stacker = HistoryStacker(2, (84, 84), 4)
    for t in range(1, 6):
        states = stacker.push(np.stack([np.full((84, 84), t), np.full((84, 84), 10 * t)]))
    assert states.shape == (2, 4, 84, 84) and states.dtype == np.uint8
    assert states[0, :, 5, 5].tolist() == [2, 3, 4, 5]
    assert states[1, :, 5, 5].tolist() == [20, 30, 40, 50]
    stacker.push(np.zeros((2, 84, 84)))
    assert states[0, :, 5, 5].tolist() == [2, 3, 4, 5]  # Returned states are copies.


def test_reset_zeroes_only_the_masked_envs():
    stacker = HistoryStacker(2, (84, 84), 4)
    stacker.push(np.ones((2, 84, 84), np.uint8))
    stacker.reset(np.array([True, False]))
    states = stacker.push(np.full((2, 84, 84), 7, np.uint8))
    assert states[0, :, 0, 0].tolist() == [0, 0, 0, 7]
    assert states[1, :, 0, 0].tolist() == [0, 0, 1, 7]


def test_vector_observations_flatten_to_d_times_h():
    stacker = HistoryStacker(1, (3,), 2, np.float32)
    stacker.push(np.array([[1, 2, 3]], np.float32))
    states = stacker.push(np.array([[4, 5, 6]], np.float32))
    assert stack_shape((3,), 2) == (6,)
    assert states.tolist() == [[1, 4, 2, 5, 3, 6]]  # Per feature, oldest first.
    assert stack_frames(np.array([[[1, 2, 3], [4, 5, 6]]])).tolist() == states.tolist()


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
