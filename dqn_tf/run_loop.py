"""Acting and the event stream: actor, run loop, episode statistics.

The run loop is a generator of (timestep, actions) events in the style of
dqn_zoo `parts.run_loop`; statistics, summaries and checkpoints consume the
stream instead of being wired into it. Timeline for one env::

    reset -> ts(first) -> actor -> a0 -> env -> ts -> actor -> a1 -> ... -> ts(last)
          -> actor (action ignored) -> env resets -> ts(first) -> ...

While the env computes each step, the loop runs the learner's updates, so on
`AleVectorEnv` (C++ threads) emulation and learning overlap.
"""

from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from dqn_tf.timestep import TimeStep
from dqn_tf.history import HistoryStacker


class EpsilonGreedyActor:
    """Turns TimeSteps into actions: keeps the history, explores with prob. epsilon.

    `greedy_fn(states [E, *stack_shape]) -> [E] int actions` may be a tf.function
    over the training network or a SavedModel signature; the actor does not care.

    Env i explores with its own generator, seeded ``seeds[i]``, and draws exactly
    one uniform and one action from it per step. So env i of a batch of N acts
    as a single env with seed ``seeds[i]`` would (while the greedy policy is fixed).
    """

    def __init__(self, greedy_fn: Callable, *, num_actions: int, observation_shape: tuple,
                 history_length: int, dtype, seeds: Sequence):
        """Args:
          greedy_fn: states [E, *stack_shape] -> [E] int greedy actions.
          num_actions: actions to explore among.
          observation_shape, history_length, dtype: of the observations to stack.
          seeds: one per env, anything `np.random.default_rng` takes (an int or a
            `np.random.SeedSequence` from `dqn_tf.seeding`).
        """
        self._greedy_fn = greedy_fn
        self._num_actions = num_actions
        self._num_envs = len(seeds)
        self.history = HistoryStacker(self._num_envs, observation_shape, history_length, dtype)
        self.rngs = [np.random.default_rng(seed) for seed in seeds]

    def step(self, timestep: TimeStep, epsilon: float) -> np.ndarray:
        """Returns [E] int32 actions for the observations in `timestep`."""
        self.history.reset(timestep.first)
        states = self.history.push(timestep.observation)
        draws = [(rng.random(), rng.integers(self._num_actions)) for rng in self.rngs]
        explore = np.array([u < epsilon for u, _ in draws])
        actions = np.array([a for _, a in draws], np.int32)
        if not explore.all():
            greedy = np.asarray(self._greedy_fn(states), np.int32)
            actions = np.where(explore, actions, greedy)
        return actions


class ReplayRows(NamedTuple):
    """Transitions for the replay, as `ReplayMemory.add` takes them: one lock-step of E
    envs ([E] leading axis), or a chunk of T of them stacked ([T, E], `stack_rows`).

    Attributes:
      observation: [E, *obs_shape] the observation each action was taken at (each frame
        once: the stacks are rebuilt by the replay).
      action: [E] int32 actions.
      reward: [E] float32 rewards that followed, clipped for learning.
      terminal: [E] bool, discount 0 after the transition (game over, or a lost life).
      episode_end: [E] bool, the game ended after the transition (terminated or truncated).
      env_mask: [E] bool, the envs that completed a transition (not those starting a game).
    """

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray
    episode_end: np.ndarray
    env_mask: np.ndarray


def stack_rows(rows: Sequence[ReplayRows]) -> ReplayRows:
    """T lock-steps -> one chunk with a leading [T] axis on every field."""
    return ReplayRows(*(np.stack(field) for field in zip(*rows)))


class TransitionRecorder:
    """Turns the TimeSteps of a batch of envs, and the actions taken, into replay rows.

    A TimeStep completes, for every env not starting a new game, the transition from
    the observation and action remembered at the step before.
    """

    def __init__(self, reward_clip: float, life_loss_terminal: bool):
        """Args:
          reward_clip: learning rewards are clipped to [-reward_clip, reward_clip]; 0 = off.
          life_loss_terminal: a lost life is a terminal for learning (the game goes on).
        """
        self._reward_clip = reward_clip
        self._life_loss_terminal = life_loss_terminal
        self._last_observation = None
        self._last_action = None

    def record(self, timestep: TimeStep) -> ReplayRows | None:
        """The transitions `timestep` completes, or None if it completes none."""
        completed = ~timestep.first
        if self._last_observation is None or not completed.any():
            return None
        reward = timestep.reward
        if self._reward_clip > 0:
            reward = np.clip(reward, -self._reward_clip, self._reward_clip)
        terminal = timestep.terminated
        if self._life_loss_terminal:
            terminal = terminal | timestep.life_lost
        return ReplayRows(self._last_observation, self._last_action, reward, terminal,
                          timestep.last, completed)

    def remember(self, timestep: TimeStep, actions: np.ndarray) -> None:
        """The observations and actions the next TimeStep's transitions start from."""
        self._last_observation = timestep.observation
        self._last_action = actions


