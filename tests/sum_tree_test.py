"""Tests for dqn_tf.sum_tree: exact sums, proportional sampling, zero mass never drawn."""

import math
import sys

import numpy as np
import pytest

from dqn_tf.sum_tree import SumTree


def assert_every_node_is_the_sum_of_its_children(tree):
    internal = np.arange(1, tree.leaf_count)
    np.testing.assert_array_equal(tree.nodes[internal],
                                  tree.nodes[2 * internal] + tree.nodes[2 * internal + 1])


@pytest.mark.parametrize("size", [1, 5, 64, 1000])
def test_sums_stay_exact_under_random_updates(size):
    rng = np.random.default_rng(size)
    tree = SumTree(size)
    for _ in range(300):
        k = rng.integers(1, 40)
        leaves = rng.integers(0, size, k)  # Repeats included: the last value wins.
        values = rng.random(k) * rng.choice([1e-8, 1.0, 1e6], k)
        tree.set(leaves, values)
        assert_every_node_is_the_sum_of_its_children(tree)
    expected = np.zeros(size)
    # The reference: replay the last write of every leaf.
    rng = np.random.default_rng(size)
    for _ in range(300):
        k = rng.integers(1, 40)
        leaves = rng.integers(0, size, k)
        values = rng.random(k) * rng.choice([1e-8, 1.0, 1e6], k)
        for leaf, value in zip(leaves, values):
            expected[leaf] = value
    np.testing.assert_array_equal(tree.leaves(), expected)
    assert math.isclose(tree.total(), math.fsum(expected), rel_tol=1e-12)


def test_set_all_builds_the_same_tree_as_single_writes():
    values = np.random.default_rng(0).random(37)
    one_by_one, at_once = SumTree(37), SumTree(37)
    for i, value in enumerate(values):
        one_by_one.set([i], [value])
    at_once.set_all(values)
    np.testing.assert_array_equal(one_by_one.nodes, at_once.nodes)


def test_sampling_frequencies_match_priorities_chi_square():
    rng = np.random.default_rng(2026)
    priorities = rng.random(50) ** 2
    priorities[rng.choice(50, 10, replace=False)] = 0.0  # 40 leaves with mass.
    tree = SumTree(50)
    tree.set_all(priorities)
    draws = np.concatenate([tree.sample(32, rng) for _ in range(6_000)])  # 192,000 draws.
    counts = np.bincount(draws, minlength=50)
    assert counts[priorities == 0].sum() == 0
    expected = len(draws) * priorities / priorities.sum()
    mass = priorities > 0
    chi_square = ((counts[mass] - expected[mass]) ** 2 / expected[mass]).sum()
    # chi2.ppf(0.999, df=39) = 72.05 (scipy.stats): fails one seed in a thousand at random.
    assert chi_square < 72.05, chi_square


def test_zero_mass_leaves_are_never_found_even_at_the_edges():
    tree = SumTree(8)
    values = np.array([0.0, 1e-300, 0.0, 0.5, 0.0, 0.0, 0.25, 0.0])
    tree.set_all(values)
    total = tree.total()
    probes = np.concatenate([np.linspace(0, total, 10_001), [np.nextafter(total, 0), total,
                                                             total * (1 + 1e-15)]])
    found = tree.find(probes)
    assert set(found.tolist()) <= {1, 3, 6}
    assert (tree.find(np.array([0.0])) == 1).all()  # The first leaf with any mass.
    for _ in range(100):
        assert set(tree.sample(16, np.random.default_rng(_)).tolist()) <= {1, 3, 6}


def test_sampling_an_empty_tree_is_an_error():
    with pytest.raises(ValueError, match="no mass"):
        SumTree(4).sample(2, np.random.default_rng(0))


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
