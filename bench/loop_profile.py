"""Where an agent step's time goes in the real training loop (not a test).

    python bench/loop_profile.py --num_envs=1 [--jit_compile]

Runs the Nature-preset agent on SpaceInvaders (epsilon at its final 0.1 once
learning starts) and prints ms per agent step spent in the env, the whole
`DqnAgent.step`, and inside it in updates, replay sampling and acting.
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
    parser.add_argument("--warmup", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    from dqn_tf import main as main_lib
    config = nature_config(env=GAME, num_envs=args.num_envs, replay_capacity=50_000,
                           min_replay_size=args.warmup, epsilon_decay_steps=1,
                           jit_compile=args.jit_compile)
    env = main_lib.build_env(config, args.num_envs, 0)
    agent = main_lib.build_agent(config, env)
    totals = dict.fromkeys(("env", "agent.step", "update", "sample", "act"), 0.0)
    agent.learn_once = timed(totals, "update", agent.learn_once)
    agent.replay.sample = timed(totals, "sample", agent.replay.sample)
    agent.actor.step = timed(totals, "act", agent.actor.step)
    agent_step, env_step = timed(totals, "agent.step", agent.step), timed(totals, "env", env.step)
    timestep = env.reset()
    while agent.agent_steps < args.warmup + 500:  # Fill, then trace the update.
        timestep = env.step(agent.step(timestep))
    totals.update(dict.fromkeys(totals, 0.0))
    start_steps, start = agent.agent_steps, time.perf_counter()
    while agent.agent_steps < start_steps + args.steps:
        timestep = env_step(agent_step(timestep))
    seconds, steps = time.perf_counter() - start, agent.agent_steps - start_steps
    parts = ", ".join(f"{k} {1000 * v / steps:.3f}" for k, v in totals.items())
    print(f"num_envs={args.num_envs} jit_compile={args.jit_compile}: {steps / seconds:.0f} agent "
          f"steps/s; ms per agent step: total {1000 * seconds / steps:.3f} = {parts} "
          "(update, sample and act are inside agent.step)")
    env.close()


if __name__ == "__main__":
    main()
