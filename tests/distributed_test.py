"""Tests for dqn_tf.distributed: the chunk protocol, and remote actors on a local Ray."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

# Before Ray loads: keep every node on loopback, no cluster token (../shared/notes/ray.md).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"

from dqn_tf import config as config_lib  # noqa: E402
from dqn_tf import distributed, results, training  # noqa: E402
from tests.main_test import train_with_preset  # noqa: E402

# Ray clusters of their own: one test after another, on one worker.
pytestmark = pytest.mark.xdist_group("ray_actors")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def test_chunks_fill_the_replay_as_the_lock_step_agent_does():
    """An actor's chunks, recorded into its streams, give the very arrays that one
    process stepping the same envs with the same seeds adds step by step."""
    config = dataclasses.replace(
        config_lib.Config(), env="CartPole-v1", history_length=1, noop_max=0, num_envs=3,
        mlp_hidden_sizes=(8,), replay_capacity=6000, min_replay_size=100_000)  # No learning.
    # One process: envs and actor seeded as stream i of generation 0.
    env = training.build_env(config, [training.seeding.int_seed(0, "env", i)
                                      for i in range(3)])
    agent = training.build_agent(config, env)
    loop = training.run_loop.run_loop(agent.step, env, agent.learn)
    for _ in range(301):
        next(loop)
    # An actor (here in-process, as Ray would run it) sending chunks of 50 lock-steps.
    worker = distributed.ActorWorker(dataclasses.asdict(config), actor_index=0)
    learner = training.build_learner(config, (4,), np.float32, 2, num_streams=3)
    weights = worker.network.get_weights()  # Random acting: any weights do.
    for steps in (50, 50, 50, 50, 50, 50, 1):  # 301 TimeSteps, as the 301 events above.
        reply = worker.run(steps, epsilon=1.0, generation=0, weights=weights)
        learner.record(reply.rows, streams=distributed.actor_streams(config, 0))
        weights = None  # Sent once.
    lock_step, chunked = agent.replay, learner.replay
    assert chunked.num_added.tolist() == lock_step.num_added.tolist() and lock_step.terminal.any()
    for name in ("frames", "action", "reward", "terminal", "episode_end"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(lock_step, name), name)
    assert learner.agent_steps == agent.agent_steps


def test_a_chunk_goes_into_the_streams_it_is_recorded_into():
    config = dataclasses.replace(
        config_lib.Config(), env="CartPole-v1", history_length=1, noop_max=0, num_envs=3,
        num_actors=2, mlp_hidden_sizes=(8,), replay_capacity=6000, min_replay_size=100_000)
    worker = distributed.ActorWorker(dataclasses.asdict(config), actor_index=1)
    learner = training.build_learner(config, (4,), np.float32, 2, num_streams=6)
    asked = worker.run(20, epsilon=1.0, generation=0)  # A new process without weights.
    assert asked.needs_weights and asked.rows is None and not asked.episodes
    first = worker.run(20, epsilon=1.0, generation=0, weights=worker.network.get_weights())
    assert first.new_games and not first.needs_weights
    assert not worker.run(1, epsilon=1.0, generation=0).new_games
    chunk = first.rows
    learner.record(chunk, streams=distributed.actor_streams(config, 1))
    added = learner.replay.num_added
    assert added[:3].tolist() == [0, 0, 0] and (added[3:] >= 15).all()  # A reset skips one.
    assert learner.agent_steps == added.sum() == int(chunk.env_mask.sum())


def test_actor_streams_and_apex_epsilons():
    config = dataclasses.replace(config_lib.Config(), num_envs=2, num_actors=8,
                                 actor_epsilons="apex")
    assert distributed.actor_streams(config, 3).tolist() == [6, 7]
    epsilons = [distributed.actor_epsilon(config, i, 0) for i in range(8)]
    assert epsilons[0] == pytest.approx(0.4) and epsilons[-1] == pytest.approx(0.4 ** 8)
    assert epsilons == sorted(epsilons, reverse=True)


@pytest.mark.slow
def test_cartpole_is_learned_with_two_actors(tmp_path, capsys):
    out = str(tmp_path / "run")
    # The actors' replies wait while the driver evaluates (100 games, longer than the
    # stall limit): that must not pass for a hang.
    stall = 1.0
    result = train_with_preset("cartpole.cfg", num_actors=2, output_dir=out, progress=False,
                               eval_every=5000, eval_episodes=100, actor_stall_seconds=stall)
    assert result["best_eval_return"] >= 475, result
    assert result["agent_steps"] <= 50_000 + 2 * 50  # The last chunks may overshoot.
    assert max(e["seconds"] for e in results.read_evaluations(out)) > stall
    assert "(hung)" not in capsys.readouterr().out


RUN = [sys.executable, "-m", "dqn_tf.main", "--flagfile=flags/cartpole.cfg", "--num_actors=2",
       "--checkpoint_every=1000", "--eval_every=0", "--noprogress",
       "--stop_at_eval_return=100000"]


def actor_pids(driver_pid):
    """Pids of the Ray actor processes running ActorWorker that descend from
    `driver_pid` (a local Ray's processes are the driver's descendants)."""
    parents = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.split("/")[2])] = int(fields[1])

    def descends(pid):
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == driver_pid:
                return True
        return False

    pids = []
    for pid in parents:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().decode(errors="replace")
        except OSError:
            continue
        if "ActorWorker" in command and descends(pid):
            pids.append(pid)
    return pids


class Driver:
    """A training process whose output is read line by line in the background."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([*RUN, *args], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(
            line.rstrip("\n") for line in self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, predicate, timeout=300):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.lines[-20:]
            time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_actor_and_a_hung_one_are_replaced_then_sigterm_stops_the_run(tmp_path):
    out = str(tmp_path / "run")
    driver = Driver(f"--output_dir={out}", "--num_steps=1000000", "--actor_stall_seconds=10")
    driver.wait_for(lambda: (results.read_progress(out) or {}).get("agent_steps", 0) >= 1000
                    and len(actor_pids(driver.proc.pid)) == 2)
    killed, hung = actor_pids(driver.proc.pid)
    backs = lambda: sum("is back (a new process)" in line for line in driver.lines)  # noqa: E731
    # Killed mid-chunk: its request fails, a new process plays on (it says so when its
    # first chunk comes). Ray 2.60's own restarts could leave that request hanging.
    os.kill(killed, signal.SIGKILL)
    driver.wait_for(lambda: backs() >= 1)
    hung_lines = lambda: [line for line in driver.lines if "(hung)" in line]  # noqa: E731
    assert any("died" in line and "starting a new process on new streams" in line
               for line in driver.lines) and not hung_lines()
    # Hung (stopped, alive): nothing comes for --actor_stall_seconds, so it is replaced.
    os.kill(hung, signal.SIGSTOP)
    driver.wait_for(lambda: backs() >= 2)
    assert len(hung_lines()) == 1 and "has sent nothing for" in hung_lines()[0]
    driver.wait_for(lambda: not os.path.exists(f"/proc/{hung}"), timeout=60)  # Ray ends it.
    pids = actor_pids(driver.proc.pid)
    assert len(pids) == 2 and not {killed, hung} & set(pids)
    # Ray installs its own SIGTERM handler; the run's must still stop it with a checkpoint.
    driver.proc.send_signal(signal.SIGTERM)
    assert driver.proc.wait(120) == 75, driver.lines[-20:]
    progress = results.read_progress(out)
    assert progress["state"] == "stopped" and progress["agent_steps"] > 1000


@pytest.mark.slow
def test_a_driver_killed_with_sigkill_resumes_with_the_same_command(tmp_path):
    out = str(tmp_path / "run")
    driver = Driver(f"--output_dir={out}", "--num_steps=4000")
    checkpoints = os.path.join(out, "checkpoints")
    driver.wait_for(lambda: os.path.isdir(checkpoints) and any(
        name.startswith("ckpt-") and "." not in name for name in os.listdir(checkpoints)))
    driver.proc.send_signal(signal.SIGKILL)
    driver.proc.wait(60)
    deadline = time.monotonic() + 60  # Its Ray and actors go with it.
    while actor_pids(driver.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    resumed = subprocess.run([*RUN, f"--output_dir={out}", "--num_steps=4000"], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stdout
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["agent_steps"] >= 4000
    games = results.read_train_returns(out)["agent_steps"]
    assert games == sorted(games)  # What the killed driver logged past its checkpoint went.


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
