"""Trains DQN: `python -m dqn_tf.main --env=SpaceInvaders [--flagfile=flags/<preset>.cfg]`.

Wiring only (dqn_zoo `run_atari.py` style): flags -> Config -> env, networks,
replay, agent -> the run loop, whose events feed statistics, TensorBoard,
evaluation, checkpoints and SavedModel exports.
"""

import collections
import dataclasses
import json
import os
import re
import signal
import sys
import time

from absl import app, flags, logging
import numpy as np
import tensorflow as tf
import tqdm

from dqn_tf import agent as agent_lib
from dqn_tf import atari_env, checkpointing, export, networks, optimizers, replay, run_loop
from dqn_tf import results, seeding, summaries, threads
from dqn_tf import config as config_lib
from dqn_tf.errors import OutputWriteError, UserInputError
from dqn_tf.history import stack_shape

_STATE_VERSION = 2  # 2: seeds from dqn_tf.seeding, incremental replay chunks.
EXIT_STOPPED_BY_SIGNAL = 75  # EX_TEMPFAIL: checkpointed; rerun the same command to resume.
LOSS_TAGS = {"huber": "Loss/Huber", "mse": "Loss/MSE",  # TensorBoard tag of each --loss,
             "quantile": "Loss/QuantileHuber"}  # and of the quantile head's loss.


def build_env(config: config_lib.Config, seeds: list) -> atari_env.BatchedEnv:
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
        max_grad_norm=config.max_grad_norm, jit_compile=config.jit_compile,
        jit_act=config.jit_act)


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


class _StopRequest:
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
    if state.get("version") != _STATE_VERSION:
        raise UserInputError(f"state.json has format version {state.get('version')!r}, this "
                             f"dqn_tf reads version {_STATE_VERSION}")
    saved = state.get("config") or {}
    if saved.get("env") != config.env:
        raise UserInputError(f"it was trained on --env={saved.get('env')}, not --env={config.env}")
    wanted = json.loads(json.dumps(config.learning_fields()))
    differ = [k for k in sorted(wanted) if saved.get(k) != wanted[k]]
    if differ:
        raise UserInputError(f"it was trained with --{differ[0]}={saved.get(differ[0])}, not "
                             f"--{differ[0]}={wanted[differ[0]]}")


def _first_line(error: Exception) -> str:
    """The short reason of an OSError or TF error ("No space left on device").

    TF messages look like "{{function_node ...}} /path/file; File too large [Op:SaveV2]":
    the reason is kept, the node name, path and op are dropped.
    """
    text = str(getattr(error, "strerror", None) or getattr(error, "message", None) or error)
    text = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", text).strip()
    text = (text.splitlines() or [type(error).__name__])[0]
    return text.rsplit("; ", 1)[-1].strip()


def _config_markdown(config: config_lib.Config) -> str:
    rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(config).items())
    return "|flag|value|\n|-|-|\n" + rows


def evaluate(agent: agent_lib.DqnAgent, env: atari_env.BatchedEnv, config: config_lib.Config,
             should_stop=None) -> np.ndarray | None:
    """Plays full games with the online network (`--eval_episodes` games, or games adding
    up to `--eval_steps` agent steps); returns their raw returns, or None if
    `should_stop()` turned True first (a signal: the evaluation is redone on resume).

    The games and the exploration are seeded by the agent step, so the evaluation at
    step t plays the same games whether or not the run was resumed before t.
    """
    step = agent.agent_steps
    env.reseed(seeding.int_seeds(config.seed, "eval_env", env.num_envs, generation=step))
    actor = run_loop.EpsilonGreedyActor(
        agent.greedy_actions, num_actions=env.num_actions,
        observation_shape=env.observation_shape, history_length=config.history_length,
        dtype=env.observation_dtype,
        seeds=[seeding.seed_sequence(config.seed, "eval_actor", i, generation=step)
               for i in range(env.num_envs)])
    budget = (dict(min_agent_steps=config.eval_steps) if config.eval_steps else
              dict(num_episodes=config.eval_episodes))
    episodes = run_loop.run_episodes(actor, env, config.eval_epsilon, should_stop=should_stop,
                                     **budget)
    return None if episodes is None else np.array([e.episode_return for e in episodes])


