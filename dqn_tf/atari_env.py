"""Environments: ALE games preprocessed as in Mnih et al. (2015), and plain gymnasium envs.

The pipeline for an Atari game, in order (see README "Implementation notes"):

  1. ``gym.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=p,
     full_action_space=False, max_num_frames_per_episode=108_000)``.
     Sticky actions act per emulator frame, beneath our action repeat.
  2. Random no-op starts: n raw frames after each real reset, n uniform in
     0..noop_max-1, rewards dropped (ale-py's ``AtariVectorEnv`` rule, which the
     gymnasium backend follows).
  3. Optional fire reset: the last of those frames is FIRE, or a single FIRE
     frame when n is 0 (ale-py's rule again: n-1 no-ops, then FIRE).
  4. Action repeat: the action is held for ``action_repeat`` raw frames, raw
     rewards are summed, repetition stops early at game over.
  5. Max-pool of the last two raw frames of the repeat (Atari sprites flicker).
  6. Grayscale as the ALE computes it; 7. resize to 84x84 with ``cv2.INTER_AREA``.
     Steps 4-7 are gymnasium ``AtariPreprocessing``.
  8. A lost life is reported as ``life_lost``; the game goes on.
  9. Rewards leave here raw; the agent clips its learning copy.
 10. The 108,000-frame cap is ``truncated``, never ``terminated``.

Timeline of one agent step with action repeat 4 (frames f0..f3 are raw frames)::

    obs_t --a_t--> f0 f1 [f2 f3] --max-pool, gray, resize--> obs_{t+1}
                   r = r(f0)+r(f1)+r(f2)+r(f3)

Two backends give the same frames (tested bit for bit with no-ops and sticky
actions off, FIRE reset on and off; with no-ops or sticky actions on they follow
the same rules on different random streams):

  * ``ale_vector`` (default for Atari): ale-py's ``AtariVectorEnv``, steps 1-7
    in C++ with one thread per env up to the core count, GIL released.
  * ``gymnasium``: gymnasium's ``AtariPreprocessing`` per game, stepped in
    turn in this process. The evaluator uses it for its RGB video frames.

Every env of a batch gets its own seed (`make_env(seeds=...)`, from `dqn_tf.seeding`),
used at its next reset; `reseed` sets new ones, e.g. when a resumed run restarts its games.

Everything is batched over ``num_envs`` environments with "next-step" autoreset:
after a step that ends a game (terminated or truncated), the next ``step`` call
ignores that env's action and returns the first observation of a new game with
``first=True`` and reward 0.
"""

import difflib
import os
import re
from typing import Sequence

import ale_py
import gymnasium as gym
import numpy as np

from ale_py.vector_env import AtariVectorEnv

from dqn_tf.errors import UserInputError
from dqn_tf.timestep import TimeStep  # noqa: F401  (the type its envs return)

gym.register_envs(ale_py)
# The ALE prints a banner ("A.L.E: Arcade Learning Environment ... Powered by Stella") per
# process at Info level; its warnings and errors still show.
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)
ENV_BACKENDS = ("ale_vector", "gymnasium")

ATARI_FRAME_SHAPE = (84, 84)
NATURE_MAX_FRAMES_PER_EPISODE = 108_000  # 30 minutes of play at 60 Hz.


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _atari_game_ids() -> dict:
    """Maps normalised short names ('spaceinvaders') to 'ALE/SpaceInvaders-v5'."""
    ids = {}
    for env_id in gym.envs.registry:
        match = re.fullmatch(r"ALE/(\w+)-v5", env_id)
        if match:
            ids[_normalise(match.group(1))] = env_id
    return ids


