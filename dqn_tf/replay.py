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
"""

from typing import NamedTuple

import numpy as np

from dqn_tf.errors import UserInputError
from dqn_tf.history import stack_frames

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
    """

    s_tm1: np.ndarray
    a_tm1: np.ndarray
    r_t: np.ndarray
    discount_t: np.ndarray
    s_t: np.ndarray


class ReplayMemory:
    """Uniform experience replay that stores each observation once."""

    def __init__(self, capacity: int, observation_shape: tuple, observation_dtype=np.uint8,
                 *, history_length: int = 4, n_step: int = 1, gamma: float = 0.99,
                 num_envs: int = 1, seed=0):
        """Args:
          capacity: total transitions kept, split evenly over num_envs segments.
          observation_shape: one observation, (84, 84) or (D,).
          observation_dtype: numpy dtype of observations.
          history_length: observations per stacked state (H).
          n_step: reward horizon n of each sampled transition.
          gamma: per-step discount.
          num_envs: number of envs adding in lockstep (one segment each).
          seed: seeds the sampling RNG (an int or a `np.random.SeedSequence`).
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

    def first_kept(self) -> np.ndarray:
        """[E] absolute index of each env's oldest transition still held."""
        return np.maximum(self.num_added - self.segment_capacity, self.restored_from)

    def __len__(self) -> int:
        """Transitions currently stored, over all envs."""
        return int((self.num_added - self.first_kept()).sum())

    def end_open_episodes(self) -> None:
        """Ends each env's game in progress as a truncation, for a resume that starts new
        games: its last transition is then never sampled (its true next state was never
        seen) and no stack reaches back into it from the new game."""
        last = self.num_added - 1
        envs = np.flatnonzero(last >= self.first_kept())
        slots = last[envs] % self.segment_capacity
        changed = envs[~self.episode_end[envs, slots]]
        self.episode_end[changed, last[changed] % self.segment_capacity] = True
        self.unsaved_from[changed] = np.minimum(self.unsaved_from[changed], last[changed])

    def add(self, observation: np.ndarray, action: np.ndarray, reward: np.ndarray,
            terminal: np.ndarray, episode_end: np.ndarray,
            env_mask: np.ndarray | None = None) -> None:
        """Adds one transition for each env where env_mask is True.

        Args:
          observation: [E, *obs_shape] the observation the action was taken at.
          action: [E] int actions.
          reward: [E] float clipped rewards that followed.
          terminal: [E] bool, discount 0 after this transition.
          episode_end: [E] bool, the game ended after this transition.
          env_mask: [E] bool, which envs add (default all).
        """
        envs = np.arange(self.num_envs) if env_mask is None else np.flatnonzero(env_mask)
        if envs.size == 0:
            return
        slots = self.num_added[envs] % self.segment_capacity
        self.frames[envs, slots] = observation[envs]
        self.action[envs, slots] = action[envs]
        self.reward[envs, slots] = reward[envs]
        self.terminal[envs, slots] = terminal[envs]
        self.episode_end[envs, slots] = episode_end[envs]
        self.num_added[envs] += 1

    def _index_ranges(self):
        """Per env, the inclusive range [low, high] of absolute indices that can be sampled."""
        oldest = self.first_kept()
        low = np.where(oldest > 0, oldest + self.history_length - 1, 0)
        high = self.num_added - 1 - self.n_step
        return low, high

    def can_sample(self) -> bool:
        low, high = self._index_ranges()
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

    def sample(self, batch_size: int, max_redraws: int = 100) -> Transitions:
        """Draws `batch_size` valid transitions uniformly at random.

        Raises:
          RuntimeError: nothing can be sampled yet, or no valid index after redraws.
        """
        if not self.can_sample():
            raise RuntimeError(f"replay holds {len(self)} transitions, too few to sample")
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
        both = self.stacks(np.concatenate([env, env]), np.concatenate([index, index + steps]))
        a_tm1 = self.action[env, index % self.segment_capacity]
        return Transitions(s_tm1=both[:batch_size], a_tm1=a_tm1, r_t=r_t,
                           discount_t=discount_t, s_t=both[batch_size:])