def train(config: config_lib.Config) -> dict:
    """Runs (or resumes) training as `config` says; returns final statistics.

    The run directory is locked for the whole run (`checkpointing.RunLock`).
    """
    threads.set_tf_threads(config.intra_op_threads, config.jit_compile)
    lock = checkpointing.prepare_run_directory(config.output_dir, config.learning_fields(),
                                               config.overwrite)
    try:
        return _train_locked(config)
    finally:
        lock.release()


def restore(config: config_lib.Config, agent: agent_lib.DqnAgent, env,
            checkpointer: checkpointing.Checkpointer) -> dict | None:
    """Resumes `agent` from the newest usable checkpoint; returns its run state, or None
    for a new run.

    The games that were in progress are not saved: the envs start new ones, on
    streams of their own, and the replay ends the old ones as truncations.
    """
    path, state = checkpointer.restore_latest(
        check_state=lambda saved: check_checkpoint_state(saved, config))
    if state is None:
        logging.info("starting a new run in %s", config.output_dir)
        return None
    agent.set_state(state["agent"])
    agent.replay.end_open_episodes()
    env.reseed(seeding.int_seeds(config.seed, "env", config.num_envs,
                                 generation=agent.agent_steps))
    print(f"Resuming from {path} at agent step {agent.agent_steps:,}.")
    missing = config.min_replay_size - len(agent.replay)
    if missing > 0:
        # Without its replay (--nocheckpoint_replay) a resumed run refills before it learns.
        print(f"The replay holds {len(agent.replay):,} transitions: the next {missing:,} agent "
              f"steps refill it to --min_replay_size and count toward --num_steps, "
              f"{missing // config.train_every:,} updates fewer than an uninterrupted run.")
    return state["run"]


