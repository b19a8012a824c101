"""Frame-once circular replay memory with n-step returns (Mnih et al., 2015; Lin, 1992).

Each env's transitions live in their own circular segment of numpy arrays:

  frames[E, C, *obs_shape]   the observation o_j at which action a_j was taken
  action[E, C] int32         a_j
  reward[E, C] float32       r_{j+1}, clipped, received after a_j
  terminal[E, C] bool        the transition ends the MDP (discount 0): game over,
                             or a lost life when lives count as terminals
  episode_end[E, C] bool     the game ended after a_j (terminated or truncated);
                             the next slot starts a new game

Slots are addressed by an absolute, ever-growing index j (slot = j % C), so "is
j still stored?" is a comparison: env e holds j in [first_kept_e, num_added_e), where
first_kept_e = num_added_e - C once the segment has wrapped (or later, after a
restore that found only the newest part of a replay on disk). A stacked state at j
is frames j-H+1..j; a frame is zero when it belongs to an earlier game (an
episode_end lies between it and j) or was never written. Only the newest frame of a
stack and its flags are stored: 1M transitions of Atari frames take 7.06 GB, not 4x
that.

Sampling index i (vectorised over the batch, redrawing only the failures)::

    i-3 i-2 i-1  i   i+1 ... i+n          n-step horizon k = 0..n-1
    [  s_tm1   ]  a_tm1 --r..r--> [ s_t ] (stack at i+n)

  * r_t = sum_{k<h} gamma^k r_{i+k}, where h = n or, if a terminal comes at
    i+k first, k+1; discount_t = 0 if cut by a terminal, else gamma^n.
  * i is rejected when a truncation (episode_end without terminal) lies inside
    the horizon: the true next state was never seen.
  * i must leave room for its stack behind it (once the segment has wrapped)
    and for i+n ahead of it (the next observation must be written).

Prioritized replay (Schaul et al., 2016; `prioritized=True`) draws i with
probability p_i / sum p from a `SumTree` over every (env, slot), leaf e * C + slot.
Only sampleable indices carry mass: an index gets the running maximum priority
when its n-step horizon is complete (n adds after its own) if the rules above
accept it, and loses its mass when its slot is overwritten or its stack's oldest
frame is. The learner sets p_i = (priority_i + epsilon)^alpha from the update's
errors (`update_priorities`); batches come with importance weights
(N P(i))^-beta / max, normalised by the batch's largest.
"""

from typing import NamedTuple

import numpy as np

from dqn_tf.errors import UserInputError
from dqn_tf.history import stack_frames
from dqn_tf.sum_tree import SumTree

# The per-transition arrays, each [num_envs, segment_capacity, ...]: what is saved.
TRANSITION_ARRAYS = ("frames", "action", "reward", "terminal", "episode_end")


class Transitions(NamedTuple):
    """A batch of B sampled n-step transitions (numpy arrays).

    Attributes:
      s_tm1: [B, *stack_shape] states (uint8 for Atari, float32 for vectors).
      a_tm1: [B] int32 actions taken in s_tm1.
      r_t: [B] float32 discounted sum of the next n clipped rewards.
      discount_t: [B] float32, gamma^n, or 0 when the horizon hit a terminal.
      s_t: [B, *stack_shape] states n steps later.
      weight: [B] float32 importance weights (ones for uniform sampling).
      key: [B] int64 leaf of each transition (env * C + slot), for `update_priorities`.
    """

    s_tm1: np.ndarray
    a_tm1: np.ndarray
    r_t: np.ndarray
    discount_t: np.ndarray
    s_t: np.ndarray
    weight: np.ndarray
    key: np.ndarray