def resolve_env_id(name: str) -> str:
    """Turns a user's game name into a registered gymnasium id.

    Accepts short names in any case or separator style (``SpaceInvaders``,
    ``space_invaders``, ``pong``) and full ids (``ALE/Pong-v5``, ``CartPole-v1``).

    Raises:
      UserInputError: no such environment; the message lists the closest names.
    """
    if name in gym.envs.registry:
        return name
    atari = _atari_game_ids()
    key = _normalise(name)
    if key in atari:
        return atari[key]
    # A full id in the wrong case ('cartpole-v1', 'ale/pong-v5').
    by_lower = {env_id.lower(): env_id for env_id in gym.envs.registry}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    names = sorted({atari[k].split("/")[1][:-3] for k in atari})
    candidates = names + sorted(i for i in gym.envs.registry if not is_atari(i))
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    close += [atari[k].split("/")[1][:-3]
              for k in difflib.get_close_matches(key, list(atari), n=3, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:3]
    hint = f"did you mean {', '.join(close)}?" if close else "see README for the game list"
    raise UserInputError(f"unknown environment --env={name!r}: {hint}")


def is_atari(env_id: str) -> bool:
    """True for any id registered by ale-py ('ALE/Pong-v5', 'PongNoFrameskip-v4')."""
    entry_point = gym.envs.registry[env_id].entry_point
    return isinstance(entry_point, str) and entry_point.startswith("ale_py")


class _AleVectorStart(gym.Wrapper):
    """Starts each game as ale-py's ``AtariVectorEnv`` (the training backend) does.

    Beneath ``AtariPreprocessing``, which then reads the first frame after these raw
    frames: n no-op frames, n uniform in 0..noop_max-1, the last replaced by FIRE (or
    one FIRE frame when n is 0) with `fire_action`; their rewards are dropped. So the
    evaluator, which uses this backend, plays the games the agent learned on.
    """

    def __init__(self, env: gym.Env, noop_max: int, fire_action: int | None):
        super().__init__(env)
        self._noop_max = noop_max
        self._fire_action = fire_action

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        draw = (int(self.env.unwrapped.np_random.integers(0, self._noop_max))
                if self._noop_max > 0 else 0)
        fire = [] if self._fire_action is None else [self._fire_action]
        for action in [0] * max(draw - len(fire), 0) + fire:
            observation, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:  # As ale-py: a new game, the start goes on.
                observation, info = self.env.reset()
        return observation, info


class AtariGame:
    """One ALE game through steps 1-10 of the module docstring.

    Observations are [84, 84] uint8 frames; rewards are raw.
    """

    def __init__(self, env_id: str, *, sticky_action_prob: float, noop_max: int,
                 action_repeat: int, fire_reset: bool, max_frames_per_episode: int,
                 seed: int, env: gym.Env | None = None):
        """Args:
          env_id: a registered ALE id such as 'ALE/SpaceInvaders-v5'.
          sticky_action_prob: per-frame probability of repeating the previous action.
          noop_max: upper bound of random no-op frames after reset (0 disables).
          action_repeat: raw frames per agent step.
          fire_reset: press FIRE once after each reset (games that need it to start).
          max_frames_per_episode: raw-frame cap, reported as truncation.
          seed: seeds the emulator and the no-op draws.
          env: an already built raw env with frameskip 1 (tests pass a fake here).
        """
        if env is None:
            env = gym.make(env_id, frameskip=1, repeat_action_probability=sticky_action_prob,
                           full_action_space=False,
                           max_num_frames_per_episode=max_frames_per_episode)
        self.action_meanings = tuple(env.unwrapped.get_action_meanings())
        self.num_actions = int(env.action_space.n)
        self.observation_shape = ATARI_FRAME_SHAPE
        self.observation_dtype = np.uint8
        fire_action = (self.action_meanings.index("FIRE")
                       if fire_reset and "FIRE" in self.action_meanings else None)
        # The game start is ours: AtariPreprocessing would draw 1..noop_max no-ops and
        # knows no FIRE; ale-py's vector env draws 0..noop_max-1 with FIRE last.
        self._env = gym.wrappers.AtariPreprocessing(
            _AleVectorStart(env, noop_max, fire_action), noop_max=0,
            frame_skip=action_repeat, screen_size=84, terminal_on_life_loss=False,
            grayscale_obs=True, scale_obs=False)
        self._seed = seed
        self._lives = 0

    def reseed(self, seed: int) -> None:
        """Seeds the next reset (emulator and no-op draws) with `seed`."""
        self._seed = seed

    def reset(self) -> np.ndarray:
        """Starts a new game; returns its first [84, 84] uint8 frame."""
        frame, info = self._env.reset(seed=self._seed)
        self._seed = None  # Seed once; later games continue the env's RNG stream.
        self._lives = int(info.get("lives", 0))
        return frame

    def step(self, action: int):
        """Plays one agent step.

        Returns:
          (frame [84,84] uint8, raw reward float, terminated, truncated, life_lost).
        """
        frame, reward, terminated, truncated, info = self._env.step(int(action))
        lives = int(info.get("lives", self._lives))
        life_lost = lives < self._lives
        self._lives = lives
        return frame, float(reward), bool(terminated), bool(truncated), life_lost

    def rgb_screen(self) -> np.ndarray:
        """The raw [210, 160, 3] uint8 screen a person would see."""
        return self._env.unwrapped.ale.getScreenRGB()

    def close(self):
        self._env.close()


class VectorObservationGame:
    """A gymnasium env with a 1-D Box observation and discrete actions (e.g. CartPole).

    Passes observations and rewards through untouched (as float32); no lives.
    """

    def __init__(self, env_id: str, *, seed: int):
        self._env = gym.make(env_id)
        space = self._env.observation_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise UserInputError(
                f"--env={env_id} has observation space {space}; dqn_tf supports ALE games "
                "and envs with a 1-D Box observation: pick one of those")
        if not isinstance(self._env.action_space, gym.spaces.Discrete):
            raise UserInputError(
                f"--env={env_id} has action space {self._env.action_space}; DQN needs "
                "discrete actions: pick an env with a Discrete action space")
        self.action_meanings = tuple(str(i) for i in range(self._env.action_space.n))
        self.num_actions = int(self._env.action_space.n)
        self.observation_shape = tuple(space.shape)
        self.observation_dtype = np.float32
        self._seed = seed

    def reseed(self, seed: int) -> None:
        self._seed = seed

    def reset(self) -> np.ndarray:
        observation, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return np.asarray(observation, np.float32)

    def step(self, action: int):
        observation, reward, terminated, truncated, _ = self._env.step(int(action))
        return (np.asarray(observation, np.float32), float(reward), bool(terminated),
                bool(truncated), False)

    def rgb_screen(self) -> np.ndarray:
        raise NotImplementedError("video is only recorded for Atari games")

    def close(self):
        self._env.close()


class BatchedEnv:
    """Steps ``num_envs`` games in this process with next-step autoreset.

    Every game exposes ``reset() -> obs`` and ``step(a) -> (obs, reward,
    terminated, truncated, life_lost)``; this class turns them into `TimeStep`s.
    """

    def __init__(self, games: Sequence):
        self.games = list(games)
        self.num_envs = len(self.games)
        self.num_actions = self.games[0].num_actions
        self.action_meanings = self.games[0].action_meanings
        self.observation_shape = self.games[0].observation_shape
        self.observation_dtype = self.games[0].observation_dtype
        e = self.num_envs
        self._observation = np.zeros((e,) + tuple(self.observation_shape),
                                     self.observation_dtype)
        self._needs_reset = np.ones(e, bool)
        self._actions = None  # Set by `send`, used by `recv`.

    def reseed(self, seeds: Sequence[int]) -> None:
        """The next `reset` seeds game i with seeds[i] (later games continue its stream)."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        for game, seed in zip(self.games, seeds):
            game.reseed(int(seed))

    def reset(self) -> TimeStep:
        """Starts a new game in every env."""
        self._needs_reset[:] = True
        return self.step(np.zeros(self.num_envs, np.int32))

    def send(self, actions: np.ndarray) -> None:
        """Hands over the next actions; `recv` steps the games (in this thread)."""
        self._actions = actions

    def recv(self) -> TimeStep:
        """Steps every game with the actions given to `send`."""
        return self.step(self._actions)

    def step(self, actions: np.ndarray) -> TimeStep:
        """Applies actions[e] to env e; an env whose game just ended restarts instead."""
        e = self.num_envs
        reward = np.zeros(e, np.float32)
        first = self._needs_reset.copy()
        terminated = np.zeros(e, bool)
        truncated = np.zeros(e, bool)
        life_lost = np.zeros(e, bool)
        for i, game in enumerate(self.games):
            if first[i]:
                self._observation[i] = game.reset()
            else:
                (self._observation[i], reward[i], terminated[i], truncated[i],
                 life_lost[i]) = game.step(actions[i])
        self._needs_reset = terminated | truncated
        return TimeStep(self._observation.copy(), reward, first, terminated, truncated,
                        life_lost)

    def close(self):
        for game in self.games:
            game.close()


class AleVectorEnv:
    """``num_envs`` Atari games stepped by ale-py's C++ ``AtariVectorEnv``.

    Same interface and `TimeStep`s as `BatchedEnv`; ALE's own next-step
    autoreset matches ours. Frames stay single ([E, 84, 84], stack_num=1):
    stacking is the actor's and the replay's job. Env i is seeded ``seeds[i]``.
    """

    def __init__(self, env_id: str, *, seeds: Sequence[int], sticky_action_prob: float,
                 noop_max: int, action_repeat: int, fire_reset: bool,
                 max_frames_per_episode: int):
        num_envs = len(seeds)
        self._env = AtariVectorEnv(
            gym.spec(env_id).kwargs["game"], num_envs,
            num_threads=min(num_envs, os.cpu_count() or 1),
            max_num_frames_per_episode=max_frames_per_episode,
            repeat_action_probability=sticky_action_prob, img_height=ATARI_FRAME_SHAPE[0],
            img_width=ATARI_FRAME_SHAPE[1], grayscale=True, stack_num=1,
            frameskip=action_repeat, maxpool=True, noop_max=noop_max, episodic_life=False,
            reward_clipping=False, use_fire_reset=fire_reset)
        self.num_envs = num_envs
        self.action_meanings = tuple(a.name for a in self._env.ale.get_action_set())
        self.num_actions = len(self.action_meanings)
        self.observation_shape = ATARI_FRAME_SHAPE
        self.observation_dtype = np.uint8
        self._seeds = None
        self.reseed(seeds)
        self._lives = np.zeros(num_envs, np.int32)
        self._first = np.ones(num_envs, bool)

    def _timestep(self, observation, reward, terminated, truncated, lives, first):
        life_lost = (lives < self._lives) & ~first
        self._lives = lives
        return TimeStep(observation[:, 0], reward.astype(np.float32), first,
                        terminated.astype(bool), truncated.astype(bool), life_lost)

    def reseed(self, seeds: Sequence[int]) -> None:
        """The next `reset` seeds env i with seeds[i] (later games continue its stream)."""
        seeds = np.asarray(seeds, np.int64)
        if seeds.shape != (self.num_envs,) or not ((seeds >= 0) & (seeds < 2**31)).all():
            raise ValueError(f"need {self.num_envs} seeds in [0, 2**31), got {seeds.tolist()}")
        self._seeds = seeds  # ALE's vector env takes int32 seeds; -1 would mean unseeded.

    def reset(self) -> TimeStep:
        """Starts a new game in every env (seeded as the last `reseed` said)."""
        observation, info = self._env.reset(seed=self._seeds)
        self._seeds = None  # Later resets continue each env's random stream.
        ended = np.zeros(self.num_envs, bool)
        self._first = ended.copy()
        return self._timestep(observation, np.zeros(self.num_envs), ended, ended,
                              info["lives"], np.ones(self.num_envs, bool))

    def send(self, actions: np.ndarray) -> None:
        """Starts stepping env e with actions[e] in ALE's C++ threads and returns at once."""
        self._env.send(np.asarray(actions, np.int32))

    def recv(self) -> TimeStep:
        """Waits for the step that `send` started; an env whose game just ended restarts."""
        first = self._first
        observation, reward, terminated, truncated, info = self._env.recv()
        self._first = terminated | truncated
        return self._timestep(observation, reward, terminated, truncated, info["lives"], first)

    def step(self, actions: np.ndarray) -> TimeStep:
        """Applies actions[e] to env e; an env whose game just ended restarts instead."""
        self.send(actions)
        return self.recv()

    def close(self):
        self._env.close()


def make_env(env_id: str, *, seeds: Sequence[int] = (0,), sticky_action_prob: float = 0.25,
             noop_max: int = 30, action_repeat: int = 4, fire_reset: bool = False,
             max_frames_per_episode: int = NATURE_MAX_FRAMES_PER_EPISODE,
             backend: str = "gymnasium"):
    """Builds ``len(seeds)`` copies of an env (any name `resolve_env_id` takes).

    Env i is seeded ``seeds[i]`` (ints in [0, 2**31), e.g. `seeding.int_seeds`). The
    Atari arguments and `backend` (one of `ENV_BACKENDS`) are ignored for non-Atari envs.

    Returns:
      An `AleVectorEnv` or a `BatchedEnv`: the same interface.
    """
    if backend not in ENV_BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; expected one of {ENV_BACKENDS}")
    env_id = resolve_env_id(env_id)
    seeds = [int(seed) for seed in seeds]
    if is_atari(env_id) and backend == "ale_vector":
        return AleVectorEnv(env_id, seeds=seeds, sticky_action_prob=sticky_action_prob,
                            noop_max=noop_max, action_repeat=action_repeat,
                            fire_reset=fire_reset,
                            max_frames_per_episode=max_frames_per_episode)
    if is_atari(env_id):
        games = [AtariGame(env_id, sticky_action_prob=sticky_action_prob, noop_max=noop_max,
                           action_repeat=action_repeat, fire_reset=fire_reset,
                           max_frames_per_episode=max_frames_per_episode, seed=seed)
                 for seed in seeds]
    else:
        games = [VectorObservationGame(env_id, seed=seed) for seed in seeds]
    return BatchedEnv(games)
