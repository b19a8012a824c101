"""Remote actors on Ray feeding one learner (`--num_actors=N`; Ape-X, Horgan et al., 2018).

    this process (the driver)                         N Ray actors (ActorWorker)
    Learner: replay, networks, updates  <-- chunks --  its --num_envs envs, a CPU copy
    Bookkeeping: summaries, evaluations,               of the Q-network, an epsilon-greedy
      checkpoints, exports              -- weights ->  actor and a TransitionRecorder

A chunk is `--actor_chunk_steps` lock-steps of an actor's envs as `ReplayRows` (each
frame once, never stacks: the replay rebuilds them). Actor i's env e feeds replay
segment i * num_envs + e, so every stream keeps its own order.

The replay ratio is a setting, not an accident of speed: the learner records a chunk
and pays the updates it is due (one per --train_every transitions, once warm) before
it asks that actor for its next chunk. Each actor has at most one chunk in flight,
so actors wait for a learner that falls behind, and the learner waits for actors.
Weights are published every --actor_sync_updates updates and ride with an actor's
next chunk request; each request carries the actor's epsilon (with
--actor_epsilons=schedule the learner's, with apex 0.4^(1 + 7 i / (N - 1)) for actor i).

Faults: an actor that dies (killed, out of memory, its node lost) is replaced by a new
process in its slot, started by this driver: Ray's own actor restarts can leave the
request in flight at the death unanswered forever (seen with Ray 2.60), so actors are
created with max_restarts=0 and a death fails their request. The learner ends the
slot's games as truncations (nothing is stitched across the gap) and the new process
starts games on streams of the current agent step. An actor that has been answering
but sends nothing for --actor_stall_seconds is taken for hung and replaced the same
way. An actor that never answers within ACTOR_TIMEOUT seconds (not placed, or not
coming back), one whose process cannot start, and one whose env or network raises stop
the run (`ActorFailure`, with a checkpoint). Actors hold no state but their envs, so a
checkpoint is the learner's, as in one process; a driver killed with kill -9 resumes
from its last checkpoint with the same command, with new actors.

Prioritized replay: new transitions get the running max priority, set by the learner
when their n-step horizon completes, as in one process. Ape-X has its actors compute
initial priorities instead, which spares a learner fed by hundreds of actors a flood of
max-priority data, at the cost of a target network and an extra forward pass per step
in every actor; with the few actors one machine or a small cluster runs here, the max
priority is corrected by the first update that samples the transition, and the actors
stay a policy copy only.
"""

import dataclasses
import os
import signal
import time
from typing import NamedTuple

import numpy as np

from dqn_tf import config as config_lib
from dqn_tf import export, ray_cluster, run_loop, seeding, training
from dqn_tf.errors import ActorFailure

APEX_EPSILON, APEX_ALPHA = 0.4, 7.0  # Horgan et al. (2018), section 4.
ACTOR_TIMEOUT = 300.0  # Seconds a new actor may take to answer (placement, start).


def actor_epsilon(config: config_lib.Config, actor_index: int, agent_steps: int) -> float:
    """The epsilon actor `actor_index` explores with now."""
    if config.actor_epsilons == "apex":
        n = config.num_actors
        return APEX_EPSILON ** (1 + APEX_ALPHA * actor_index / max(n - 1, 1))
    return training.epsilon_schedule(config, agent_steps)


def actor_streams(config: config_lib.Config, actor_index: int) -> np.ndarray:
    """The replay segments actor `actor_index`'s envs feed."""
    return actor_index * config.num_envs + np.arange(config.num_envs)


class ChunkReply(NamedTuple):
    """An actor's answer to a chunk request."""

    rows: run_loop.ReplayRows | None  # [T, E] transitions completed, each frame once.
    episodes: list  # `run_loop.Episode`s that ended.
    new_games: bool  # A new process started new games: its streams' old games are over.
    needs_weights: bool  # It has no weights yet: nothing was played.


def record_and_learn(learner, chunk: run_loop.ReplayRows, streams: np.ndarray) -> None:
    """Records a chunk [T, E] into `streams` and pays the updates it is due, lock-step by
    lock-step as one process does: updates and target syncs fall on the same agent
    steps whatever the chunk size."""
    for step in zip(*chunk):
        learner.record(run_loop.ReplayRows(*step), streams=streams)
        learner.learn()


