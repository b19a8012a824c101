"""The acting history: the last `history_length` observations of each env.

Mnih et al. (2015) feed the network the 4 most recent preprocessed frames. This
stacker holds them for a batch of envs, history-major:

  frames [84, 84] uint8   -> states [num_envs, history_length, 84, 84] uint8
  vectors [D] float32     -> states [num_envs, D * history_length] float32

At a game's first observation the env's history is zeroed, so the stack never
mixes two games, and frames "before the start" are zeros, exactly as
`replay.ReplayMemory` rebuilds them.
"""

import numpy as np


def stack_shape(observation_shape: tuple, history_length: int) -> tuple:
    """Shape of one stacked state: (H, 84, 84) for frames, (D * H,) for vectors.

    Frames stay history-major (channels-first) on the host: replay then gathers
    whole contiguous 84x84 frames (12x faster than writing a channels-last
    stack), and the network moves the history axis last inside its graph.
    """
    if len(observation_shape) == 1:
        return (observation_shape[0] * history_length,)
    return (history_length,) + tuple(observation_shape)


def stack_frames(frames: np.ndarray) -> np.ndarray:
    """[B, H, *obs_shape] oldest-first observations -> [B, *stack_shape] states.

    The one place that fixes the state layout, shared by acting and replay.
    Frames are already in that layout and are returned as they are (no copy).
    """
    if frames.ndim == 3:  # Vector observations [B, H, D] -> [B, D * H].
        return np.ascontiguousarray(frames.transpose(0, 2, 1)).reshape(frames.shape[0], -1)
    return frames


class HistoryStacker:
    """Keeps the last `history_length` observations of `num_envs` envs."""

    def __init__(self, num_envs: int, observation_shape: tuple, history_length: int,
                 dtype=np.uint8):
        self._frames = np.zeros((num_envs, history_length) + tuple(observation_shape), dtype)

    def reset(self, env_mask: np.ndarray) -> None:
        """Zeroes the history of envs where env_mask[e] ([E] bool) is True."""
        self._frames[env_mask] = 0

    def push(self, observations: np.ndarray) -> np.ndarray:
        """Appends observations [E, *obs_shape]; returns states [E, *stack_shape]."""
        self._frames[:, :-1] = self._frames[:, 1:]
        self._frames[:, -1] = observations
        return self.states()

    def states(self) -> np.ndarray:
        """[E, *stack_shape] copies of the current stacks."""
        states = stack_frames(self._frames)
        return states.copy() if states is self._frames else states
