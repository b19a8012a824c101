"""A training run: `train(config)` runs it in one process or with remote actors.

  train(config)     locks the run directory, catches SIGINT/SIGTERM, runs the loop that
                    --num_actors asks for, returns the run's statistics
  single process    `run_single_process`: the agent steps its envs here, with updates
                    while they emulate (`run_loop`)
  remote actors     `dqn_tf.distributed.train` (--num_actors > 0; needs Ray)

Both loops are built from `dqn_tf.training`'s parts (learner, restore, outputs,
evaluation, checkpoints), which import neither loop.
"""

import dataclasses
import os
import signal

from dqn_tf import checkpointing, export, run_directory, run_loop, seeding, threads, training
from dqn_tf import config as config_lib


def train(config: config_lib.Config, lock: run_directory.RunLock | None = None) -> dict:
    """Runs (or resumes) training as `config` says; returns final statistics.

    The run directory is locked for the whole run (`lock`, from `run_directory.claim`,
    which `dqn_tf.main` calls before TensorFlow loads; claimed here if None) and
    released at the end. SIGINT/SIGTERM are caught from the start: one during a long restore still
    stops with a checkpoint (exit 75 from `dqn_tf.main`), not with the default handler.
    """
    threads.set_tf_threads(config.intra_op_threads, config.jit_compile)
    if lock is None:
        lock = run_directory.claim(config)
    stop = training.StopRequest()
    previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if config.num_actors > 0:
            from dqn_tf import distributed  # Needs Ray, which only this mode does.
            return distributed.train(config, stop)
        return run_single_process(config, stop)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        lock.release()


def run_single_process(config: config_lib.Config, stop: training.StopRequest) -> dict:
    """The single-process loop: `config.num_envs` envs stepped in lockstep by one agent."""
    env = training.build_env(config, seeding.int_seeds(config.seed, "env", config.num_envs))
    agent = training.build_agent(config, env)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(config.output_dir, "checkpoints"), agent.learner.trackables(),
        config.keep_checkpoints, replay=agent.replay if config.checkpoint_replay else None)
    restored = training.restore(config, agent.learner, checkpointer, set_state=agent.set_state)
    if restored is not None:
        # The games in progress were not saved: new games, on streams of their own.
        env.reseed(seeding.int_seeds(config.seed, "env", config.num_envs,
                                     generation=agent.agent_steps))
    print("Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in
                                          dataclasses.asdict(config).items()))
    books = training.Bookkeeping(
        config, agent.learner, checkpointer, training.new_run_state(restored), stop,
        export.env_metadata(dataclasses.asdict(config), env.action_meanings,
                            env.observation_shape),
        actor_state=lambda: {"actor_rngs": [r.bit_generator.state for r in agent.actor.rngs]},
        epsilon=lambda: agent.epsilon)
    tracker = run_loop.EpisodeTracker(env.num_envs)
    try:
        if not books.before_the_loop():
            for timestep, _ in run_loop.run_loop(agent.step, env, agent.learn):
                for episode in tracker.observe(timestep):
                    books.game_ended(episode)
                if books.after_steps():
                    break
        return books.finish()
    finally:
        books.close()
        env.close()
