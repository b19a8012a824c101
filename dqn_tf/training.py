"""What a training run's two loops share, from its config to its end (`dqn_tf.run`
chooses the loop: one process, or `dqn_tf.distributed`'s remote actors):

  build_learner     networks, optimizer, replay -> `agent.Learner` (knows no env, no actor)
  build_agent       the single-process agent: a learner and an actor over its network
  restore           resumes from the newest usable checkpoint
  RunOutputs        what a run shows: TensorBoard, results files, progress bar, progress.json
  Evaluator         the periodic evaluation, owed until it has run; exports the best policy
  Bookkeeping       between steps: summaries, stop rules, evaluations, checkpoints

  new_run_state     the run's own state (evaluations, recent returns, running time)

The single-process loop (`dqn_tf.run`) steps its envs with updates while they emulate
(`run_loop`); the distributed loop (`dqn_tf.distributed`) receives chunks of
transitions from Ray actors. Both feed the same learner and the same bookkeeping, so
checkpoints, resumes, evaluations and outputs are the same. This module imports
neither loop.
"""

import collections
import dataclasses
import json
import os
import re
import sys
import time

from absl import logging
import numpy as np
from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import tensorflow as tf
import tqdm

from dqn_tf import agent as agent_lib
from dqn_tf import atari_env, checkpointing, export, networks, optimizers, replay, results
from dqn_tf import run_loop, schedules, seeding, summaries
from dqn_tf import config as config_lib
from dqn_tf.errors import OutputWriteError, UserInputError
from dqn_tf.history import stack_shape

STATE_VERSION = 2  # 2: seeds from dqn_tf.seeding, incremental replay chunks.
LOSS_TAGS = {"huber": "Loss/Huber", "mse": "Loss/MSE",  # TensorBoard tag of each --loss,
             "quantile": "Loss/QuantileHuber"}  # and of the quantile head's loss.


# ---------------------------------------------------------------- building

def build_env(config: config_lib.Config, seeds: list):
    """The training env's kind (game, preprocessing, backend), one game per seed."""
    return atari_env.make_env(
        config.env, seeds=seeds, sticky_action_prob=config.sticky_action_prob,
        noop_max=config.noop_max, action_repeat=config.action_repeat,
        fire_reset=config.fire_reset, max_frames_per_episode=config.max_frames_per_episode,
        backend=config.env_backend)


def build_learner(config: config_lib.Config, observation_shape: tuple, observation_dtype,
                  num_actions: int, num_streams: int) -> agent_lib.Learner:
    """Networks, optimizer, replay and learner, all from `config`; the replay has one
    segment per stream of transitions (an env of this process, or of a remote actor)."""
    tf.keras.utils.set_random_seed(seeding.int_seed(config.seed, "network"))
    shape = stack_shape(observation_shape, config.history_length)
    run_config = dataclasses.asdict(config)
    online = networks.from_run_config(run_config, num_actions, shape, "online")
    target = networks.from_run_config(run_config, num_actions, shape, "target")
    memory = replay.ReplayMemory(
        config.replay_capacity, observation_shape, observation_dtype,
        history_length=config.history_length, n_step=config.n_step, gamma=config.gamma,
        num_envs=num_streams, seed=seeding.seed_sequence(config.seed, "replay"),
        prioritized=config.prioritized, priority_exponent=config.priority_exponent,
        priority_epsilon=config.priority_epsilon)
    return agent_lib.Learner(
        online_network=online, target_network=target,
        optimizer=optimizers.make_optimizer(config.optimizer, config.learning_rate,
                                            config.optimizer_epsilon, config.batch_size),
        replay=memory, batch_size=config.batch_size, min_replay_size=config.min_replay_size,
        train_every=config.train_every, target_update_period=config.target_update_period,
        loss=config.loss, double_q=config.double_q,
        importance_exponent=(
            (config.importance_exponent_start, config.importance_exponent_end,
             config.importance_exponent_steps) if config.prioritized else (0.0, 0.0, 0)),
        max_grad_norm=config.max_grad_norm, augment=config.augment,
        augment_seed=seeding.int_seed(config.seed, "augment"),
        jit_compile=config.jit_compile, jit_act=config.jit_act)


