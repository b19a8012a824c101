"""Prints dqn_tf's speed and memory figures (not a test): `python bench/benchmark.py`.

One run, one machine, each timing a median over repeats:

  env     t_env: ms per agent step of the preprocessed Atari env alone (random
          actions, action repeat 4), per backend and per --num_envs
  act     t_act: greedy action for 1 state and for a batch of num_envs states
  update  t_update: one Nature-CNN update at batch 32, with and without XLA (the
          XLA one in a child process with the thread pool main picks for it)
  after   the greedy action right after an update, a NumPy matmul, a sleep, a Python
          spin or reading 4-64 MB, in TF and in plain NumPy: how much slower acting
          gets in the loop
  replay  add / batch-32 sample time and resident memory of a full buffer
  e2e     agent steps/s of `dqn_tf.main.train` itself on SpaceInvaders with the
          Nature preset (train every 4 agent steps), read back from its own
          TensorBoard `Train/AverageStepsPerSecond` once learning runs (epsilon
          at its final 0.1, so 90 % of steps pay for a greedy action)
  bare    the same loop's work alone (env, greedy action, update on a fixed
          batch), with no agent, replay or summaries: what the rest costs
  limit   --rounds rounds per num_envs, each measuring back to back t_env,
          t_act, t_update, the limit 1 / (t_env + t_act + t_update / train_every),
          e2e and bare, so that each ratio compares figures from the same state
          of this shared machine; then the medians

  checkpoint  seconds and bytes of each checkpoint of a Nature-preset run with a full
          replay (--capacity), a checkpoint every 250k transitions, 4 kept; what the
          run's checkpoints hold on disk; a restore
  heads   the update (Adam, Double DQN, batch 32) for each head and encoder
  per     prioritized replay of --capacity: add, sample batch 32 + priority update,
          memory
  augment drq_eps.cfg's update with each --augment, its target from the online network
          or a target network: wall and CPU ms
  eval    drq_eps.cfg's evaluation on 1 env and on 10 side by side: agent steps/s
  presets end-to-end agent steps/s of every Atari preset in flags/ (--presets picks some;
          learning settings of each; SpaceInvaders, Pong for pong.cfg; warm-up --warmup,
          then --e2e_steps)
  actors  end to end with one Ray actor (--num_actors=1) against one process, alternated
  ingest  transitions/s the learner takes from chunks in Ray's object store: alone, at
          DQN's replay ratio and at Ape-X's
  startup wall seconds of a short CartPole run: plain, with --num_actors=2, and as a
          one-run sweep; the differences are what Ray's start-up costs

Pass --only=env,act,update,after,replay,checkpoint,heads,augment,eval,per,presets,actors,
ingest,startup,e2e,bare,limit to pick parts (default: all but the standalone e2e and bare, which
limit runs); --num_envs=1,4,8.
--intra_op_threads is main's flag (0 = its auto choice), set before TF starts.
"""

import argparse
import dataclasses
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # For tests.summaries_test.read_scalars, TensorBoard's own reader.
GAME = "ALE/SpaceInvaders-v5"


def rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e9  # VmRSS is in KiB.
    return float("nan")


