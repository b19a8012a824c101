"""A sum tree: proportional sampling over many leaves, vectorised in NumPy.

Prioritized replay (Schaul et al., 2016) draws transition i with probability
p_i / sum_j p_j. The tree stores the p_i as leaves of a complete binary tree whose
every internal node holds the sum of its two children, in one float64 array::

    nodes[1]                      the total
    nodes[2], nodes[3]            its children
    ...
    nodes[C], ..., nodes[2C - 1]  the leaves (C = the next power of two >= size)

Writing K leaves recomputes their ancestors level by level from their children
(never by adding deltas), so every node stays exactly the sum of its children,
whatever the order of writes. Finding B leaves for B values walks all of them down
the tree together: depth = log2(C) NumPy steps for the whole batch, no Python loop
per item. A leaf of zero mass is never found.
"""

import numpy as np


class SumTree:
    """Sums over `size` non-negative leaves, for sampling proportionally to them."""

    def __init__(self, size: int):
        self.size = size
        self.leaf_count = 1 << max(0, int(size - 1).bit_length())
        self.depth = self.leaf_count.bit_length() - 1
        self.nodes = np.zeros(2 * self.leaf_count, np.float64)

    def total(self) -> float:
        return float(self.nodes[1])

    def leaves(self) -> np.ndarray:
        """[size] the leaf values (a view)."""
        return self.nodes[self.leaf_count:self.leaf_count + self.size]

    def get(self, leaves: np.ndarray) -> np.ndarray:
        return self.nodes[np.asarray(leaves) + self.leaf_count]

    def set(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Sets leaves [K] to values [K] (>= 0) and recomputes their ancestors.

        A leaf given twice takes its last value.
        """
        index = np.asarray(leaves, np.int64) + self.leaf_count
        self.nodes[index] = values
        for _ in range(self.depth):
            index >>= 1
            self.nodes[index] = self.nodes[2 * index] + self.nodes[2 * index + 1]

    def set_all(self, values: np.ndarray) -> None:
        """Replaces every leaf ([size] values) and rebuilds all sums: O(size)."""
        self.nodes[:] = 0.0
        self.nodes[self.leaf_count:self.leaf_count + self.size] = values
        low = self.leaf_count  # Nodes [low, 2 low) are one level; their parents [low/2, low).
        while low > 1:
            self.nodes[low // 2:low] = self.nodes[low:2 * low:2] + self.nodes[low + 1:2 * low:2]
            low //= 2

    def find(self, values: np.ndarray) -> np.ndarray:
        """The leaf each of `values` [B] (in [0, total)) falls into: the leaf i with
        sum(leaves before i) <= value < sum(leaves up to i). Never a zero leaf."""
        values = np.array(values, np.float64)
        index = np.ones(len(values), np.int64)
        for _ in range(self.depth):
            left = 2 * index
            left_sum, right_sum = self.nodes[left], self.nodes[left + 1]
            # Right when the value is past the left subtree, or rounding left it
            # with no mass there; never into a subtree of zero mass.
            go_right = ((values >= left_sum) & (right_sum > 0)) | (left_sum <= 0)
            values -= np.where(go_right, left_sum, 0.0)
            index = left + go_right
        return index - self.leaf_count

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """[batch_size] leaves drawn with probability leaf / total, stratified: one
        uniform draw in each of batch_size equal slices of [0, total).

        Raises:
          ValueError: every leaf is zero.
        """
        total = self.total()
        if total <= 0:
            raise ValueError("the sum tree has no mass to sample from")
        values = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.find(np.minimum(values, np.nextafter(total, 0)))
