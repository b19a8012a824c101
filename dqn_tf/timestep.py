"""What a batch of environments returns each step: the one type envs, actors and the
learner's feeders share (so none of them needs to import another to speak it)."""

from typing import NamedTuple

import numpy as np


class TimeStep(NamedTuple):
    """What a batch of environments returns; every field has leading dim num_envs.

    Attributes:
      observation: [E, 84, 84] uint8 frames (Atari) or [E, D] float32 (vector envs).
      reward: [E] float32 raw (unclipped) reward summed over the action repeat.
      first: [E] bool, the observation starts a new game (reward is then 0).
      terminated: [E] bool, the game is over (MDP terminal).
      truncated: [E] bool, the game was cut by the time limit (not an MDP terminal).
      life_lost: [E] bool, a life was lost during this step (Atari only).
    """

    observation: np.ndarray
    reward: np.ndarray
    first: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    life_lost: np.ndarray

    @property
    def last(self) -> np.ndarray:
        """[E] bool: the game ended with this step and the env resets next step."""
        return self.terminated | self.truncated