def median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_env(backend: str, num_envs: int, steps: int = 3000) -> float:
    """Median ms per agent step (one env step of one env) over 5 repeats."""
    from dqn_tf import atari_env
    env = atari_env.make_env(GAME, seeds=range(num_envs), backend=backend)
    rng = np.random.default_rng(0)
    env.reset()
    vector_steps = max(steps // num_envs, 1)
    actions = rng.integers(0, env.num_actions, (vector_steps, num_envs))

    def run():
        for a in actions:
            env.step(a)
    ms = median_ms(run, repeats=5, warmup=1) / (vector_steps * num_envs)
    env.close()
    print(f"t_env    {backend:10s} num_envs={num_envs}: {ms:.3f} ms per agent step "
          f"({1000 / ms:,.0f} agent steps/s)")
    return ms


def build_update_and_greedy(jit_update: bool = False, jit_act: bool = True):
    """The Nature preset's update (its optimizer, as end to end runs it), the greedy
    action of the same online network (by default compiled as the loop runs them), and
    that network."""
    from dqn_tf import agent as agent_lib, networks, optimizers
    spec = agent_lib.state_spec((4, 84, 84), np.uint8)
    online, target = networks.nature_cnn(6), networks.nature_cnn(6)
    optimizer = optimizers.make_optimizer(nature_config().optimizer)
    update = agent_lib.build_update_fn(online, target, optimizer, spec, jit_compile=jit_update)
    return update, agent_lib.build_greedy_fn(online, spec, jit_compile=jit_act), online


def fixed_batch(num_actions: int = 6) -> tuple:
    """A batch-32 (s_tm1, a_tm1, r_t, discount_t, s_t, weight_t) of random Atari states,
    for timing."""
    rng = np.random.default_rng(0)
    s = rng.integers(0, 256, (32, 4, 84, 84), np.uint8)
    a = rng.integers(0, num_actions, 32).astype(np.int32)
    ones = np.ones(32, np.float32)
    return s, a, ones, np.full(32, 0.99, np.float32), s, ones


def run_update(update, batch) -> None:
    """One update, waited for (its metrics fetched)."""
    update(*batch)[0].numpy()


def bench_act(jit: bool, batch_sizes) -> dict:
    _, greedy, _ = build_update_and_greedy(jit_act=jit)
    states = np.random.default_rng(0).integers(0, 256, (max(batch_sizes), 4, 84, 84), np.uint8)
    times = {}
    for n in batch_sizes:
        times[n] = median_ms(lambda: greedy(states[:n]).numpy(), 500)
        print(f"t_act    greedy action, {n} state(s), jit_compile={jit}: {times[n]:.3f} ms "
              f"({times[n] / n:.3f} ms per state)")
    return times


def bench_update(jit: bool) -> float:
    update, _, _ = build_update_and_greedy(jit_update=jit)
    batch = fixed_batch()
    ms = median_ms(lambda: run_update(update, batch), 200)
    import tensorflow as tf
    pool = tf.config.threading.get_intra_op_parallelism_threads() or "one per core"
    print(f"t_update batch 32, Nature CNN, jit_compile={jit} (intra-op threads {pool}): "
          f"{ms:.1f} ms")
    return ms


def numpy_greedy_fn(network):
    """The Nature CNN's greedy action for one [4, 84, 84] uint8 state in plain NumPy.

    No TF and no thread pool of ours: it runs in the calling thread, with a copy of
    the network's weights taken now. It only exists to time acting outside TF.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    convs = [(layer.get_weights(), layer.strides[0])
             for layer in network.layers if layer.__class__.__name__ == "Conv2D"]
    (w_hidden, b_hidden), (w_out, b_out) = [
        layer.get_weights() for layer in network.layers if layer.__class__.__name__ == "Dense"]

    def greedy(state):
        x = state.transpose(1, 2, 0).astype(np.float32) * (1.0 / 255.0)  # [84, 84, 4]
        for (kernel, bias), stride in convs:  # kernel [k, k, C_in, C_out]
            k = kernel.shape[0]
            patches = sliding_window_view(x, (k, k), axis=(0, 1))[::stride, ::stride]
            x = np.maximum(np.tensordot(patches, kernel, axes=([3, 4, 2], [0, 1, 2])) + bias, 0)
        hidden = np.maximum(x.reshape(-1) @ w_hidden + b_hidden, 0)
        return int(np.argmax(hidden @ w_out + b_out))
    return greedy


def spin(seconds: float) -> None:
    """Keeps the calling thread busy for `seconds`, in a loop that touches almost no memory."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def bench_after_heavy_work():
    """Median ms of a greedy action (1 state) alone and right after other work, in TF
    (XLA, as the loop acts) and in plain NumPy in the calling thread; and of TF's
    conversion of the state alone, which starts every TF call."""
    import tensorflow as tf
    update, greedy, network = build_update_and_greedy()
    numpy_greedy = numpy_greedy_fn(network)
    batch = fixed_batch()
    s = batch[0]
    matrix = np.random.default_rng(0).random((1200, 1200), np.float32)
    memory = {mb: np.ones(mb << 17) for mb in (4, 16, 64)}  # float64: 2^17 per MB.
    heavy = {"nothing": lambda: None, "an update": lambda: run_update(update, batch),
             "a NumPy 1200x1200 matmul": lambda: matrix @ matrix,
             "a 3 ms sleep": lambda: time.sleep(0.003),
             # Time away with almost no memory touched, as long as an update takes and shorter.
             **{f"a {ms} ms Python spin": functools.partial(spin, ms / 1000) for ms in (3, 12)},
             # More data than the caches hold, read by one thread: no compute to speak of.
             **{f"reading {mb} MB": memory[mb].sum for mb in memory}}
    agree = sum(numpy_greedy(state) == int(greedy(state[None]).numpy()[0]) for state in s)
    print(f"after    NumPy and TF pick the same greedy action for {agree} of {len(s)} states")
    actors = {"greedy action in TF (XLA)": lambda: greedy(s[:1]).numpy(),
              "greedy action in NumPy": lambda: numpy_greedy(s[0]),
              # Not an action: TF's conversion of the state alone, the first op of every call.
              "tf.constant of the state": lambda: tf.constant(s[:1])}
    for actor_name, act in actors.items():
        for name, work in heavy.items():
            times = []
            for _ in range(105):
                work()
                start = time.perf_counter()
                act()
                times.append(time.perf_counter() - start)
            print(f"after    {actor_name:24s} right after {name}: "
                  f"{1000 * statistics.median(times[5:]):.3f} ms")


def bench_replay(capacity: int):
    from dqn_tf.replay import ReplayMemory
    before = rss_gb()
    memory = ReplayMemory(capacity, (84, 84), history_length=4)
    frame = np.random.default_rng(0).integers(0, 256, (1, 84, 84), np.uint8)
    ones, falses = np.ones(1, np.int32), np.zeros(1, bool)
    reward = np.ones(1, np.float32)
    start = time.perf_counter()
    for i in range(capacity):
        memory.add(frame, ones, reward, falses, np.array([i % 1000 == 999]))
    add_us = 1e6 * (time.perf_counter() - start) / capacity
    print(f"replay   capacity {capacity:,}: add {add_us:.1f} us/transition, "
          f"resident {rss_gb() - before:.2f} GB for the buffer "
          f"(frames alone {memory.frames.nbytes / 1e9:.2f} GB), process {rss_gb():.2f} GB")
    print(f"replay   sample batch 32: {median_ms(lambda: memory.sample(32), 2000):.3f} ms")


HEADS = {  # name: q_network arguments, for the `heads` part.
    "Nature CNN, Q-values (DQN)": {},
    "Nature CNN, dueling": dict(dueling=True),
    "Nature CNN, 51 quantiles, dueling (atari100k.cfg)": dict(num_quantiles=51, dueling=True),
    "Nature CNN, 200 quantiles (dqn_modern.cfg)": dict(num_quantiles=200),
    "IMPALA encoder, Q-values": dict(encoder="impala"),
    "IMPALA encoder, 200 quantiles": dict(encoder="impala", num_quantiles=200),
}


def bench_heads(num_actions: int = 9):
    """The update (Adam, Double DQN, batch 32) for each head and encoder."""
    from dqn_tf import agent as agent_lib, networks, optimizers
    batch = fixed_batch(num_actions)
    for name, kwargs in HEADS.items():
        online, target = (networks.q_network(num_actions, (4, 84, 84), **kwargs)
                          for _ in range(2))
        update = agent_lib.build_update_fn(
            online, target, optimizers.make_optimizer("adam"),
            agent_lib.state_spec((4, 84, 84), np.uint8), double_q=True).get_concrete_function()
        ms = median_ms(lambda: run_update(update, batch), 100)
        print(f"t_update {name}, {num_actions} actions: {ms:.1f} ms "
              f"({online.count_params():,} weights)")


def bench_prioritized(capacity: int):
    """Prioritized sampling and priority update, batch 32, from a full memory."""
    from dqn_tf.replay import ReplayMemory
    before = rss_gb()
    memory = ReplayMemory(capacity, (84, 84), history_length=4, n_step=3, prioritized=True,
                          priority_exponent=0.5, priority_epsilon=1e-10)
    frame = np.random.default_rng(0).integers(0, 256, (1, 84, 84), np.uint8)
    rng = np.random.default_rng(1)
    ones, falses = np.ones(1, np.int32), np.zeros(1, bool)
    added = [0]

    def add():
        end = np.array([added[0] % 1000 == 999])  # Games of 1,000 steps.
        memory.add(frame, ones, ones.astype(np.float32), falses, end)
        added[0] += 1

    for _ in range(capacity + 1000):  # Full, and wrapped: old slots lose their mass.
        add()

    def sample_and_update():
        batch = memory.sample(32, importance_exponent=0.5)
        memory.update_priorities(batch.key, rng.random(32))

    def training_cadence():  # DQN's: an update per 4 transitions; the tree is read lazily.
        for _ in range(4):
            add()
        sample_and_update()

    both = median_ms(sample_and_update, 2000)
    cadence = median_ms(training_cadence, 2000)
    add_us = 1000 * (cadence - both) / 4
    keys = memory.sample(32).key
    update_only = median_ms(lambda: memory.update_priorities(keys, rng.random(32)), 2000)
    print(f"per      capacity {capacity:,}: add {add_us:.1f} us/transition (its tree "
          f"bookkeeping included, at an update per 4 adds: a cycle {cadence:.3f} ms); "
          f"sample batch 32 + priority update {both:.3f} ms (update alone "
          f"{update_only:.3f} ms); resident {rss_gb() - before:.2f} GB for the buffer "
          f"(frames {memory.frames.nbytes / 1e9:.2f} GB, sum tree "
          f"{memory.tree.nodes.nbytes / 1e6:.1f} MB)")


PRESETS = ("dqn_default.cfg", "dqn_nature.cfg", "dqn_dopamine.cfg", "dqn_modern.cfg",
           "atari100k.cfg", "drq_eps.cfg", "pong.cfg")


def bench_augment():
    """drq_eps.cfg's update, batch 32, with each augmentation, and with its target
    computed by the online network (target_update_period 1) or by a target network:
    median wall ms, and CPU ms (process time: what a run sharing the machine pays)."""
    from dqn_tf import training
    batch = fixed_batch(18)
    for augment in ("none", "shift", "shift_intensity"):
        for period in (1, 2):
            config = preset_config("drq_eps.cfg", augment=augment, target_update_period=period)
            learner = training.build_learner(config, (84, 84), np.uint8, 18, 1)
            update = learner._update
            wall = median_ms(lambda: run_update(update, batch), 100)
            start = time.process_time()
            for _ in range(50):
                run_update(update, batch)
            cpu = (time.process_time() - start) / 50 * 1000
            print(f"augment  drq_eps update, augment={augment}, target "
                  f"{'= online network' if learner.target_is_online else 'network'}: "
                  f"{wall:.1f} ms wall, {cpu:.1f} ms CPU")


def bench_evaluation(game: str = "ALE/Breakout-v5", games_per_env: int = 2):
    """drq_eps.cfg's evaluation with its untrained network (epsilon 0.001, games cut at
    8,000 frames), on 1 env and on --eval_envs envs side by side: kept agent steps/s."""
    from dqn_tf import run_loop, seeding, training
    for envs in (1, 10):
        config = preset_config("drq_eps.cfg", env=game, max_frames_per_episode=8000)
        env = training.build_env(config, seeding.int_seeds(0, "eval_env", envs))
        learner = training.build_learner(config, env.observation_shape, env.observation_dtype,
                                         env.num_actions, 1)
        actor = run_loop.EpsilonGreedyActor(
            learner.greedy_actions, num_actions=env.num_actions,
            observation_shape=env.observation_shape, history_length=4, dtype=np.uint8,
            seeds=list(range(envs)))
        learner.greedy_actions(np.zeros((envs, 4, 84, 84), np.uint8))  # Compiled first.
        start = time.perf_counter()
        episodes = run_loop.run_episodes(actor, env, 0.001, num_episodes=games_per_env * envs)
        seconds = time.perf_counter() - start
        steps = sum(e.length for e in episodes)
        print(f"eval     drq_eps evaluation, {envs} env(s): {steps / seconds:.0f} agent steps/s "
              f"({len(episodes)} games of {game}, {steps:,} agent steps, {seconds:.1f} s)")
        env.close()


def bench_presets(warmup: int, steps: int, presets=PRESETS):
    """End-to-end agent steps/s of `main.train` with each preset's learning settings."""
    for preset in presets:
        config = preset_config(preset, env="ALE/Pong-v5" if preset == "pong.cfg" else GAME)
        sps = bench_end_to_end(1, False, "ale_vector", warmup, steps, config=config)
        print(f"preset   {preset}: {sps:.0f} agent steps/s once learning runs "
              f"(train every {config.train_every}, {config.head} head, "
              f"{'prioritized' if config.prioritized else 'uniform'} replay)")


def bench_actors(warmup: int, steps: int, rounds: int = 2):
    """End-to-end agent steps/s: the Nature preset in one process, and with one Ray actor
    stepping the env (`--num_actors=1`), alternated `rounds` times."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    figures = {0: [], 1: []}
    for _ in range(rounds):
        for actors in (0, 1):
            config = nature_config(env=GAME, num_actors=actors)
            figures[actors].append(bench_end_to_end(1, False, "ale_vector", warmup, steps,
                                                    config=config))
    single, remote = statistics.median(figures[0]), statistics.median(figures[1])
    print(f"actors   Nature preset, SpaceInvaders: one process {single:.0f}, one Ray actor "
          f"{remote:.0f} agent steps/s (medians of {rounds}); going through Ray costs "
          f"{100 * (1 - remote / single):.0f} %")


def bench_ingest(chunks: int = 40, chunk_steps: int = 50):
    """The learner's capacity to take transitions: `ray.get` of a chunk of Atari frames
    already in the object store, and recording it into the replay; alone, and with the
    updates it is due at DQN's replay ratio (an update of 32 per 4 transitions: 8 samples
    per transition) and at Ape-X's (0.8 samples per transition: one per 40)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from dqn_tf import distributed, ray_cluster, run_loop, training
    ray = ray_cluster.connect("", num_cpus=2, what="the ingest benchmark")
    rng = np.random.default_rng(0)
    rows = run_loop.ReplayRows(
        rng.integers(0, 256, (chunk_steps, 1, 84, 84), np.uint8),
        rng.integers(0, 6, (chunk_steps, 1)).astype(np.int32),
        np.zeros((chunk_steps, 1), np.float32), np.zeros((chunk_steps, 1), bool),
        np.zeros((chunk_steps, 1), bool), np.ones((chunk_steps, 1), bool))
    refs = [ray.put(rows) for _ in range(chunks)]
    per_second = {}
    for label, train_every in (("ingest alone", None), ("DQN ratio", 4), ("Ape-X ratio", 40)):
        config = nature_config(env=GAME, replay_capacity=100_000, min_replay_size=1_000,
                               train_every=train_every or 4, optimizer="adam")
        learner = training.build_learner(config, (84, 84), np.uint8, 6, 1)
        streams = np.zeros(1, int)

        def take(ref):  # What the driver does with a chunk (distributed.train).
            if train_every:
                distributed.record_and_learn(learner, ray.get(ref), streams)
            else:
                learner.record(ray.get(ref), streams)

        for ref in refs[:len(refs) // 2]:  # Warm: past min_replay_size, the update traced.
            take(ref)
        start = time.perf_counter()
        for ref in refs:
            take(ref)
        per_second[label] = chunks * chunk_steps / (time.perf_counter() - start)
        print(f"ingest   {label}: {per_second[label]:,.0f} transitions/s into the learner "
              f"(chunks of {chunk_steps} Atari transitions from the object store"
              + (f", an update per {train_every} transitions" if train_every else "") + ")")
    ray.shutdown()
    return per_second


def bench_startup(steps: int = 1000):
    """Seconds from launch to exit of a `steps`-step CartPole run (no evaluation), as
    one process, with 2 Ray actors, and as a sweep of that one run."""
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    common = ["--flagfile=flags/cartpole.cfg", f"--num_steps={steps}", "--eval_every=0",
              "--noprogress"]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "one process": ["-m", "dqn_tf.main", *common, f"--output_dir={tmp}/plain"],
            "--num_actors=2": ["-m", "dqn_tf.main", *common, "--num_actors=2",
                               f"--output_dir={tmp}/actors"],
            "sweep of 1 run": ["-m", "dqn_tf.sweep", *common, "--games=CartPole-v1",
                               "--seeds=0", "--cpus_per_run=1", f"--output_root={tmp}/sweep"],
        }
        for label, args in commands.items():
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            seconds[label] = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{label} failed: {proc.stderr[-500:]}")
    plain = seconds["one process"]
    print(f"startup  CartPole, {steps:,} agent steps, launch to exit: one process "
          f"{plain:.1f} s; --num_actors=2 {seconds['--num_actors=2']:.1f} s "
          f"(+{seconds['--num_actors=2'] - plain:.1f} s); a sweep of that run "
          f"{seconds['sweep of 1 run']:.1f} s (+{seconds['sweep of 1 run'] - plain:.1f} s)")
    return seconds