def build_agent(config: config_lib.Config, env) -> agent_lib.DqnAgent:
    """The single-process agent for `env`: a learner and an actor over its network."""
    learner = build_learner(config, env.observation_shape, env.observation_dtype,
                            env.num_actions, config.num_envs)
    return agent_lib.DqnAgent(
        learner, actor_seeds=[seeding.seed_sequence(config.seed, "actor", i)
                              for i in range(config.num_envs)],
        epsilon_start=config.epsilon_start, epsilon_end=config.epsilon_end,
        epsilon_decay_steps=config.epsilon_decay_steps, reward_clip=config.reward_clip,
        life_loss_terminal=config.life_loss_terminal,
        epsilon_decay_from_start=config.epsilon_decay_from_start)


def epsilon_schedule(config: config_lib.Config, agent_steps: int) -> float:
    """The training epsilon at `agent_steps` (the same schedule `DqnAgent` follows)."""
    return schedules.linear_epsilon(
        agent_steps, start=config.epsilon_start, end=config.epsilon_end,
        decay_agent_steps=config.epsilon_decay_steps, warmup_agent_steps=config.min_replay_size,
        decay_from_start=config.epsilon_decay_from_start)


# ---------------------------------------------------------------- signals and restore

class StopRequest:
    """SIGINT/SIGTERM: the first asks for a clean stop, a second one exits at once."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            print("\nsecond interrupt: exiting without a checkpoint", file=sys.stderr)
            os._exit(130)
        self.requested = True
        logging.warning("signal %d: stopping after this step with a checkpoint", signum)


def check_checkpoint_state(state: dict, config: config_lib.Config) -> None:
    """Raises UserInputError if a checkpoint's state.json is not from a run like this one."""
    if state.get("version") != STATE_VERSION:
        raise UserInputError(f"state.json has format version {state.get('version')!r}, this "
                             f"dqn_tf reads version {STATE_VERSION}")
    saved = config_lib.with_defaults(state.get("config") or {})
    if saved.get("env") != config.env:
        raise UserInputError(f"it was trained on --env={saved.get('env')}, not --env={config.env}")
    wanted = json.loads(json.dumps(config.learning_fields()))
    differ = [k for k in sorted(wanted) if saved.get(k) != wanted[k]]
    if differ:
        raise UserInputError(f"it was trained with --{differ[0]}={saved.get(differ[0])}, not "
                             f"--{differ[0]}={wanted[differ[0]]}")


def restore(config: config_lib.Config, learner: agent_lib.Learner,
            checkpointer: checkpointing.Checkpointer, set_state=None) -> dict | None:
    """Restores the learner from the newest usable checkpoint; returns the checkpoint's
    state, or None for a new run. `set_state` takes the checkpoint's "agent" part
    (default: the learner's; the single-process agent's restores its actor's RNGs too).

    The games that were in progress are not saved: the replay ends them as
    truncations, and the caller's envs or actors start new ones.
    """
    path, state = checkpointer.restore_latest(
        check_state=lambda saved: check_checkpoint_state(saved, config))
    if state is None:
        logging.info("starting a new run in %s", config.output_dir)
        return None
    (set_state or learner.set_state)(state["agent"])
    learner.replay.end_open_episodes()
    print(f"Resuming from {path} at agent step {learner.agent_steps:,}.")
    missing = config.min_replay_size - len(learner.replay)
    if missing > 0:
        # Without its replay (--nocheckpoint_replay) a resumed run refills before it learns.
        print(f"The replay holds {len(learner.replay):,} transitions: the next {missing:,} "
              f"agent steps refill it to --min_replay_size and count toward --num_steps, "
              f"{missing // config.train_every:,} updates fewer than an uninterrupted run.")
    return state


def first_line(error: Exception) -> str:
    """The short reason of an OSError or TF error ("No space left on device").

    TF messages look like "{{function_node ...}} /path/file; File too large [Op:SaveV2]":
    the reason is kept, the node name, path and op are dropped.
    """
    text = str(getattr(error, "strerror", None) or getattr(error, "message", None) or error)
    text = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", text).strip()
    text = (text.splitlines() or [type(error).__name__])[0]
    return text.rsplit("; ", 1)[-1].strip()


# ---------------------------------------------------------------- outputs