class ActorWorker:
    """One remote actor: steps its envs with an epsilon-greedy copy of the network and
    returns chunks of transitions (and the games that ended)."""

    def __init__(self, run_config: dict, actor_index: int):
        """Args:
          run_config: the run's `dataclasses.asdict(Config)`.
          actor_index: which actor this is (its streams, seeds and apex epsilon).
        """
        from dqn_tf import agent as agent_lib, networks, threads
        from dqn_tf.history import stack_shape
        threads.set_tf_threads(1, jit_compile=False)  # Ray does not size TF's pools.
        run_config = dict(run_config, mlp_hidden_sizes=tuple(run_config["mlp_hidden_sizes"]))
        self.config = config = config_lib.Config(**run_config)
        self.index = actor_index
        self.streams = actor_streams(config, actor_index)
        self.env = training.build_env(config, [0] * config.num_envs)
        shape = stack_shape(self.env.observation_shape, config.history_length)
        self.network = networks.from_run_config(run_config, self.env.num_actions, shape,
                                                "actor")
        self.greedy = agent_lib.build_greedy_fn(
            self.network, agent_lib.state_spec(shape, self.env.observation_dtype),
            jit_compile=config.jit_act).get_concrete_function()
        self.actor = self.recorder = self.tracker = self.timestep = None
        self.has_weights = False

    def start(self, generation: int) -> None:
        """New games on streams of `generation` (the agent step at the (re)start)."""
        config, streams = self.config, self.streams
        self.env.reseed([seeding.int_seed(config.seed, "env", int(s), generation)
                         for s in streams])
        self.actor = run_loop.EpsilonGreedyActor(
            self.greedy, num_actions=self.env.num_actions,
            observation_shape=self.env.observation_shape,
            history_length=config.history_length, dtype=self.env.observation_dtype,
            seeds=[seeding.seed_sequence(config.seed, "actor", int(s), generation)
                   for s in streams])
        self.recorder = run_loop.TransitionRecorder(config.reward_clip,
                                                    config.life_loss_terminal)
        self.tracker = run_loop.EpisodeTracker(self.env.num_envs)
        self.timestep = self.env.reset()

    def run(self, steps: int, epsilon: float, generation: int,
            weights=None) -> "ChunkReply":
        """Steps the envs `steps` times with `epsilon` and returns what happened.

        A new process (its first call) first starts games on streams of
        `generation` and says so (`new_games`); one that has no weights yet plays
        nothing and asks for them (`needs_weights`). `weights`, when given, replace the
        network's first."""
        if weights is not None:
            self.network.set_weights(weights)
            self.has_weights = True
        if not self.has_weights:
            return ChunkReply(None, [], False, True)
        new_games = self.actor is None
        if new_games:
            self.start(generation)
        rows, episodes = [], []
        for _ in range(steps):
            timestep = self.timestep
            episodes += self.tracker.observe(timestep)
            completed = self.recorder.record(timestep)
            if completed is not None:
                rows.append(completed)
            actions = self.actor.step(timestep, epsilon)
            self.recorder.remember(timestep, actions)
            self.timestep = self.env.step(actions)
        return ChunkReply(run_loop.stack_rows(rows) if rows else None, episodes, new_games,
                          False)

    def pid(self) -> int:
        return os.getpid()