def disk_bytes(directory: str) -> int:
    """Bytes of the files under `directory` (what `du -b` counts for them)."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(directory) for name in names)


def bench_checkpoint(capacity: int, period: int = 250_000, rounds: int = 8):
    """Checkpoints of a Nature-preset agent whose replay holds `capacity` transitions.

    `rounds` checkpoints, `period` new transitions apart (the preset's
    --checkpoint_every), --keep_checkpoints=4: seconds, bytes written, and what the
    run's checkpoints hold on disk after each; then one after only 10,000 new
    transitions (a SIGTERM's), and a restore of the newest with its whole replay.
    """
    from dqn_tf import checkpointing, training
    config = nature_config(env=GAME, replay_capacity=capacity)
    env = training.build_env(config, [0])
    agent = training.build_agent(config, env)
    env.close()
    memory = agent.replay
    frame = np.random.default_rng(0).integers(0, 256, (84, 84), np.uint8)
    memory.frames[0, :] = frame  # Touch every page: the memory a full run has.
    memory.episode_end[0, 999::1000] = True
    os.makedirs(os.path.join(ROOT, "runs"), exist_ok=True)  # The disk a run writes to.
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "runs")) as out:
        saver = checkpointing.Checkpointer(out, agent.learner.trackables(), keep=4,
                                           replay=memory)

        def checkpoint(new, label):
            memory.num_added[0] += new  # As if `new` transitions had been added.
            start = time.perf_counter()
            saver.save(int(memory.num_added[0]), {"agent": agent.get_state()})
            seconds = time.perf_counter() - start
            print(f"ckpt     {label}: {seconds:.1f} s, replay {saver.last_replay_bytes / 1e9:.2f} "
                  f"GB written; the run's checkpoints now hold {disk_bytes(out) / 1e9:.2f} GB "
                  f"(replay capacity {capacity:,} = {memory.frames.nbytes / 1e9:.2f} GB of "
                  "frames)")

        for i in range(rounds):
            checkpoint(period, f"at {(i + 1) * period:>9,} transitions ({period:,} new)")
        checkpoint(10_000, f"at {int(memory.num_added[0]) + 10_000:>9,} transitions "
                           "(10,000 new, a SIGTERM's)")
        restored = training.build_agent(config, training.build_env(config, [0]))
        start = time.perf_counter()
        checkpointing.Checkpointer(out, restored.learner.trackables(), keep=4,
                                   replay=restored.replay).restore_latest()
        print(f"ckpt     restore of the newest with its {len(restored.replay):,} transitions: "
              f"{time.perf_counter() - start:.1f} s")


def preset_config(preset: str, **overrides):
    """The Config of flags/<preset>, with `overrides`."""
    from absl import flags
    from dqn_tf import config as config_lib
    flags.FLAGS.unparse_flags()
    flags.FLAGS([sys.argv[0], f"--flagfile={os.path.join(ROOT, 'flags', preset)}"])
    return dataclasses.replace(config_lib.from_flags(), **overrides)


def nature_config(**overrides):
    return preset_config("dqn_nature.cfg", **overrides)


def bench_end_to_end(num_envs: int, jit: bool, backend: str, warmup: int, steps: int,
                     intra_op_threads: int = 0, config=None) -> float:
    """Median Train/AverageStepsPerSecond that `main.train` logs once learning runs,
    with the Nature preset (or `config`'s learning settings)."""
    from dqn_tf import run
    from dqn_tf.summaries import read_scalars
    with tempfile.TemporaryDirectory() as out:
        config = dataclasses.replace(
            config or nature_config(env=GAME), num_envs=num_envs, env_backend=backend,
            jit_compile=jit,
            replay_capacity=100_000, min_replay_size=warmup, num_steps=warmup + steps,
            epsilon_decay_steps=1,  # Steady state: epsilon at its final 0.1 once learning runs.
            summary_every=500, eval_every=0, checkpoint_every=10**9, checkpoint_replay=False,
            export_every_eval=False, progress=False, output_dir=out,
            intra_op_threads=intra_op_threads)
        result = run.train(config)
        points = read_scalars(os.path.join(out, "tensorboard"))["Train/AverageStepsPerSecond"]
    # Skip the first window after learning starts (tracing the update).
    sps = statistics.median(v for step, v in points if step > warmup + 1000)
    print(f"e2e      dqn_tf.main.train, {config.env}, num_envs={num_envs}, "
          f"{backend}, jit_compile={jit}: {sps:.0f} agent steps/s "
          f"({result['updates']} updates over {steps:,} learning steps)")
    return sps


def bench_bare_loop(num_envs: int, steps: int, train_every: int, window: int = 1000) -> float:
    """Median agent steps/s of the loop's work and nothing else, over windows of
    `window` agent steps: the env step, a greedy action (XLA) on 90 % of steps
    and one update per `train_every` agent steps on a fixed batch, interleaved
    as `run_loop` does. No replay, agent, summaries or bookkeeping."""
    from dqn_tf import training
    env = training.build_env(nature_config(env=GAME), list(range(num_envs)))
    update, greedy, _ = build_update_and_greedy()
    rng = np.random.default_rng(0)
    batch = fixed_batch(env.num_actions)
    states = np.zeros((num_envs, 4, 84, 84), np.uint8)
    timestep, credit, rates = env.reset(), 0, []
    for _ in range(steps // window + 1):  # The first window traces and warms up.
        start = time.perf_counter()
        for _ in range(window // num_envs):
            states[:, :-1] = states[:, 1:]
            states[:, -1] = timestep.observation
            explore = rng.random(num_envs) < 0.1
            actions = rng.integers(0, env.num_actions, num_envs, dtype=np.int32)
            if not explore.all():
                actions = np.where(explore, actions, greedy(states).numpy())
            env.send(actions)
            credit += num_envs
            while credit >= train_every:
                credit -= train_every
                run_update(update, batch)
            timestep = env.recv()
        rates.append((window // num_envs) * num_envs / (time.perf_counter() - start))
    env.close()
    sps = statistics.median(rates[1:])
    print(f"bare     the same work with no agent, replay or summaries, num_envs={num_envs}: "
          f"{sps:.0f} agent steps/s")
    return sps


def limit_round(n: int, train_every: int, args) -> dict:
    """One round at `n` envs: the limit's parts, end to end and the bare loop, back to back,
    so that each ratio compares figures taken in the same state of the machine."""
    t_env = bench_env("ale_vector", n)
    act_ms = bench_act(True, [n])[n] / n  # XLA acting (--jit_act) and the graph-mode
    t_update = bench_update(False)          # update: as the loop runs by default.
    limit = 1000 / (t_env + act_ms + t_update / train_every)
    e2e = bench_end_to_end(n, False, "ale_vector", args.warmup, args.e2e_steps,
                           args.intra_op_threads)
    bare = bench_bare_loop(n, args.e2e_steps, train_every)
    print(f"limit    num_envs={n}: 1 / ({t_env:.3f} + {act_ms:.3f} + {t_update:.1f} / "
          f"{train_every}) ms = {limit:.0f} agent steps/s; end to end / limit = {e2e / limit:.2f}; "
          f"end to end / bare loop = {e2e / bare:.2f}")
    return dict(e2e=e2e, limit=limit, bare=bare, ratio=e2e / limit, overheads=e2e / bare)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="env,act,update,after,replay,checkpoint,heads,"
                        "augment,eval,per,presets,actors,ingest,startup,limit")
    parser.add_argument("--num_envs", default="1,4,8")
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--e2e_steps", type=int, default=6_000)
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="the flagfiles that the presets part times")
    parser.add_argument("--rounds", type=int, default=3, help="limit rounds per num_envs")
    parser.add_argument("--intra_op_threads", type=int, default=0)
    args = parser.parse_args()
    if args.e2e_steps < 2000:
        parser.error("--e2e_steps must be at least 2000: end to end skips its first 1,000 "
                     "learning steps and needs summaries after them")
    parts = args.only.split(",")
    env_counts = [int(n) for n in args.num_envs.split(",")]
    import tensorflow as tf
    from dqn_tf import threads
    # Before TF runs any op, as main.train does; "xla_update" is the child process
    # that times the XLA update with the pool main picks for --jit_compile.
    xla_update_child = parts == ["xla_update"]
    pool = threads.set_tf_threads(args.intra_op_threads, jit_compile=xla_update_child)
    if xla_update_child:
        bench_update(True)
        return
    print(f"machine: {os.cpu_count()} cores, numpy {np.__version__}, tensorflow {tf.__version__}, "
          f"TF intra-op threads {pool or 'one per core (TF default)'}")
    if "env" in parts:
        bench_env("gymnasium", 1)
        for n in env_counts:
            bench_env("ale_vector", n)
    if "act" in parts:
        for jit in (False, True):
            bench_act(jit, sorted(set([1] + env_counts)))
    if "update" in parts:
        bench_update(False)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--only=xla_update",
                        f"--intra_op_threads={args.intra_op_threads}"], check=True)
    if "after" in parts:
        bench_after_heavy_work()
    if "replay" in parts:
        bench_replay(args.capacity)
    if "checkpoint" in parts:
        bench_checkpoint(args.capacity)
    if "heads" in parts:
        bench_heads()
    if "augment" in parts:
        bench_augment()
    if "eval" in parts:
        bench_evaluation()
    if "per" in parts:
        bench_prioritized(args.capacity)
    if "presets" in parts:
        unknown = set(args.presets.split(",")) - set(PRESETS)
        if unknown:
            parser.error(f"--presets: unknown {sorted(unknown)}; choose from {PRESETS}")
        bench_presets(args.warmup, args.e2e_steps, args.presets.split(","))
    if "actors" in parts:
        bench_actors(args.warmup, args.e2e_steps)
    if "ingest" in parts:
        bench_ingest()
    if "startup" in parts:
        bench_startup()
    if "e2e" in parts:
        for n in env_counts:
            bench_end_to_end(n, False, "ale_vector", args.warmup, args.e2e_steps,
                             args.intra_op_threads)
    if "bare" in parts:
        for n in env_counts:
            bench_bare_loop(n, args.e2e_steps, nature_config().train_every)
    if "limit" in parts:
        train_every = nature_config().train_every
        summary = {n: [limit_round(n, train_every, args) for _ in range(args.rounds)]
                   for n in env_counts}
        for n, rounds in summary.items():
            med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            ratios = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
            print(f"summary  num_envs={n}, medians of {len(rounds)} rounds: end to end "
                  f"{med['e2e']:.0f}, limit {med['limit']:.0f}, bare loop {med['bare']:.0f} "
                  f"agent steps/s; end to end / limit {med['ratio']:.2f} ({ratios}); "
                  f"end to end / bare loop {med['overheads']:.2f}")


if __name__ == "__main__":
    main()
