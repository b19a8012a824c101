"""Tests for dqn_tf.sweep on a local Ray (127.0.0.1 only): runs, reruns, lost nodes."""

import csv
import dataclasses
import json
import signal
import os
import re
import subprocess
import sys
import threading
import time

import pytest

# Before Ray loads: keep every node on loopback, no cluster token (../shared/notes/ray.md).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"

from dqn_tf import results, sweep  # noqa: E402
from dqn_tf.errors import UserInputError  # noqa: E402

# Ray clusters of their own: one test after another, on one worker.
pytestmark = pytest.mark.xdist_group("ray_sweeps")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CARTPOLE = ["--flagfile=flags/cartpole.cfg", "--eval_every=1000", "--eval_episodes=2",
            "--checkpoint_every=500", "--stop_at_eval_return=100000"]


def test_plan_names_each_run_by_preset_game_and_seed(tmp_path):
    specs = sweep.plan(["pong", "CartPole-v1"], [0, 2], "dqn_modern", str(tmp_path),
                       ["--num_steps=10", "--n_step=3"], 10)
    assert [os.path.basename(s.output_dir) for s in specs] == [  # Seed by seed.
        "dqn_modern-Pong-0", "dqn_modern-CartPole-0", "dqn_modern-Pong-2",
        "dqn_modern-CartPole-2"]
    command = specs[2].command
    assert command[1:3] == ("-m", "dqn_tf.main") and "--n_step=3" in command
    assert "--seed=2" in command and "--env=pong" in command
    assert sweep.preset_name(["x", "--flagfile=flags/a.cfg", "--flagfile=b/pong.cfg"]) == "pong"
    assert sweep.preset_name(["x", "--flagfile=flags/a.cfg", "--flagfile", "b/c.cfg"]) == "c"
    assert sweep.preset_name(["x", "--games=Pong"]) == "dqn_default"
    games = sweep.expand_games(["atari100k", "CartPole-v1"])
    assert len(games) == 27 and games[0] == "Alien" and games[-1] == "CartPole-v1"


def test_a_finished_run_is_skipped_only_with_the_same_flags(tmp_path):
    [spec] = sweep.plan(["CartPole-v1"], [0], "cartpole", str(tmp_path), ["--n_step=3"], 10)
    os.makedirs(spec.output_dir)
    results.write_progress(spec.output_dir, {"state": "finished", "num_steps": 10})
    assert not sweep.is_finished(spec)  # Not run by a sweep: no record of its flags.
    with open(os.path.join(spec.output_dir, sweep.SWEEP_FLAGS), "w") as f:
        json.dump(list(spec.command[3:]), f)
    assert sweep.is_finished(spec)
    assert sweep.is_finished(dataclasses.replace(  # The cluster's address may change.
        spec, command=spec.command + ("--ray_address=10.0.0.1:6379",)))
    [other] = sweep.plan(["CartPole-v1"], [0], "cartpole", str(tmp_path), ["--n_step=1"], 10)
    assert not sweep.is_finished(other)
    [longer] = sweep.plan(["CartPole-v1"], [0], "cartpole", str(tmp_path), ["--n_step=3"], 20)
    assert not sweep.is_finished(longer)


def test_runs_with_actors_are_started_only_as_many_as_the_cluster_holds_with_them():
    sixteen = {"CPU": 16.0}
    assert sweep.runs_that_fit(sixteen, 2, 0, 0) == 8
    assert sweep.runs_that_fit(sixteen, 2, 0, 4 * 1.0) == 2  # Each run's 4 actors too.
    assert sweep.runs_that_fit({"CPU": 16.0, "GPU": 1.0}, 2, 1, 0) == 1
    with pytest.raises(sweep.UserInputError, match="the cluster has 16 CPUs"):
        sweep.runs_that_fit(sixteen, 8, 0, 10)


