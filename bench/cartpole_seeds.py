"""Prints when `flags/cartpole.cfg` passes the learning gate, seed by seed (not a test).

    python bench/cartpole_seeds.py --seeds=0,1,2,3,4,5,6,7,8,9 [--parallel=2] [--flag=value ...]

Each seed is one `python -m dqn_tf.main --flagfile=flags/cartpole.cfg` run in its own
process, stopping at the first evaluation (20 greedy games, every 2,500 agent steps)
whose mean return reaches 475 (`--stop_at_eval_return`), or at 50,000 agent steps.
Extra `--flag=value` arguments are passed to every run (to try another config).
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run_seed(seed: int, extra: list) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, "-m", "dqn_tf.main", "--flagfile=flags/cartpole.cfg",
             f"--seed={seed}", f"--output_dir={out}", "--noprogress", *extra],
            cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"seed": seed, "error": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seed": seed, "agent_steps": result["agent_steps"],
            "best_eval_return": result["best_eval_return"],
            "passed": (result["best_eval_return"] or 0) >= 475}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--parallel", type=int, default=2)
    args, extra = parser.parse_known_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda s: run_seed(s, extra), seeds))
    for r in results:
        print(json.dumps(r))
    passed = [r for r in results if r.get("passed")]
    steps = sorted(r["agent_steps"] for r in passed)
    print(f"cartpole gate: {len(passed)} of {len(results)} seeds reach a greedy mean >= 475 "
          f"within 50,000 agent steps; agent steps to get there: {steps}"
          + (f" {' '.join(extra)}" if extra else ""))


if __name__ == "__main__":
    main()