class RunOutputs:
    """What a run shows while it trains: TensorBoard scalars, the results files, the
    progress bar and progress.json, all on an agent-step x-axis.

    On resume, what a killed process logged past the checkpoint is dropped first
    (TensorBoard and results files), so every step appears once.
    """

    def __init__(self, config: config_lib.Config, learner: agent_lib.Learner,
                 restart_step: int, recent_returns: list, run_seconds_before: float = 0.0):
        """Args:
          config: the run's config.
          learner: for its counters, metrics and replay size.
          restart_step: the checkpoint's step, or -1 for a new run.
          recent_returns: the last (up to 100) training games' returns, from the checkpoint.
          run_seconds_before: the running time of the processes before this one, up to
            the checkpoint it resumes from.
        """
        self._started = time.perf_counter()
        self._run_seconds_before = run_seconds_before
        self._config = config
        self._learner = learner
        logdir = os.path.join(config.output_dir, "tensorboard")
        # A killed process may have flushed points past the step we restart from (with no
        # checkpoint, that is every point): drop them so no step is plotted twice.
        dropped = summaries.discard_events_after(logdir, restart_step,
                                                 rewritten_tags=("config",))
        if dropped:
            print(f"Dropped {dropped} TensorBoard events that an earlier process logged past "
                  f"its last checkpoint (agent step {max(restart_step, 0):,}).")
        self.results = results.ResultsLog(config.output_dir, restart_step)
        self.writer = summaries.TensorBoardWriter(logdir)
        rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(config).items())
        self.writer.text("config", "|flag|value|\n|-|-|\n" + rows, step=learner.agent_steps)
        # Emulator frames per agent step: the action repeat, for Atari games only.
        self.frames_per_step = config.action_repeat if atari_env.is_atari(config.env) else 1
        self.recent_returns = collections.deque(recent_returns, maxlen=100)
        self.loss_tag = LOSS_TAGS["quantile" if config.head == "quantile" else config.loss]
        self.bar = tqdm.tqdm(total=config.num_steps, initial=learner.agent_steps, unit="step",
                             disable=not config.progress, dynamic_ncols=True, mininterval=1.0)
        self._next_summary = _next_multiple(learner.agent_steps, config.summary_every)
        self._last_time, self._last_steps = time.perf_counter(), learner.agent_steps
        self.steps_per_second = 0.0

    def run_seconds(self) -> float:
        """The run's running time: this process's, plus the earlier processes' up to the
        checkpoint this one resumed from (time a killed process spent past its last
        checkpoint is not counted: that work is redone, and counted, here)."""
        return self._run_seconds_before + time.perf_counter() - self._started

    def game_ended(self, steps: int, episode: run_loop.Episode) -> None:
        self.recent_returns.append(episode.episode_return)
        self.writer.scalars(steps, {"Train/EpisodeReturn": episode.episode_return,
                                    "Train/EpisodeLength": episode.length})
        self.results.train_game(steps, steps * self.frames_per_step, episode.episode_return,
                                episode.length)

    def maybe_summarise(self, steps: int, epsilon_now, last_eval_now) -> None:
        """Scalars, the bar and progress.json, every --summary_every agent steps;
        `epsilon_now()` and `last_eval_now()` are asked only then."""
        if steps < self._next_summary:
            return
        config, epsilon, last_eval = self._config, epsilon_now(), last_eval_now()
        now = time.perf_counter()
        self.steps_per_second = (steps - self._last_steps) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_steps = now, steps
        stored = len(self._learner.replay)
        scalars = {"Train/AverageStepsPerSecond": self.steps_per_second,
                   "Train/Epsilon": epsilon, "Replay/Size": stored}
        if self.recent_returns:
            scalars["Train/AverageReturns"] = float(np.mean(self.recent_returns))
        means = self._learner.pop_metrics()  # Over every update since the last summary.
        if means:
            scalars.update({self.loss_tag: means["loss"], "Q/Mean": means["mean_q"],
                            "Q/Max": means["max_q"], "Loss/GradNorm": means["grad_norm"]})
        self.writer.scalars(steps, scalars)
        self.write_progress("running", epsilon, last_eval)
        # No loss before the first update: the warm-up shows how far it has come.
        learning = (f"{means['loss']:.4f}" if means else "-" if
                    stored >= config.min_replay_size else
                    f"warm-up {stored:,}/{config.min_replay_size:,}")
        self.bar.set_postfix({"sps": f"{self.steps_per_second:.0f}", "eps": f"{epsilon:.3f}",
                              "return": (f"{self.recent_returns[-1]:.1f}"
                                         if self.recent_returns else "-"),
                              "loss": learning}, refresh=False)
        self.bar.update(steps - self.bar.n)
        self._next_summary = _next_multiple(steps, config.summary_every)

    def evaluation(self, steps: int, returns: np.ndarray, seconds: float) -> None:
        config = self._config
        mean, std = float(returns.mean()), float(returns.std())
        self.writer.scalars(steps, {"Eval/AverageReturns": mean, "Eval/StdReturns": std})
        self.results.evaluation({
            "agent_steps": steps, "frames": steps * self.frames_per_step,
            "returns": returns.tolist(), "mean": mean, "std": std,
            "protocol": "training env", "epsilon": config.eval_epsilon,
            "episodes": config.eval_episodes, "min_agent_steps": config.eval_steps,
            "envs": min(config.eval_envs, config.eval_episodes),
            "sticky_action_prob": config.sticky_action_prob, "noop_max": config.noop_max,
            "max_frames_per_episode": config.max_frames_per_episode,
            "seconds": round(seconds, 1)})
        self.bar.write(f"eval at step {steps:,}: return {mean:.1f} +- {std:.1f} over "
                       f"{len(returns)} games")

    def write_progress(self, state: str, epsilon: float, last_eval: dict) -> None:
        results.write_progress(self._config.output_dir, {
            "state": state, "agent_steps": self._learner.agent_steps,
            "num_steps": self._config.num_steps, "steps_per_second": self.steps_per_second,
            "epsilon": epsilon, **last_eval,
            "recent_train_return": (float(np.mean(self.recent_returns))
                                    if self.recent_returns else None),
            "run_seconds": round(self.run_seconds(), 1), "time": time.time()})

    def flush(self) -> None:
        """Every point logged so far is on disk (before a checkpoint is)."""
        self.writer.flush()
        self.results.flush()

    def close(self) -> None:
        self.bar.update(self._learner.agent_steps - self.bar.n)
        self.bar.close()
        self.writer.flush()
        self.writer.close()
        self.results.close()


