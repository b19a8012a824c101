"""Prints dqn_tf's speed and memory figures (not a test): `python bench/benchmark.py`.

  replay   : add / batch-32 sample time and resident memory of a full buffer
  update   : one Nature-CNN update at batch 32, tf.function with and without XLA
  act      : greedy action for 1 state
  e2e      : agent steps/s of the full agent on SpaceInvaders once learning runs

Each timing is a median over repeats. Pass --only=replay,update,... to pick parts.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


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
    print(f"replay  capacity {capacity:,}: add {add_us:.1f} us/transition, "
          f"resident {rss_gb() - before:.2f} GB for the buffer "
          f"(frames alone {memory.frames.nbytes / 1e9:.2f} GB), process {rss_gb():.2f} GB")
    print(f"replay  sample batch 32: {median_ms(lambda: memory.sample(32), 2000):.3f} ms")


def bench_update():
    import tensorflow as tf
    from dqn_tf import agent as agent_lib, networks
    rng = np.random.default_rng(0)
    s = rng.integers(0, 256, (32, 4, 84, 84), np.uint8)
    a = rng.integers(0, 6, 32).astype(np.int32)
    r, d = np.ones(32, np.float32), np.full(32, 0.99, np.float32)
    spec = agent_lib.state_spec((4, 84, 84), np.uint8)
    for jit in (False, True):
        online, target = networks.nature_cnn(6), networks.nature_cnn(6)
        update = agent_lib.build_update_fn(online, target, agent_lib.make_optimizer("rmsprop"),
                                           spec, jit_compile=jit)
        ms = median_ms(lambda: update(s, a, r, d, s).numpy(), 200)
        print(f"update  batch 32, Nature CNN, jit_compile={jit}: {ms:.1f} ms")
        greedy = agent_lib.build_greedy_fn(online, spec, jit_compile=jit)
        one = s[:1]
        print(f"act     greedy action, 1 state, jit_compile={jit}: "
              f"{median_ms(lambda: greedy(one).numpy(), 500):.2f} ms")
    del tf


def bench_end_to_end(jit: bool, steps: int):
    import dataclasses
    from dqn_tf import config as config_lib, main as main_lib, run_loop
    config = dataclasses.replace(config_lib.Config(), env="ALE/SpaceInvaders-v5",
                                 replay_capacity=100_000, min_replay_size=5_000,
                                 jit_compile=jit)
    env = main_lib.build_env(config, 1, 0)
    agent = main_lib.build_agent(config, env)
    loop = run_loop.run_loop(agent.step, env)
    while agent.agent_steps < config.min_replay_size + 200:  # Warm-up and tracing.
        next(loop)
    start_steps, start = agent.agent_steps, time.perf_counter()
    while agent.agent_steps < start_steps + steps:
        next(loop)
    sps = steps / (time.perf_counter() - start)
    print(f"e2e     SpaceInvaders, Nature config (train every 4, batch 32), "
          f"jit_compile={jit}: {sps:.0f} agent steps/s over {steps:,} steps after learning "
          f"started ({agent.updates} updates)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="replay,update,e2e")
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--e2e_steps", type=int, default=4000)
    args = parser.parse_args()
    parts = args.only.split(",")
    print(f"machine: {os.cpu_count()} cores, numpy {np.__version__}")
    if "replay" in parts:
        bench_replay(args.capacity)
    if "update" in parts:
        bench_update()
    if "e2e" in parts:
        for jit in (False, True):
            bench_end_to_end(jit, args.e2e_steps)


if __name__ == "__main__":
    main()