class ReplayMemory:
    """Uniform or prioritized experience replay that stores each observation once."""

    def __init__(self, capacity: int, observation_shape: tuple, observation_dtype=np.uint8,
                 *, history_length: int = 4, n_step: int = 1, gamma: float = 0.99,
                 num_envs: int = 1, seed=0, prioritized: bool = False,
                 priority_exponent: float = 0.6, priority_epsilon: float = 1e-6):
        """Args:
          capacity: total transitions kept, split evenly over num_envs segments.
          observation_shape: one observation, (84, 84) or (D,).
          observation_dtype: numpy dtype of observations.
          history_length: observations per stacked state (H).
          n_step: reward horizon n of each sampled transition.
          gamma: per-step discount.
          num_envs: number of envs adding in lockstep (one segment each).
          seed: seeds the sampling RNG (an int or a `np.random.SeedSequence`).
          prioritized: sample proportionally to priorities (a `SumTree`), else uniformly.
          priority_exponent: alpha, p = (priority + priority_epsilon)^alpha.
          priority_epsilon: added to every priority so none is exactly zero.
        """
        if capacity < num_envs:
            raise UserInputError(f"replay capacity {capacity} < num_envs {num_envs}: "
                                 "raise --replay_capacity")
        self.segment_capacity = capacity // num_envs
        self.capacity = self.segment_capacity * num_envs
        self.observation_shape = tuple(observation_shape)
        self.observation_dtype = np.dtype(observation_dtype)
        self.history_length = history_length
        self.n_step = n_step
        self.gamma = gamma
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        e, c = num_envs, self.segment_capacity
        # np.zeros maps untouched pages lazily: memory grows as the buffer fills.
        self.frames = np.zeros((e, c) + self.observation_shape, self.observation_dtype)
        self.action = np.zeros((e, c), np.int32)
        self.reward = np.zeros((e, c), np.float32)
        self.terminal = np.zeros((e, c), bool)
        self.episode_end = np.zeros((e, c), bool)
        self.num_added = np.zeros(e, np.int64)  # Absolute index of each env's next slot.
        # Absolute index of each env's oldest transition still held (older ones are gone).
        self.restored_from = np.zeros(e, np.int64)
        # Per env, the lowest absolute index whose slot changed since the memory was last
        # written to or read from disk: `add` appends from num_added on, so only
        # `end_open_episodes` lowers it. What a checkpoint must write is [unsaved_from,
        # num_added).
        self.unsaved_from = np.zeros(e, np.int64)
        self._discounts = gamma ** np.arange(n_step, dtype=np.float64)
        self.tree = SumTree(e * c) if prioritized else None
        self.priority_exponent = priority_exponent
        self.priority_epsilon = priority_epsilon
        self.max_priority = 1.0  # Running max of p: what a new transition gets.
        # The tree is brought up to date lazily, before it is read (`_flush`): per env,
        # num_added and the lowest sampleable index when it last was.
        self._flushed_added = np.zeros(e, np.int64)
        self._flushed_low = np.zeros(e, np.int64)

    def first_kept(self) -> np.ndarray:
        """[E] absolute index of each env's oldest transition still held."""
        return np.maximum(self.num_added - self.segment_capacity, self.restored_from)

    def __len__(self) -> int:
        """Transitions currently stored, over all envs."""
        return int((self.num_added - self.first_kept()).sum())

    def end_open_episodes(self, streams: np.ndarray | None = None) -> None:
        """Ends each env's game in progress as a truncation, for a resume that starts new
        games (or an actor that restarted its own: `streams`, its segments): its last
        transition is then never sampled (its true next state was never seen) and no
        stack reaches back into it from the new game."""
        last = self.num_added - 1
        envs = np.flatnonzero(last >= self.first_kept())
        if streams is not None:
            envs = np.intersect1d(envs, streams)
        slots = last[envs] % self.segment_capacity
        changed = envs[~self.episode_end[envs, slots]]
        self.episode_end[changed, last[changed] % self.segment_capacity] = True
        self.unsaved_from[changed] = np.minimum(self.unsaved_from[changed], last[changed])

    def add(self, observation: np.ndarray, action: np.ndarray, reward: np.ndarray,
            terminal: np.ndarray, episode_end: np.ndarray,
            env_mask: np.ndarray | None = None, streams: np.ndarray | None = None) -> None:
        """Adds one transition for each env where env_mask is True.

        Args:
          observation: [E, *obs_shape] the observation the action was taken at.
          action: [E] int actions.
          reward: [E] float clipped rewards that followed.
          terminal: [E] bool, discount 0 after this transition.
          episode_end: [E] bool, the game ended after this transition.
          env_mask: [E] bool, which envs add (default all).
          streams: [E] the segment each env's transition goes to (default env e to
            segment e): an actor of several feeds its own segments.
        """
        rows = (np.arange(len(action)) if env_mask is None else np.flatnonzero(env_mask))
        if rows.size == 0:
            return
        envs = rows if streams is None else np.asarray(streams)[rows]
        slots = self.num_added[envs] % self.segment_capacity
        self.frames[envs, slots] = observation[rows]
        self.action[envs, slots] = action[rows]
        self.reward[envs, slots] = reward[rows]
        self.terminal[envs, slots] = terminal[rows]
        self.episode_end[envs, slots] = episode_end[rows]
        self.num_added[envs] += 1

    def _flush(self) -> None:
        """Brings the tree up to date with the adds since it was last read, in one write.

        Per env, two ranges of absolute indices can have changed: from n steps before
        the first add since the last flush up to the newest (slots written, horizons
        completed) and the indices that lost their stack's oldest frame since. Each
        gets the max priority if it can be sampled now, else no mass. Indices already
        sampleable before keep their priorities."""
        if self.tree is None or np.array_equal(self.num_added, self._flushed_added):
            return
        c, now = self.segment_capacity, self.num_added
        low_now = self._low(self.first_kept())
        floor = np.maximum(now - c, 0)  # Older indices' slots hold newer ones.
        added_from = np.maximum(self._flushed_added - self.n_step, floor)
        lost_from = np.maximum(self._flushed_low, floor)
        env_a, index_a = _ranges(added_from, now)
        env_b, index_b = _ranges(lost_from, np.maximum(np.minimum(low_now, now), lost_from))
        env, index = np.concatenate([env_a, env_b]), np.concatenate([index_a, index_b])
        leaves, first = np.unique(env * c + index % c, return_index=True)
        env, index = env[first], index[first]
        candidate = np.flatnonzero((index >= low_now[env]) & (index <= now[env] - 1 - self.n_step))
        valid, *_ = self._horizon(env[candidate], index[candidate])
        values = np.zeros(len(leaves))
        values[candidate[valid]] = self.max_priority
        self.tree.set(leaves, values)
        self._flushed_added, self._flushed_low = now.copy(), low_now

    def _absolute_index(self, env: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """The absolute index held in `slot` of `env` (the newest that maps to it)."""
        last = self.num_added[env] - 1
        return last - (last - slot) % self.segment_capacity

    def sampleable(self) -> tuple:
        """Every (env, index) that can be sampled now: ([K] envs, [K] indices)."""
        low, high = self._index_ranges()
        env, index = _ranges(low, high + 1)
        valid, *_ = self._horizon(env, index)
        return env[valid], index[valid]

    def rebuild_priorities(self, leaves: np.ndarray | None = None) -> None:
        """Sets the tree from [E * C] leaf priorities, or (None) gives every sampleable
        transition the max priority; either way only sampleable transitions keep mass
        (a restore may have lost some). For a memory restored from disk."""
        if self.tree is None:
            return
        env, index = self.sampleable()
        keys = env * self.segment_capacity + index % self.segment_capacity
        values = np.zeros(self.tree.size)
        values[keys] = self.max_priority if leaves is None else leaves[keys]
        self.tree.set_all(values)
        self._flushed_added = self.num_added.copy()
        self._flushed_low = self._low(self.first_kept())

    def priorities(self) -> np.ndarray:
        """[E * C] float64 leaf priorities (a copy), to save beside the replay."""
        self._flush()
        return self.tree.leaves().copy()

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> None:
        """Sets the sampled transitions' priorities from the update's errors.

        Args:
          keys: [B] the `Transitions.key` of a batch.
          priorities: [B] non-negative errors (|TD error|, or a quantile loss).
        """
        if self.tree is None:
            return
        self._flush()
        p = (np.asarray(priorities, np.float64) + self.priority_epsilon) ** self.priority_exponent
        live = self.tree.get(keys) > 0  # Not overwritten since it was sampled.
        self.tree.set(keys[live], p[live])
        self.max_priority = max(self.max_priority, float(p.max()))

    def _index_ranges(self):
        """Per env, the inclusive range [low, high] of absolute indices that can be sampled."""
        return self._low(self.first_kept()), self.num_added - 1 - self.n_step

    def _low(self, first_kept: np.ndarray) -> np.ndarray:
        """The lowest index with room for its stack when the oldest held is first_kept."""
        return np.where(first_kept > 0, first_kept + self.history_length - 1, 0)

    def can_sample(self) -> bool:
        low, high = self._index_ranges()
        if self.tree is not None:
            self._flush()
            return bool((high >= low).any()) and self.tree.total() > 0
        return bool((high >= low).any())

    def _draw(self, size: int):
        """Draws (env, absolute index) pairs uniformly over all candidate indices."""
        low, high = self._index_ranges()
        counts = np.maximum(high - low + 1, 0)
        flat = self.rng.integers(0, counts.sum(), size=size)
        ends = np.cumsum(counts)
        env = np.searchsorted(ends, flat, side="right")
        index = low[env] + flat - (ends[env] - counts[env])
        return env, index

    def _horizon(self, env: np.ndarray, index: np.ndarray):
        """n-step bookkeeping for (env, index) pairs.

        Returns:
          valid [B] bool, steps h [B] int, r_t [B] float32, discount_t [B] float32.
        """
        k = np.arange(self.n_step)
        slots = (index[:, None] + k) % self.segment_capacity
        terminal = self.terminal[env[:, None], slots]
        episode_end = self.episode_end[env[:, None], slots]
        cut = terminal.any(axis=1)
        steps = np.where(cut, terminal.argmax(axis=1) + 1, self.n_step)
        inside = k[None, :] < steps[:, None]
        valid = ~(episode_end & ~terminal & inside).any(axis=1)
        rewards = self.reward[env[:, None], slots] * inside
        r_t = (rewards @ self._discounts).astype(np.float32)
        discount_t = np.where(cut, 0.0, self.gamma ** self.n_step).astype(np.float32)
        return valid, steps, r_t, discount_t

    def stacks(self, env: np.ndarray, index: np.ndarray) -> np.ndarray:
        """States [B, *stack_shape] ending at absolute indices `index` of envs `env`."""
        back = np.arange(self.history_length - 1, -1, -1)  # H-1, ..., 0 (oldest first)
        absolute = index[:, None] - back[None, :]
        slots = absolute % self.segment_capacity
        # A frame is from an earlier game when an episode_end lies at or after it and
        # before the newest frame; reversed cumulative OR over the older frames.
        ends = self.episode_end[env[:, None], slots[:, :-1]]
        earlier_game = np.logical_or.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
        keep = np.ones(absolute.shape, bool)
        keep[:, :-1] = ~earlier_game
        keep &= absolute >= 0
        # One gather of whole contiguous frames into [B, H, *obs_shape].
        frames = self.frames[env[:, None], slots]
        if not keep.all():
            frames[~keep] = 0
        return stack_frames(frames)

    def sample(self, batch_size: int, importance_exponent: float = 0.0,
               max_redraws: int = 100) -> Transitions:
        """Draws `batch_size` valid transitions: uniformly, or in proportion to their
        priorities (stratified over the tree's total).

        Args:
          batch_size: transitions to draw.
          importance_exponent: beta of the prioritized weights (N P(i))^-beta / max;
            normalised by the batch's largest, they are (P(i) / min_batch P)^-beta.
          max_redraws: uniform sampling redraws invalid indices at most this often.

        Raises:
          RuntimeError: nothing can be sampled yet, or no valid index after redraws.
        """
        if not self.can_sample():
            raise RuntimeError(f"replay holds {len(self)} transitions, too few to sample")
        c = self.segment_capacity
        if self.tree is not None:
            keys = self.tree.sample(batch_size, self.rng)
            env, slot = np.divmod(keys, c)
            index = self._absolute_index(env, slot)
            valid, steps, r_t, discount_t = self._horizon(env, index)
            if not valid.all():  # Mass only ever sits on sampleable transitions.
                raise RuntimeError(f"prioritized replay drew invalid indices {index[~valid]}")
            probability = self.tree.get(keys)
            weight = (probability / probability.min()) ** -importance_exponent
        else:
            env, index = self._draw(batch_size)
            valid, steps, r_t, discount_t = self._horizon(env, index)
            for _ in range(max_redraws):
                if valid.all():
                    break
                bad = np.flatnonzero(~valid)
                env[bad], index[bad] = self._draw(bad.size)
                valid[bad], steps[bad], r_t[bad], discount_t[bad] = self._horizon(
                    env[bad], index[bad])
            else:
                raise RuntimeError("no valid transition found; is every episode truncated?")
            keys, weight = env * c + index % c, np.ones(batch_size)
        both = self.stacks(np.concatenate([env, env]), np.concatenate([index, index + steps]))
        a_tm1 = self.action[env, index % c]
        return Transitions(s_tm1=both[:batch_size], a_tm1=a_tm1, r_t=r_t,
                           discount_t=discount_t, s_t=both[batch_size:],
                           weight=weight.astype(np.float32), key=keys)


def _ranges(low: np.ndarray, high: np.ndarray) -> tuple:
    """Every (row, index) with low[row] <= index < high[row]: ([K] rows, [K] indices),
    row-major; an empty range where high <= low."""
    counts = np.maximum(high - low, 0)
    rows = np.repeat(np.arange(len(low)), counts)
    starts = np.repeat(low - (np.cumsum(counts) - counts), counts)
    return rows, starts + np.arange(counts.sum())