def run_loop(actor_step: Callable[[TimeStep], np.ndarray], env,
             learn: Callable[[], None] | None = None) -> Iterator:
    """Yields (timestep, actions) forever; the consumer decides when to stop.

    Args:
      actor_step: maps a TimeStep to [E] actions (e.g. `DqnAgent.step`).
      env: a `BatchedEnv` or `AleVectorEnv`.
      learn: called between sending the actions to the env and collecting the
        next TimeStep (e.g. `DqnAgent.learn`). `AleVectorEnv` emulates in C++
        threads meanwhile, so the update and the env step overlap.
    """
    timestep = env.reset()
    while True:
        actions = actor_step(timestep)
        yield timestep, actions
        env.send(actions)
        if learn is not None:
            learn()
        timestep = env.recv()


class Episode(NamedTuple):
    """A finished game: raw (unclipped) return over all lives, length in agent steps."""

    env_index: int
    episode_return: float
    length: int
    truncated: bool


class EpisodeTracker:
    """Accumulates raw returns per env and reports each game as it ends."""

    def __init__(self, num_envs: int):
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)

    def observe(self, timestep: TimeStep) -> list:
        """Consumes one TimeStep; returns the `Episode`s that ended with it."""
        self._returns[timestep.first] = 0.0
        self._lengths[timestep.first] = 0
        running = ~timestep.first
        self._returns[running] += timestep.reward[running]
        self._lengths[running] += 1
        return [Episode(int(e), float(self._returns[e]), int(self._lengths[e]),
                        bool(timestep.truncated[e]))
                for e in np.flatnonzero(timestep.last)]


def env_quotas(num_episodes: int, num_envs: int) -> np.ndarray:
    """[E] games each env plays so that they add up to `num_episodes`: as even as can
    be, the first envs taking one more."""
    quotas = np.full(num_envs, num_episodes // num_envs)
    quotas[:num_episodes % num_envs] += 1
    return quotas


def run_episodes(actor: EpsilonGreedyActor, env, epsilon: float, *, num_episodes: int = 0,
                 min_agent_steps: int = 0, should_stop: Callable[[], bool] | None = None,
                 on_episode: Callable[[Episode], None] | None = None,
                 on_timestep: Callable[[TimeStep], None] | None = None) -> list | None:
    """Plays full games with `actor` exploring at `epsilon`; returns their `Episode`s.

    Args:
      actor, env: who plays, and where (its games start with a reset).
      epsilon: probability of a random action.
      num_episodes: play this many games. With several envs, env e plays its first
        `env_quotas(num_episodes, E)[e]` games and the games it plays after them are
        not kept: keeping the first games to end, whichever env played them, would
        favour short games (a policy's long games, often its best, would be left out).
      min_agent_steps: if > 0, instead stop once the games that ended add up to at
        least this many agent steps; the game that crosses it is played to its end
        (Dopamine's `Runner._run_one_phase`, after Machado et al., 2018).
      should_stop: checked every agent step; when it returns True, play stops.
      on_episode: called with each kept `Episode` as it ends.
      on_timestep: called with every `TimeStep` (e.g. to record video).

    Returns:
      The episodes, in the order they ended, or None if `should_stop` ended play first.
    """
    if (num_episodes > 0) == (min_agent_steps > 0):
        raise ValueError("pass exactly one of num_episodes and min_agent_steps")
    tracker = EpisodeTracker(env.num_envs)
    quotas = env_quotas(num_episodes, env.num_envs) if num_episodes else None
    episodes, steps = [], 0
    for timestep, _ in run_loop(lambda ts: actor.step(ts, epsilon), env):
        if on_timestep is not None:
            on_timestep(timestep)
        for episode in tracker.observe(timestep):
            if quotas is not None:
                if quotas[episode.env_index] == 0:
                    continue
                quotas[episode.env_index] -= 1
            episodes.append(episode)
            steps += episode.length
            if on_episode is not None:
                on_episode(episode)
        if min_agent_steps and steps >= min_agent_steps:
            return episodes
        if quotas is not None and not quotas.any():
            return episodes
        if should_stop is not None and should_stop():
            return None
