"""Where an agent step's time goes in the real training loop (not a test).

    python bench/loop_profile.py --num_envs=1 [--jit_compile] [--no-jit_act] [--no-overlap]
                                 [--intra_op_threads=N]

Runs the Nature-preset agent on SpaceInvaders (epsilon at its final 0.1 once
learning starts) through `run_loop.run_loop`, and prints ms per agent step spent
in `DqnAgent.step` (recording and acting), in `DqnAgent.learn` (updates and
replay sampling, while the env steps in its C++ threads) and waiting in
`env.recv` for the rest of the env step.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark import GAME, nature_config  # noqa: E402


def timed(totals: dict, name: str, fn):
    def wrapper(*args):
        start = time.perf_counter()
        result = fn(*args)
        totals[name] += time.perf_counter() - start
        return result
    return wrapper


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_envs", type=int, default=1)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--jit_act", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--env_backend", default="ale_vector", choices=["ale_vector", "gymnasium"])
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                        help="learn while the env steps (--no-overlap: inside agent.step)")
    parser.add_argument("--warmup", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--intra_op_threads", type=int, default=0, help="main's flag (0 = auto)")
    args = parser.parse_args()
    from dqn_tf import training, run_loop, threads
    pool = threads.set_tf_threads(args.intra_op_threads, args.jit_compile)
    config = nature_config(env=GAME, num_envs=args.num_envs, replay_capacity=50_000,
                           min_replay_size=args.warmup, epsilon_decay_steps=1,
                           jit_compile=args.jit_compile, jit_act=args.jit_act,
                           env_backend=args.env_backend)
    env = training.build_env(config, list(range(args.num_envs)))
    agent = training.build_agent(config, env)
    totals = dict.fromkeys(("agent.step", "act", "agent.learn", "update", "sample",
                            "env.send", "env.recv"), 0.0)
    agent.learner.learn_once = timed(totals, "update", agent.learner.learn_once)
    agent.replay.sample = timed(totals, "sample", agent.replay.sample)
    agent.actor.step = timed(totals, "act", agent.actor.step)
    env.send, env.recv = timed(totals, "env.send", env.send), timed(totals, "env.recv", env.recv)
    learn = timed(totals, "agent.learn", agent.learn)
    agent_step = timed(totals, "agent.step", agent.step)
    if not args.overlap:  # Learn at the start of the next agent.step, as if no hook was given.
        agent.learn = learn
    loop = run_loop.run_loop(agent_step, env, learn if args.overlap else None)
    for _ in loop:  # Fill the replay, then trace the update.
        if agent.agent_steps >= args.warmup + 500:
            break
    totals.update(dict.fromkeys(totals, 0.0))
    start_steps, start = agent.agent_steps, time.perf_counter()
    for _ in loop:
        if agent.agent_steps >= start_steps + args.steps:
            break
    seconds, steps = time.perf_counter() - start, agent.agent_steps - start_steps
    parts = ", ".join(f"{k} {1000 * v / steps:.3f}" for k, v in totals.items())
    print(f"{args.env_backend} num_envs={args.num_envs} jit_compile={args.jit_compile} "
          f"jit_act={args.jit_act} overlap={args.overlap} intra_op_threads={pool}: "
          f"{steps / seconds:.0f} agent steps/s; ms per agent step: total "
          f"{1000 * seconds / steps:.3f} = {parts} "
          "(act is inside agent.step; update and sample inside agent.learn)")
    env.close()


if __name__ == "__main__":
    main()
