"""Test doubles: a scripted ALE-like gymnasium env (no ROMs needed).

`FakeAleEnv` plays a script: raw frame k (counted from reset, 1-based for steps)
has a screen filled with `screen(k)`, gives `reward(k)`, and the game ends at
`game_over_frame`; lives drop at the frames in `life_loss_frames`. It mimics
what gymnasium's AtariPreprocessing reads from an ALE env.
"""

import gymnasium as gym
import numpy as np


class _FakeAle:
    def __init__(self, env):
        self._env = env

    def lives(self):
        return self._env.lives

    def getScreenGrayscale(self, buffer):  # noqa: N802 (ALE's name)
        buffer[...] = self._env.screen(self._env.frame)

    def getScreenRGB(self):  # noqa: N802
        return np.full((210, 160, 3), self._env.screen(self._env.frame), np.uint8)


class FakeAleEnv(gym.Env):
    """Scripted stand-in for `gym.make('ALE/...', frameskip=1)`."""

    def __init__(self, *, screen=lambda k: k % 256, reward=lambda k: 1.0,
                 game_over_frame=10_000, truncate_frame=None, life_loss_frames=(),
                 lives=3, action_meanings=("NOOP", "FIRE", "LEFT", "RIGHT")):
        self.observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(action_meanings))
        self._frameskip = 1
        self.screen = screen
        self._reward = reward
        self._game_over_frame = game_over_frame
        self._truncate_frame = truncate_frame
        self._life_loss_frames = set(life_loss_frames)
        self._initial_lives = lives
        self._action_meanings = list(action_meanings)
        self.ale = _FakeAle(self)
        self.frame = 0
        self.lives = lives
        self.actions = []  # Every raw-frame action, for assertions.
        self.resets = 0

    def get_action_meanings(self):
        return self._action_meanings

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.frame = 0
        self.lives = self._initial_lives
        self.resets += 1
        return self.ale.getScreenRGB(), {"lives": self.lives}

    def step(self, action):
        self.frame += 1
        self.actions.append(int(action))
        if self.frame in self._life_loss_frames:
            self.lives -= 1
        terminated = self.frame >= self._game_over_frame
        truncated = self._truncate_frame is not None and self.frame >= self._truncate_frame
        return (self.ale.getScreenRGB(), self._reward(self.frame), terminated, truncated,
                {"lives": self.lives})


class ScriptedGame:
    """A `BatchedEnv` game whose episodes have fixed lengths; obs = global step count.

    Observations are [1] float32 vectors holding a running counter, so tests can
    tell every observation apart. Episode i lasts `lengths[i % len(lengths)]` steps
    and ends terminated, or truncated when `truncate` is set.
    """

    def __init__(self, lengths=(5,), truncate=False, offset=0.0):
        self.num_actions = 2
        self.action_meanings = ("0", "1")
        self.observation_shape = (1,)
        self.observation_dtype = np.float32
        self._lengths = lengths
        self._truncate = truncate
        self._episode = -1
        self._t = 0
        self._counter = offset
        self.log = []

    def reset(self):
        self._episode += 1
        self._t = 0
        self._counter += 1
        self.log.append(("reset", self._counter))
        return np.array([self._counter], np.float32)

    def step(self, action):
        self._t += 1
        self._counter += 1
        self.log.append(("step", int(action), self._counter))
        end = self._t >= self._lengths[self._episode % len(self._lengths)]
        terminated = end and not self._truncate
        truncated = end and self._truncate
        return np.array([self._counter], np.float32), 1.0, terminated, truncated, False

    def close(self):
        pass