@pytest.mark.parametrize("args, message", [
    (["--games=Pong"], "--games and --seeds are required"),
    (["--games=NoSuchGame", "--seeds=0"], "NoSuchGame"),
])
def test_the_sweep_command_refuses_bad_input_in_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.sweep", *args,
                           f"--output_root={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_runs_in_the_scores_file_count_as_finished_where_their_directories_are_gone(
        tmp_path):
    """A sweep goes on on another machine from its committed scores.csv: with every run
    there, it starts neither Ray nor a run, and keeps the file's rows."""
    scores = tmp_path / "scores.csv"
    text = (",".join(sweep.SCORE_COLUMNS) + "\nCartPole,0,2000,2,9.5,30.1,1.0,68.8\n"
            "CartPole,1,2000,2,11.0,29.7,1.0,69.6\nPong,0,2000,2,-20.1,36.0,3.0,60.3\n")
    scores.write_text(text)
    command = [sys.executable, "-m", "dqn_tf.sweep", *CARTPOLE, "--games=CartPole-v1",
               "--seeds=0,1", "--num_steps=2000", f"--output_root={tmp_path / 'runs'}",
               f"--scores={scores}"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "(2 skipped: finished before)" in proc.stdout and "Ray" not in proc.stderr
    assert scores.read_text() == text
    assert not os.path.exists(tmp_path / "runs" / "cartpole-CartPole-0")
    # Not a sweep's scores.csv; runs of another --num_steps (the sweep would skip its own).
    for other, problem in [("game,seed,return\nPong,0,1.0\n", "not a sweep's scores.csv"),
                           (text.replace("CartPole,1,2000", "CartPole,1,4000"),
                            "holds a run of 4,000 agent steps (CartPole seed 1); this sweep "
                            "trains for 2,000")]:
        scores.write_text(other)
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: --scores="), proc.stderr
        assert problem in proc.stderr and proc.stderr.rstrip().endswith("name another file")
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert scores.read_text() == other  # Left as it was.


def test_a_scores_file_that_is_not_a_ledger_is_refused_with_its_problem(tmp_path):
    header = ",".join(sweep.SCORE_COLUMNS)
    path = tmp_path / "scores.csv"
    assert sweep.read_scores(str(path), 2000) == {}  # None yet: nothing recorded.
    row = "Pong,0,2000,2,-20.1,36.0,3.0,60.3"
    path.write_text(f"{header}\n{row}\n")
    assert sweep.read_scores(str(path), 2000)[("Pong", 0)]["mean_return"] == "-20.1"
    for text, problem in [("", "is empty"),
                          (f"{header}\n{row}\n{row}\n", "holds Pong seed 0 twice (line 3)"),
                          (f"{header}\nPong,zero,2000,2,1,1,1,1\n", "line 2 is not a run's row"),
                          (f"{header}\nPong,0\n", "line 2 is not a run's row"),
                          (f"{header}\n{row}\n", "holds a run of 2,000 agent steps")]:
        path.write_text(text)
        with pytest.raises(UserInputError, match=re.escape(problem)):
            sweep.read_scores(str(path), 4000 if "2,000" in problem else 2000)
    path.write_bytes(header.encode() + b"\n\xff\xfe,0\n")
    with pytest.raises(UserInputError, match="cannot be read as a CSV file"):
        sweep.read_scores(str(path), 2000)


@pytest.mark.slow
def test_a_cartpole_sweep_completes_and_a_rerun_skips_it(tmp_path):
    command = [sys.executable, "-m", "dqn_tf.sweep", *CARTPOLE, "--games=CartPole-v1",
               "--seeds=0,1", "--num_steps=2000", f"--output_root={tmp_path}",
               "--cpus_per_run=1"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = [tmp_path / f"cartpole-CartPole-{seed}" for seed in (0, 1)]
    for run in runs:
        assert results.read_progress(str(run))["state"] == "finished"
        assert results.read_progress(str(run))["agent_steps"] == 2000
    summary = json.load(open(tmp_path / "sweep_summary.json"))
    states = [(r["seed"], r["state"]) for r in summary["runs"]]
    assert states == [(0, "finished"), (1, "finished")]
    assert os.path.getsize(tmp_path / "curves.png") > 10_000
    with open(tmp_path / sweep.SCORES) as f:
        scores = list(csv.DictReader(f))
    assert [(r["game"], r["seed"], r["agent_steps"]) for r in scores] == [
        ("CartPole", "0", "2000"), ("CartPole", "1", "2000")]
    for row, run in zip(scores, runs):
        final = results.read_evaluations(str(run))[-1]
        assert float(row["mean_return"]) == final["mean"] and row["episodes"] == "2"
        assert 0 < float(row["eval_seconds"]) < float(row["wall_seconds"])
        assert float(row["steps_per_second"]) > 0
        # Pruned: the newest checkpoint alone, whole, without the replay chunks.
        assert sorted(os.listdir(run / "checkpoints")) == ["ckpt-000000002000"]
    games_before = [results.read_train_returns(str(run))["agent_steps"] for run in runs]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" skipped ") == 2 and "(2 skipped: finished before)" in proc.stdout
    assert [results.read_train_returns(str(run))["agent_steps"] for run in runs] == games_before
    # A pruned run still exports, and trains further: its checkpoint restores, the replay
    # refills first.
    exported = subprocess.run([sys.executable, "-m", "dqn_tf.export",
                               f"--checkpoint_dir={runs[0]}", f"--saved_model_dir={tmp_path}/m"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    longer = subprocess.run(
        [sys.executable, "-m", "dqn_tf.main", *CARTPOLE, "--num_steps=2100", "--seed=0",
         f"--output_dir={runs[0]}", "--noprogress"], cwd=ROOT, capture_output=True,
        text=True, timeout=300)
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "Resuming from" in longer.stdout and "refill" in longer.stdout, longer.stdout[-2000:]
    assert json.loads(longer.stdout.splitlines()[-1])["agent_steps"] == 2100


@pytest.mark.slow
def test_sigterm_stops_the_sweep_with_checkpoints_and_the_same_command_resumes(tmp_path):
    command = [sys.executable, "-m", "dqn_tf.sweep", *CARTPOLE, "--games=CartPole-v1",
               "--seeds=0", "--num_steps=4000", "--checkpoint_every=100000",
               f"--output_root={tmp_path}", "--cpus_per_run=1"]
    run = str(tmp_path / "cartpole-CartPole-0")
    # Started as a shell starts `cmd &`: with SIGINT ignored, which Ray's workers inherit
    # (ray.cancel's interrupt did nothing there until train_one restored the handler).
    sweeper = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 300
        while (results.read_progress(run) or {}).get("agent_steps", 0) < 1000:
            assert sweeper.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        sweeper.send_signal(signal.SIGTERM)
        out, err = sweeper.communicate(timeout=300)
    finally:  # A failed wait leaves no sweep, Ray or training process behind.
        if sweeper.poll() is None:
            os.killpg(sweeper.pid, signal.SIGKILL)
            sweeper.wait()
    assert sweeper.returncode == 75, out[-2000:] + err[-2000:]
    assert "rerun the same command to resume" in err
    progress = results.read_progress(run)
    assert progress["state"] == "stopped" and progress["agent_steps"] < 4000
    # No periodic checkpoint (one every 100,000 steps): this one is the signal's.
    stopped_at = progress["agent_steps"]
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
        f"ckpt-{stopped_at:012d}", "replay"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(os.path.join(run, "sweep_run.log")) as log:
        assert f"at agent step {stopped_at:,}" in log.read()  # Resumed where it stopped.
    assert results.read_progress(run)["state"] == "finished"


@pytest.mark.slow
def test_a_run_lost_with_its_node_is_retried_elsewhere_and_resumes(tmp_path):
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 128 * 2**20})
    doomed = cluster.add_node(num_cpus=1, object_store_memory=128 * 2**20)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        # The preset first, so CARTPOLE's overrides hold: a checkpoint every 500 steps leaves
        # 3,500 steps to go when the node is removed (after the preset, its 10,000 made the
        # final checkpoint the first, and the run could finish before the node went).
        [spec, recorded_spec] = sweep.plan(["CartPole-v1"], [0, 5], "cartpole", str(tmp_path),
                                           [*CARTPOLE, "--num_steps=4000"], 4000)
        spec = sweep.RunSpec(spec.game, spec.seed, spec.output_dir,
                             tuple(a.replace("flags/cartpole.cfg",
                                             os.path.join(ROOT, "flags", "cartpole.cfg"))
                                   for a in spec.command), spec.num_steps)
        # Seed 5 finished on another machine: its row is in the scores file, its run
        # directory is not here. It is skipped, and its row kept first.
        outcome, scores_path = {}, str(tmp_path / sweep.SCORES)
        with open(scores_path, "w") as f:
            f.write(",".join(sweep.SCORE_COLUMNS) + "\nCartPole,5,4000,2,187.5,60.0,5.0,72.7\n")
        recorded = sweep.read_scores(scores_path, 4000)
        sweeper = threading.Thread(target=lambda: outcome.update(sweep.run_sweep(
            [spec, recorded_spec], cpus_per_run=1, poll_seconds=1, show=lambda table: None,
            scores_path=scores_path, recorded=recorded)))
        sweeper.start()
        deadline = time.monotonic() + 300
        checkpoints = os.path.join(spec.output_dir, "checkpoints")
        while not (os.path.isdir(checkpoints) and any(  # A complete one, not a .partial.
                n.startswith("ckpt-") and "." not in n for n in os.listdir(checkpoints))):
            assert time.monotonic() < deadline, "no checkpoint before the node was lost"
            time.sleep(0.1)
        cluster.remove_node(doomed)  # The run's node goes away, its processes with it.
        progress = results.read_progress(spec.output_dir)  # None before the first summary.
        assert progress is None or progress["state"] == "running", progress
        cluster.add_node(num_cpus=1, object_store_memory=128 * 2**20)  # Where it goes on.
        sweeper.join(600)
        assert outcome[spec.output_dir]["state"] == "finished", outcome
        assert outcome[recorded_spec.output_dir]["state"].startswith("skipped"), outcome
        assert not os.path.exists(recorded_spec.output_dir)
        progress = results.read_progress(spec.output_dir)
        assert progress["state"] == "finished" and progress["agent_steps"] == 4000
        with open(os.path.join(spec.output_dir, "sweep_run.log")) as log:
            text = log.read()
        assert text.count("$ ") == 2 and "Resuming from" in text  # Retried, and resumed.
        # Its score was written as it finished, not only in the summary at the sweep's end.
        with open(scores_path) as f:
            kept, row = list(csv.DictReader(f))
        assert list(kept.values()) == ["CartPole", "5", "4000", "2", "187.5", "60.0", "5.0",
                                       "72.7"]
        assert (row["game"], row["seed"], row["agent_steps"]) == ("CartPole", "0", "4000")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
