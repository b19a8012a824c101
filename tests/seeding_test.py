"""Tests for dqn_tf.seeding: independent, valid streams at any step, for any run."""

import itertools
import sys

import numpy as np
import pytest

from dqn_tf import seeding

GENERATIONS = (0, 1, 250_000, 50_000_000, 2**40)


def every_key(seed):
    """Every stream a run with `seed` and up to 8 envs uses, at several (re)starts."""
    for purpose, index, generation in itertools.product(seeding.PURPOSES, range(8),
                                                        GENERATIONS):
        yield seed, purpose, index, generation


def test_no_two_streams_of_runs_0_and_1_coincide():
    keys = list(every_key(0)) + list(every_key(1))
    int_seeds = [seeding.int_seed(*key) for key in keys]
    first_draws = [tuple(seeding.generator(*key).integers(0, 2**63, 4)) for key in keys]
    assert len(set(int_seeds)) == len(keys)
    assert len(set(first_draws)) == len(keys)


def test_the_old_offset_scheme_collisions_are_gone():
    # Before: run s env i was seeded s + i, so run 0 env 1 == run 1 env 0, and run s's
    # actor (s + 2) was run s + 1's replay sampler (s + 1 + 1).
    assert seeding.int_seed(0, "env", 1) != seeding.int_seed(1, "env", 0)
    assert seeding.int_seed(0, "actor") != seeding.int_seed(1, "replay")


def test_int_seeds_are_31_bit_at_any_generation():
    for generation in GENERATIONS:
        seeds = seeding.int_seeds(0, "env", 64, generation=generation)
        assert all(0 <= s < 2**31 for s in seeds), generation
        assert len(set(seeds)) == 64


def test_streams_are_reproducible_and_pinned():
    # Changing how a key maps to a stream changes every run's games: this pins it.
    assert seeding.int_seed(0, "env", 0, 0) == 238126281
    np.testing.assert_array_equal(seeding.generator(3, "actor", 2, 7).random(3),
                                  seeding.generator(3, "actor", 2, 7).random(3))


def test_negative_keys_are_refused():
    with pytest.raises(ValueError, match="seed keys must be >= 0"):
        seeding.int_seed(-1, "env")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ale_vector", "gymnasium"])
def test_real_ale_takes_seeds_of_a_resume_at_step_50m(backend):
    from dqn_tf import atari_env
    seeds = seeding.int_seeds(0, "env", 2, generation=50_000_000)
    env = atari_env.make_env("Pong", seeds=seeds, backend=backend)
    first = env.reset().observation
    env.reseed(seeds)  # The same seeds give the same game again.
    np.testing.assert_array_equal(env.reset().observation, first)
    env.close()


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