def train(config: config_lib.Config, stop: training.StopRequest) -> dict:
    """Trains with `config.num_actors` remote actors (Ray must be installed); the run
    directory is locked and signals caught by `run.train`."""
    ray = ray_cluster.connect(
        config.ray_address, what="--num_actors",
        num_cpus=max(os.cpu_count() or 1, int(np.ceil(config.num_actors * config.actor_cpus))))
    for signum in (signal.SIGINT, signal.SIGTERM):  # ray.init installed its own.
        signal.signal(signum, stop)
    probe = training.build_env(config, [0])
    env_info = export.env_metadata(dataclasses.asdict(config), probe.action_meanings,
                                   probe.observation_shape)
    learner = training.build_learner(config, probe.observation_shape,
                                     probe.observation_dtype, probe.num_actions,
                                     config.num_actors * config.num_envs)
    probe.close()
    checkpointer = training.checkpointing.Checkpointer(
        os.path.join(config.output_dir, "checkpoints"), learner.trackables(),
        config.keep_checkpoints, replay=learner.replay if config.checkpoint_replay else None)
    restored = training.restore(config, learner, checkpointer)
    print("Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in
                                          dataclasses.asdict(config).items()))
    mean_epsilon = lambda: float(np.mean(  # noqa: E731 - what the summaries show as epsilon.
        [actor_epsilon(config, i, learner.agent_steps) for i in range(config.num_actors)]))
    books = training.Bookkeeping(config, learner, checkpointer,
                                 training.new_run_state(restored), stop, env_info,
                                 epsilon=mean_epsilon)
    # A CPU copy of the network: TF in an actor must not take the learner's GPU.
    remote = ray.remote(num_cpus=config.actor_cpus, max_restarts=0, max_task_retries=0,
                        runtime_env={"env_vars": {"CUDA_VISIBLE_DEVICES": ""}})(ActorWorker)
    run_config = dataclasses.asdict(config)
    workers, pending = [None] * config.num_actors, {}
    weights = {"ref": None, "version": 0}  # The newest published weights.
    sent_version = [-1] * config.num_actors  # The version each actor holds.
    asked_at = {}  # Pending request -> when it was sent.
    answered = set()  # Actors whose current process has sent a chunk.
    replaced_at = {}  # Actor -> when its first replacement since its last chunk began.

    def request_chunk(i):
        fresh = weights["ref"] if sent_version[i] != weights["version"] else None
        sent_version[i] = weights["version"]
        epsilon = actor_epsilon(config, i, learner.agent_steps)
        ref = workers[i].run.remote(config.actor_chunk_steps, epsilon, learner.agent_steps,
                                    fresh)
        pending[ref], asked_at[ref] = i, time.monotonic()

    def start_actor(i):
        workers[i] = remote.remote(run_config, i)
        sent_version[i] = -1  # A new process: it needs the weights.
        answered.discard(i)
        request_chunk(i)

    def fail(message):
        books.save_checkpoint()
        raise ActorFailure(f"{message}; the run is checkpointed: check the actors' Ray logs "
                           "(/tmp/ray/session_latest/logs), then rerun the same command")

    def replace(i, what):
        """Actor i's process died or hung: end its games, start a new process."""
        ray.kill(workers[i], no_restart=True)  # A hung one must not answer later.
        for ref in [ref for ref, j in pending.items() if j == i]:
            del pending[ref], asked_at[ref]
        learner.replay.end_open_episodes(actor_streams(config, i))  # Never stitch.
        now = time.monotonic()
        if i not in replaced_at:
            replaced_at[i] = now
            books.outputs.bar.write(f"actor {i} {what}; starting a new process on new "
                                    f"streams at agent step {learner.agent_steps:,}")
        elif now - replaced_at[i] > ACTOR_TIMEOUT:
            fail(f"actor {i} has sent nothing for {ACTOR_TIMEOUT:.0f} s since it was first "
                 "replaced")
        start_actor(i)

    def check_waits():
        """Replaces hung actors and fails on absent ones. A reply that came while the
        learner was busy with other chunks is not late: only unanswered requests count."""
        now = time.monotonic()
        late = [ref for ref, i in pending.items() if now - asked_at[ref] > (
            config.actor_stall_seconds if i in answered else ACTOR_TIMEOUT)]
        if late:
            answered_refs = set(ray.wait(late, num_returns=len(late), timeout=0)[0])
            late = [ref for ref in late if ref not in answered_refs]
        for ref in late:
            i, waited = pending[ref], now - asked_at[ref]
            if i in answered:
                replace(i, f"has sent nothing for {waited:.0f} s (hung)")
            else:
                fail(f"actor {i} has not answered for {waited:.0f} s since it was "
                     + ("replaced" if i in replaced_at else
                        f"created: the cluster may lack the {config.actor_cpus:g} CPUs "
                        f"(--actor_cpus) each of the {config.num_actors} actors needs"))

    def publish():
        weights["ref"] = ray.put(learner.weights())
        weights["version"] += 1

    try:
        done = books.before_the_loop()
        if not done:
            publish()
            for i in range(config.num_actors):
                start_actor(i)
        published_at = learner.updates
        while not done:
            check_waits()
            ready = ray.wait(list(pending), num_returns=1, timeout=1.0)[0]
            if not ready:  # Nothing yet: a signal still stops the run within a second.
                done = stop.requested and books.after_steps()
                continue
            i = pending.pop(ready[0])
            del asked_at[ready[0]]
            try:
                reply = ray.get(ready[0])
            except ray.exceptions.RayActorError as error:
                reason = str(error).strip().splitlines()[0][:160]
                if error.actor_init_failed:  # Its envs or network cannot be built.
                    fail(f"actor {i} could not start ({reason})")
                replace(i, f"died ({reason})")
                continue
            except ray.exceptions.RayTaskError as error:  # Its env or network raised.
                fail(f"actor {i} failed: {str(error).strip().splitlines()[-1][:300]}")
            if reply.needs_weights:  # Not sent yet (a process without them asks).
                sent_version[i] = -1
                request_chunk(i)
                continue
            if reply.new_games:  # A new process: whatever its streams held is over.
                learner.replay.end_open_episodes(actor_streams(config, i))
                if i in replaced_at:
                    books.outputs.bar.write(f"actor {i} is back (a new process) at agent "
                                            f"step {learner.agent_steps:,}")
            answered.add(i)
            replaced_at.pop(i, None)
            chunk, episodes = reply.rows, reply.episodes
            if chunk is not None:
                record_and_learn(learner, chunk, actor_streams(config, i))
            for episode in episodes:
                books.game_ended(episode)
            if learner.updates - published_at >= config.actor_sync_updates:
                publish()
                published_at = learner.updates
            request_chunk(i)
            done = books.after_steps()
        return books.finish()
    finally:
        books.close()
        for worker in workers:
            if worker is not None:
                ray.kill(worker, no_restart=True)
        ray.shutdown()