def evaluation_owed(steps: int, *, eval_every: int, num_steps: int,
                    last_eval_step: int | None) -> bool:
    """Whether an evaluation is owed at agent step `steps`.

    One is due at each multiple of `eval_every` (the first step at or past it, with
    several envs) and at the end of training; it is owed until it has run. So an
    evaluation a signal stopped is owed again when the run resumes.
    """
    if eval_every <= 0:
        return False
    due = steps if steps >= num_steps else (steps // eval_every) * eval_every
    return due > 0 and (last_eval_step is None or last_eval_step < due)


def _train_locked(config: config_lib.Config) -> dict:
    # Signals are caught from the start: one during a long restore still stops with a
    # checkpoint and exit 75, not with the default handler.
    stop = _StopRequest()
    previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _train_with_signals(config, stop)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _train_with_signals(config: config_lib.Config, stop: _StopRequest) -> dict:
    env = build_env(config, seeding.int_seeds(config.seed, "env", config.num_envs))
    agent = build_agent(config, env)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(config.output_dir, "checkpoints"), agent.learner.trackables(),
        config.keep_checkpoints, replay=agent.replay if config.checkpoint_replay else None)
    logdir = os.path.join(config.output_dir, "tensorboard")
    run_state = {"best_eval_return": None, "last_eval_return": None, "last_eval_step": None,
                 "recent_train_returns": []}
    restored = restore(config, agent, env, checkpointer)
    run_state.update(restored or {})
    # A killed process may have flushed points past the step we restart from (with no
    # checkpoint, that is every point): drop them so no step is plotted twice.
    restart_step = agent.agent_steps if restored is not None else -1
    dropped = summaries.discard_events_after(logdir, restart_step, rewritten_tags=("config",))
    results_log = results.ResultsLog(config.output_dir, restart_step)
    # Emulator frames per agent step: the action repeat, for Atari games only.
    frames_per_step = config.action_repeat if atari_env.is_atari(config.env) else 1
    if dropped:
        print(f"Dropped {dropped} TensorBoard events that an earlier process logged past its "
              f"last checkpoint (agent step {max(restart_step, 0):,}).")
    print("Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in
                                          dataclasses.asdict(config).items()))
    eval_env = build_env(config, seeding.int_seeds(config.seed, "eval_env", 1))
    writer = summaries.TensorBoardWriter(logdir)
    writer.text("config", _config_markdown(config), step=agent.agent_steps)
    env_info = export.env_metadata(dataclasses.asdict(config), env.action_meanings,
                                   env.observation_shape)

    def save_checkpoint():
        run_state["recent_train_returns"] = list(recent_returns)
        state = {"version": _STATE_VERSION, "agent": agent.get_state(), "run": run_state,
                 "config": dataclasses.asdict(config)}
        writer.flush()  # Every point up to this step is on disk before the checkpoint is.
        results_log.flush()
        try:
            return checkpointer.save(agent.agent_steps, state)
        except (OSError, tf.errors.OpError) as error:
            kept = checkpointer.complete_checkpoints()
            survivor = (f"the previous checkpoint {kept[-1]} is intact" if kept
                        else "there is no earlier checkpoint")
            raise OutputWriteError(
                f"could not write the checkpoint at agent step {agent.agent_steps:,} "
                f"({_first_line(error)}); "
                f"{survivor}; free disk space and rerun the same command to resume") from None

    def export_policy(name, extra=None):
        try:
            return export.export_saved_model(
                agent.online_network, os.path.join(config.output_dir, "saved_model", name),
                env=env_info, agent_steps=agent.agent_steps, config=dataclasses.asdict(config),
                extra=extra)
        except (OSError, tf.errors.OpError) as error:
            raise OutputWriteError(f"could not write the SavedModel saved_model/{name} "
                                   f"({_first_line(error)}); free disk space and rerun the "
                                   "same command to resume") from None

    def next_multiple(step, period):
        return (step // period + 1) * period if period > 0 else float("inf")

    def run_evaluation(steps):
        """Evaluates at `steps`; returns the mean return, or None if a signal stopped it."""
        budget = (f"games adding up to {config.eval_steps:,} agent steps" if config.eval_steps
                  else f"{config.eval_episodes} games")
        bar.write(f"evaluating at step {steps:,}: {budget}, epsilon {config.eval_epsilon}")
        returns = evaluate(agent, eval_env, config, should_stop=lambda: stop.requested)
        if returns is None:
            bar.write(f"evaluation at step {steps:,} stopped by a signal: the resumed run "
                      "redoes it")
            return None
        mean = float(returns.mean())
        run_state.update(last_eval_return=mean, last_eval_step=steps)
        writer.scalars(steps, {"Eval/AverageReturns": mean,
                               "Eval/StdReturns": float(returns.std())})
        results_log.evaluation({
            "agent_steps": steps, "frames": steps * frames_per_step,
            "returns": returns.tolist(), "mean": mean, "std": float(returns.std()),
            "protocol": "training env", "epsilon": config.eval_epsilon,
            "episodes": config.eval_episodes, "min_agent_steps": config.eval_steps,
            "sticky_action_prob": config.sticky_action_prob, "noop_max": config.noop_max,
            "max_frames_per_episode": config.max_frames_per_episode})
        bar.write(f"eval at step {steps:,}: return {mean:.1f} +- {returns.std():.1f} "
                  f"over {len(returns)} games")
        best = run_state["best_eval_return"]
        if best is None or mean > best:
            run_state["best_eval_return"] = mean
            if config.export_every_eval:
                export_policy("best", {"eval_return_mean": mean})
        return mean

    def write_progress(state, steps_per_second):
        results.write_progress(config.output_dir, {
            "state": state, "agent_steps": agent.agent_steps, "num_steps": config.num_steps,
            "steps_per_second": steps_per_second, "epsilon": agent.epsilon,
            "last_eval_return": run_state["last_eval_return"],
            "last_eval_step": run_state["last_eval_step"],
            "recent_train_return": float(np.mean(recent_returns)) if recent_returns else None,
            "time": time.time()})

    def eval_owed(steps):
        return not stop.requested and evaluation_owed(
            steps, eval_every=config.eval_every, num_steps=config.num_steps,
            last_eval_step=run_state["last_eval_step"])

    loss_tag = LOSS_TAGS["quantile" if config.head == "quantile" else config.loss]
    tracker = run_loop.EpisodeTracker(env.num_envs)
    recent_returns = collections.deque(run_state["recent_train_returns"], maxlen=100)
    next_summary = next_multiple(agent.agent_steps, config.summary_every)
    next_checkpoint = next_multiple(agent.agent_steps, config.checkpoint_every)
    last_time, last_steps = time.perf_counter(), agent.agent_steps
    steps_per_second = 0.0
    bar = tqdm.tqdm(total=config.num_steps, initial=agent.agent_steps, unit="step",
                    disable=not config.progress, dynamic_ncols=True, mininterval=1.0)
    finished_before = agent.agent_steps >= config.num_steps
    try:
        if eval_owed(agent.agent_steps):  # Stopped by a signal before it finished.
            if run_evaluation(agent.agent_steps) is not None and finished_before:
                save_checkpoint()
        events = [] if finished_before else run_loop.run_loop(agent.step, env, agent.learn)
        for timestep, _ in events:
            for episode in tracker.observe(timestep):
                recent_returns.append(episode.episode_return)
                writer.scalars(agent.agent_steps, {"Train/EpisodeReturn": episode.episode_return,
                                                   "Train/EpisodeLength": episode.length})
                results_log.train_game(agent.agent_steps, agent.agent_steps * frames_per_step,
                                       episode.episode_return, episode.length)
            steps = agent.agent_steps
            if steps >= next_summary:
                now = time.perf_counter()
                steps_per_second = (steps - last_steps) / max(now - last_time, 1e-9)
                last_time, last_steps = now, steps
                scalars = {"Train/AverageStepsPerSecond": steps_per_second,
                           "Train/Epsilon": agent.epsilon, "Replay/Size": len(agent.replay)}
                if recent_returns:
                    scalars["Train/AverageReturns"] = float(np.mean(recent_returns))
                means = agent.learner.pop_metrics()  # Over every update since the last summary.
                if means:
                    scalars.update({loss_tag: means["loss"], "Q/Mean": means["mean_q"],
                                    "Q/Max": means["max_q"], "Loss/GradNorm": means["grad_norm"]})
                writer.scalars(steps, scalars)
                write_progress("running", steps_per_second)
                # No loss before the first update: the warm-up shows how far it has come.
                stored = len(agent.replay)
                learning = (f"{means['loss']:.4f}" if means else "-" if
                            stored >= config.min_replay_size else
                            f"warm-up {stored:,}/{config.min_replay_size:,}")
                bar.set_postfix({"sps": f"{steps_per_second:.0f}", "eps": f"{agent.epsilon:.3f}",
                                 "return": f"{recent_returns[-1]:.1f}" if recent_returns else "-",
                                 "loss": learning}, refresh=False)
                bar.update(steps - bar.n)
                next_summary = next_multiple(steps, config.summary_every)
            done = steps >= config.num_steps or stop.requested
            if (config.stop_at_train_return is not None and len(recent_returns) == 100
                    and np.mean(recent_returns) >= config.stop_at_train_return and not done):
                bar.write(f"mean return of the last 100 training games "
                          f"{np.mean(recent_returns):.2f} >= --stop_at_train_return "
                          f"{config.stop_at_train_return}: stopping at agent step {steps:,} "
                          f"({steps * frames_per_step:,} frames)")
                done = True
            if eval_owed(steps):
                mean = run_evaluation(steps)
                if mean is None:
                    done = True
                elif (config.stop_at_eval_return is not None
                        and mean >= config.stop_at_eval_return):
                    bar.write(f"eval return {mean:.1f} >= --stop_at_eval_return "
                              f"{config.stop_at_eval_return}: stopping")
                    done = True
            if steps >= next_checkpoint or done:
                save_checkpoint()
                next_checkpoint = next_multiple(steps, config.checkpoint_every)
            if done:
                break
        bar.update(agent.agent_steps - bar.n)
        if not stop.requested:
            export_policy("final")
        write_progress("stopped" if stop.requested else "finished", steps_per_second)
    finally:
        bar.close()
        writer.flush()
        writer.close()
        results_log.close()
        env.close()
        eval_env.close()
    return {"agent_steps": agent.agent_steps, "updates": agent.updates,
            "target_syncs": agent.target_syncs, "stopped_by_signal": stop.requested,
            "last_eval_return": run_state["last_eval_return"],
            "best_eval_return": run_state["best_eval_return"],
            "recent_train_return": float(np.mean(recent_returns)) if recent_returns else None}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF logs every SavedModel write at INFO.
    try:
        config = config_lib.from_flags()
        result = train(config)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:
        print(f"error: {error}; the last good checkpoint is kept in --output_dir",
              file=sys.stderr)
        sys.exit(3)
    except OutputWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(4)
    print(json.dumps(result))
    if result["stopped_by_signal"]:
        print(f"stopped by a signal at agent step {result['agent_steps']:,} of "
              f"{config.num_steps:,} with a checkpoint: rerun the same command to resume",
              file=sys.stderr)
        sys.exit(EXIT_STOPPED_BY_SIGNAL)


if __name__ == "__main__":
    app.run(main)