def _next_multiple(step: int, period: int) -> float:
    return (step // period + 1) * period if period > 0 else float("inf")


# ---------------------------------------------------------------- evaluation

def evaluation_owed(steps: int, *, eval_every: int, num_steps: int,
                    last_eval_step: int | None) -> bool:
    """Whether an evaluation is owed at agent step `steps`.

    One is due at each multiple of `eval_every` (the first step at or past it, with
    several envs or actors) and at the end of training; it is owed until it has run.
    So an evaluation a signal stopped is owed again when the run resumes.
    """
    if eval_every <= 0:
        return False
    due = steps if steps >= num_steps else (steps // eval_every) * eval_every
    return due > 0 and (last_eval_step is None or last_eval_step < due)


class Evaluator:
    """The periodic evaluation: greedy-plus-epsilon games with the online network, in an
    env of its own, seeded by the agent step; exports `saved_model/best` when one beats
    the best so far."""

    def __init__(self, config: config_lib.Config, learner: agent_lib.Learner,
                 outputs: RunOutputs, run_state: dict, export_policy, stop: StopRequest):
        self._config = config
        self._learner = learner
        self._outputs = outputs
        self._run_state = run_state
        self._export_policy = export_policy
        self._stop = stop
        envs = min(config.eval_envs, config.eval_episodes)  # More would play for nothing.
        self.env = build_env(config, seeding.int_seeds(config.seed, "eval_env", envs))

    def owed(self, steps: int) -> bool:
        return not self._stop.requested and evaluation_owed(
            steps, eval_every=self._config.eval_every, num_steps=self._config.num_steps,
            last_eval_step=self._run_state["last_eval_step"])

    def play(self, steps: int) -> np.ndarray | None:
        """Plays full games with the online network (`--eval_episodes` games, or games
        adding up to `--eval_steps` agent steps); returns their raw returns, or None if a
        signal stopped it (it is redone on resume). The games and the exploration are
        seeded by the agent step, so the evaluation at step t plays the same games
        whether or not the run was resumed before t."""
        config, env = self._config, self.env
        env.reseed(seeding.int_seeds(config.seed, "eval_env", env.num_envs, generation=steps))
        actor = run_loop.EpsilonGreedyActor(
            self._learner.greedy_actions, num_actions=env.num_actions,
            observation_shape=env.observation_shape, history_length=config.history_length,
            dtype=env.observation_dtype,
            seeds=[seeding.seed_sequence(config.seed, "eval_actor", i, generation=steps)
                   for i in range(env.num_envs)])
        budget = (dict(min_agent_steps=config.eval_steps) if config.eval_steps else
                  dict(num_episodes=config.eval_episodes))
        episodes = run_loop.run_episodes(actor, env, config.eval_epsilon,
                                         should_stop=lambda: self._stop.requested, **budget)
        return None if episodes is None else np.array([e.episode_return for e in episodes])

    def run(self, steps: int) -> float | None:
        """Evaluates at `steps`; returns the mean return, or None if a signal stopped it."""
        config = self._config
        budget = (f"games adding up to {config.eval_steps:,} agent steps" if config.eval_steps
                  else f"{config.eval_episodes} games")
        self._outputs.bar.write(f"evaluating at step {steps:,}: {budget}, epsilon "
                                f"{config.eval_epsilon}")
        started = time.perf_counter()
        returns = self.play(steps)
        if returns is None:
            self._outputs.bar.write(f"evaluation at step {steps:,} stopped by a signal: the "
                                    "resumed run redoes it")
            return None
        mean, seconds = float(returns.mean()), time.perf_counter() - started
        self._run_state.update(last_eval_return=mean, last_eval_step=steps,
                               eval_seconds=self._run_state["eval_seconds"] + seconds)
        self._outputs.evaluation(steps, returns, seconds)
        best = self._run_state["best_eval_return"]
        if best is None or mean > best:
            self._run_state["best_eval_return"] = mean
            if config.export_every_eval:
                self._export_policy("best", {"eval_return_mean": mean})
        return mean

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------- between steps

class Bookkeeping:
    """What happens between steps, whichever loop runs them: summaries, the stop rules,
    evaluations, checkpoints and exports."""

    def __init__(self, config: config_lib.Config, learner: agent_lib.Learner,
                 checkpointer: checkpointing.Checkpointer, run_state: dict,
                 stop: StopRequest, env_info: dict, actor_state=lambda: {},
                 epsilon=None):
        """Args:
          config: the run's config.
          learner: what learns.
          checkpointer: writes the checkpoints.
          run_state: the run's own state (best and last evaluations, recent returns).
          stop: the signal request.
          env_info: `export.env_metadata` of the training env.
          actor_state: () -> more agent state to checkpoint (the single-process actor's
            RNGs).
          epsilon: () -> the training epsilon now (default: the schedule).
        """
        self.config = config
        self.learner = learner
        self.checkpointer = checkpointer
        self.run_state = run_state
        self.stop = stop
        self._env_info = env_info
        self._actor_state = actor_state
        self.epsilon = epsilon or (lambda: epsilon_schedule(config, learner.agent_steps))
        restart_step = learner.agent_steps if run_state.get("restored") else -1
        self.outputs = RunOutputs(config, learner, restart_step,
                                  run_state["recent_train_returns"], run_state["run_seconds"])
        self.evaluator = Evaluator(config, learner, self.outputs, run_state,
                                   self.export_policy, stop)
        self._next_checkpoint = _next_multiple(learner.agent_steps, config.checkpoint_every)
        self._games_since_check = False  # A game ended since the stop rule last looked.

    def last_eval(self) -> dict:
        return {"last_eval_return": self.run_state["last_eval_return"],
                "last_eval_step": self.run_state["last_eval_step"]}

    def game_ended(self, episode: run_loop.Episode) -> None:
        self.outputs.game_ended(self.learner.agent_steps, episode)
        self._games_since_check = True

    def before_the_loop(self) -> bool:
        """An evaluation a signal stopped is owed at the checkpoint's step: play it first.
        Returns True when training is already complete."""
        steps, finished = self.learner.agent_steps, self.learner.agent_steps >= \
            self.config.num_steps
        if self.evaluator.owed(steps):
            if self.evaluator.run(steps) is not None and finished:
                self.save_checkpoint()
        return finished

    def after_steps(self) -> bool:
        """Everything due now that the learner counts `agent_steps`; True when training
        is done (the budget, a stop rule, or a signal)."""
        config, steps, outputs = self.config, self.learner.agent_steps, self.outputs
        outputs.maybe_summarise(steps, self.epsilon, self.last_eval)
        done = steps >= config.num_steps or self.stop.requested
        recent = outputs.recent_returns
        check_returns, self._games_since_check = self._games_since_check, False
        if (config.stop_at_train_return is not None and check_returns and len(recent) == 100
                and not done and np.mean(recent) >= config.stop_at_train_return):
            outputs.bar.write(f"mean return of the last 100 training games "
                              f"{np.mean(recent):.2f} >= --stop_at_train_return "
                              f"{config.stop_at_train_return}: stopping at agent step "
                              f"{steps:,} ({steps * outputs.frames_per_step:,} frames)")
            done = True
        if self.evaluator.owed(steps):
            mean = self.evaluator.run(steps)
            if mean is None:
                done = True
            elif (config.stop_at_eval_return is not None
                    and mean >= config.stop_at_eval_return):
                outputs.bar.write(f"eval return {mean:.1f} >= --stop_at_eval_return "
                                  f"{config.stop_at_eval_return}: stopping")
                done = True
        if steps >= self._next_checkpoint or done:
            self.save_checkpoint()
            self._next_checkpoint = _next_multiple(steps, config.checkpoint_every)
        return done

    def save_checkpoint(self) -> str:
        learner = self.learner
        self.run_state["recent_train_returns"] = list(self.outputs.recent_returns)
        self.run_state["run_seconds"] = self.outputs.run_seconds()
        run = {k: v for k, v in self.run_state.items() if k != "restored"}
        state = {"version": STATE_VERSION, "agent": dict(learner.get_state(),
                                                         **self._actor_state()),
                 "run": run, "config": dataclasses.asdict(self.config)}
        self.outputs.flush()  # Every point up to this step is on disk before the checkpoint.
        learner.before_checkpoint()
        try:
            return self.checkpointer.save(learner.agent_steps, state)
        except (OSError, tf.errors.OpError) as error:
            kept = self.checkpointer.complete_checkpoints()
            survivor = (f"the previous checkpoint {kept[-1]} is intact" if kept
                        else "there is no earlier checkpoint")
            raise OutputWriteError(
                f"could not write the checkpoint at agent step {learner.agent_steps:,} "
                f"({first_line(error)}); "
                f"{survivor}; free disk space and rerun the same command to resume") from None

    def export_policy(self, name: str, extra: dict | None = None) -> str:
        config = self.config
        try:
            return export.export_saved_model(
                self.learner.online_network,
                os.path.join(config.output_dir, "saved_model", name), env=self._env_info,
                agent_steps=self.learner.agent_steps, config=dataclasses.asdict(config),
                extra=extra)
        except (OSError, tf.errors.OpError) as error:
            raise OutputWriteError(f"could not write the SavedModel saved_model/{name} "
                                   f"({first_line(error)}); free disk space and rerun the "
                                   "same command to resume") from None

    def finish(self) -> dict:
        """The final export (unless stopped by a signal); returns the run's statistics."""
        if not self.stop.requested:
            self.export_policy("final")
        self.outputs.write_progress("stopped" if self.stop.requested else "finished",
                                    self.epsilon(), self.last_eval())
        recent = self.outputs.recent_returns
        return {"agent_steps": self.learner.agent_steps, "updates": self.learner.updates,
                "target_syncs": self.learner.target_syncs,
                "stopped_by_signal": self.stop.requested,
                "last_eval_return": self.run_state["last_eval_return"],
                "best_eval_return": self.run_state["best_eval_return"],
                "recent_train_return": float(np.mean(recent)) if recent else None,
                "run_seconds": round(self.outputs.run_seconds(), 1),
                "eval_seconds": round(self.run_state["eval_seconds"], 1)}

    def close(self) -> None:
        self.outputs.close()
        self.evaluator.close()


# ---------------------------------------------------------------- run state

def new_run_state(restored: dict | None) -> dict:
    """The run's own state: defaults, updated from a restored checkpoint's."""
    run_state = {"best_eval_return": None, "last_eval_return": None, "last_eval_step": None,
                 "recent_train_returns": [], "run_seconds": 0.0, "eval_seconds": 0.0,
                 "restored": restored is not None}
    run_state.update((restored or {}).get("run", {}))
    return run_state
