"""Fault injection on real training processes: SIGKILL, SIGTERM, a full disk, damaged files.

Every test runs `python -m dqn_tf.main` on CartPole in a subprocess, as a user
would, and checks exit codes, messages and what is left in --output_dir.
"""

import dataclasses
import glob
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from dqn_tf import config as config_lib
from dqn_tf import main as main_lib
from dqn_tf import training as training_lib
from dqn_tf.errors import UserInputError
from tests.summaries_test import raw_scalar_steps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# CartPole with learning from step 500, a checkpoint (with replay) every 250
# steps, a summary every 100 and an evaluation every 1,000.
RUN_FLAGS = ["--flagfile=flags/cartpole.cfg", "--min_replay_size=500", "--checkpoint_every=250",
             "--checkpoint_replay", "--replay_capacity=20000", "--summary_every=100",
             "--eval_every=1000", "--eval_episodes=2", "--stop_at_eval_return=1000000",
             "--progress=false"]


def command(output_dir, *extra):
    return [sys.executable, "-m", "dqn_tf.main", *RUN_FLAGS, f"--output_dir={output_dir}",
            *extra]


def run(output_dir, *extra, preexec_fn=None):
    return subprocess.run(command(output_dir, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec_fn)


def refused_before_tensorflow(output_dir, *extra):
    """Runs a training command that must be refused; asserts that TensorFlow was not
    imported first (Python's -X importtime lists every import on stderr)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *command(output_dir, *extra)[1:]],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    imports = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert imports and not any(line.split("|")[-1].strip() == "tensorflow" for line in imports)
    return proc


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def checkpoint_steps(output_dir):
    return [int(os.path.basename(p)[len("ckpt-"):]) for p in
            sorted(glob.glob(os.path.join(output_dir, "checkpoints", "ckpt-*")))
            if os.path.exists(os.path.join(p, "COMPLETE")) and ".partial" not in p]


@pytest.fixture(scope="module")
def run_at_500(tmp_path_factory):
    """A finished 500-step run (checkpoints at 250 and 500, with replay), trained once per
    worker; tests that start from it take a copy (`copy_of_run_at_500`)."""
    out = str(tmp_path_factory.mktemp("faults") / "run")
    proc = run(out, "--num_steps=500")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert checkpoint_steps(out) == [250, 500]
    return out


@pytest.fixture
def copy_of_run_at_500(run_at_500, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(run_at_500, out)
    return out


class Training:
    """A training subprocess whose stdout is read line by line in the background."""

    def __init__(self, output_dir, *extra):
        self.proc = subprocess.Popen(command(output_dir, *extra), cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines, self.started = [], threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Hyperparameters:"):
                self.started.set()
        self.started.set()

    def wait(self, timeout=120):
        returncode = self.proc.wait(timeout)
        self.reader.join(10)
        return returncode


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_resumes_to_the_end(tmp_path):
    out = str(tmp_path / "run")
    num_steps, rng, newest, kills = 8000, random.Random(2026), 0, 0
    for _ in range(4):
        training = Training(out, f"--num_steps={num_steps}")
        assert training.started.wait(120)
        time.sleep(rng.uniform(0.2, 2.0))  # Setup is done; kill while stepping or saving.
        training.proc.send_signal(signal.SIGKILL)
        returncode = training.wait()
        resumed = [line for line in training.lines if line.startswith("Resuming from")]
        if newest:  # Restarted exactly at the newest complete checkpoint.
            assert resumed and f"at agent step {newest:,}." in resumed[0], training.lines
        steps = checkpoint_steps(out)
        assert not steps or steps[-1] >= newest, (steps, newest)  # Never backwards.
        newest = steps[-1] if steps else 0
        if returncode == 0:  # A fast machine finished before the kill landed.
            break
        assert returncode == -signal.SIGKILL
        kills += 1
    assert kills >= 3, kills
    assert newest > 0, "no checkpoint was completed before the kills"
    final = run(out, f"--num_steps={num_steps}")
    assert final.returncode == 0, final.stderr[-2000:]
    assert newest == num_steps or f"at agent step {newest:,}." in final.stdout
    assert json.loads(final.stdout.splitlines()[-1])["agent_steps"] == num_steps
    assert checkpoint_steps(out)[-1] == num_steps
    assert not glob.glob(os.path.join(out, "checkpoints", "*.partial-*"))
    # The final checkpoint loads into fresh networks and exports a SavedModel.
    exported = subprocess.run(
        [sys.executable, "-m", "dqn_tf.export", f"--checkpoint_dir={out}",
         f"--saved_model_dir={tmp_path}/policy"], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    # Points logged after a checkpoint by a killed process were dropped on resume:
    # each summary step appears exactly once, with no gap.
    steps = raw_scalar_steps(os.path.join(out, "tensorboard"))
    assert steps["Train/Epsilon"] == list(range(100, num_steps + 1, 100))
    assert steps["Eval/AverageReturns"] == list(range(1000, num_steps + 1, 1000))
    assert len(set(steps["Train/EpisodeReturn"])) == len(steps["Train/EpisodeReturn"])
    # The results files too: each training game and evaluation once, in step order.
    from dqn_tf import results
    games = results.read_train_returns(out)["agent_steps"]
    assert games == sorted(set(games)) and games == steps["Train/EpisodeReturn"]
    assert [r["agent_steps"] for r in results.read_evaluations(out)] == list(
        range(1000, num_steps + 1, 1000))


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_exits_75_to_be_resumed(tmp_path):
    out = str(tmp_path / "run")
    training = Training(out, "--num_steps=1000000")
    assert training.started.wait(120)
    time.sleep(2.0)
    sent = time.monotonic()
    training.proc.send_signal(signal.SIGTERM)
    # Not 0: a job runner that restarts failed jobs must rerun it (EX_TEMPFAIL).
    assert training.wait(timeout=30) == main_lib.EXIT_STOPPED_BY_SIGNAL == 75
    assert time.monotonic() - sent < 30
    result = json.loads(training.lines[-1])
    assert result["stopped_by_signal"] and result["agent_steps"] > 0
    assert checkpoint_steps(out)[-1] == result["agent_steps"]  # The step it stopped at.
    assert max(raw_scalar_steps(os.path.join(out, "tensorboard"))["Train/Epsilon"]) > 0


@pytest.mark.slow
def test_sigterm_stops_an_evaluation_within_seconds_and_the_resume_redoes_it(tmp_path):
    out = str(tmp_path / "run")
    # An evaluation of 10,000 games at step 1,000 would take far longer than a grace period.
    training = Training(out, "--num_steps=3000", "--eval_every=1000", "--eval_episodes=10000")
    deadline = time.monotonic() + 120
    while not any(line.startswith("evaluating at step 1,000") for line in training.lines):
        assert time.monotonic() < deadline and training.proc.poll() is None, training.lines
        time.sleep(0.1)
    time.sleep(1.0)
    sent = time.monotonic()
    training.proc.send_signal(signal.SIGTERM)
    assert training.wait(timeout=30) == 75
    assert time.monotonic() - sent < 10, "the evaluation did not stop within seconds"
    assert checkpoint_steps(out)[-1] == 1000
    assert "Eval/AverageReturns" not in raw_scalar_steps(os.path.join(out, "tensorboard"))
    resumed = run(out, "--num_steps=1500", "--eval_every=1000", "--eval_episodes=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "at agent step 1,000." in resumed.stdout
    assert "eval at step 1,000:" in resumed.stdout  # Redone first, before training on.
    steps = raw_scalar_steps(os.path.join(out, "tensorboard"))
    assert steps["Eval/AverageReturns"] == [1000, 1500]


@pytest.mark.slow
def test_a_second_process_on_a_run_in_use_is_refused_until_the_first_dies(tmp_path):
    out = str(tmp_path / "run")
    training = Training(out, "--num_steps=1000000")
    assert training.started.wait(120)
    second = refused_before_tensorflow(out, "--num_steps=500")
    [error] = error_lines(second)
    assert f"is in use by another dqn_tf process (pid {training.proc.pid})" in error
    training.proc.send_signal(signal.SIGKILL)  # The kernel drops the lock with the process.
    training.wait()
    again = run(out, "--num_steps=500")
    assert again.returncode == 0, again.stderr[-2000:]


def test_second_interrupt_exits_at_once():
    code = ("from dqn_tf.training import StopRequest; import signal; stop = StopRequest(); "
            "stop(signal.SIGINT, None); print('first asks to stop', stop.requested, flush=True); "
            "stop(signal.SIGINT, None); print('not reached')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 130
    assert "first asks to stop True" in proc.stdout and "not reached" not in proc.stdout


def limit_file_size():
    """In the child: files may not grow past 300 kB (Python ignores SIGXFSZ -> EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


@pytest.mark.slow
def test_write_error_while_checkpointing_keeps_the_previous_one_and_stops(copy_of_run_at_500):
    out = copy_of_run_at_500
    before = checkpoint_steps(out)
    proc = run(out, "--num_steps=1000", preexec_fn=limit_file_size)
    assert proc.returncode == 4, proc.stderr[-2000:]
    [error] = error_lines(proc)
    assert "could not write the checkpoint at agent step 750 (File too large)" in error
    assert "ckpt-000000000500 is intact" in error and "Traceback" not in proc.stderr
    assert checkpoint_steps(out) == before
    assert not glob.glob(os.path.join(out, "checkpoints", "*.partial-*"))
    again = run(out, "--num_steps=1000")  # With room again, nothing was lost.
    assert again.returncode == 0 and "at agent step 500." in again.stdout


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_replay_chunk_costs_older_transitions_not_the_checkpoint(copy_of_run_at_500,
                                                                          damage):
    out = copy_of_run_at_500
    with open(os.path.join(out, "checkpoints", "ckpt-000000000500", "replay.json")) as f:
        chunks = json.load(f)["chunks"]
    assert [(c["first"], c["end"]) for c in chunks][:2] == [(0, 250), (250, 500)]
    frames = os.path.join(out, "checkpoints", "replay", chunks[0]["name"], "frames.npy")
    with open(frames, "r+b") as f:
        if damage == "truncate":
            f.truncate(os.path.getsize(frames) - 64)
        else:  # Same size, one byte changed in the middle of the data.
            f.seek(os.path.getsize(frames) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    proc = run(out, "--num_steps=750")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "at agent step 500." in proc.stdout  # The newest checkpoint, with its weights.
    reason = "bytes, expected" if damage == "truncate" else "checksum mismatch"
    assert "lost its 250 oldest transitions" in proc.stderr and reason in proc.stderr
    assert "The replay holds 250 transitions: the next 250 agent steps refill it" in proc.stdout


@pytest.mark.slow
def test_checkpoint_from_another_game_is_refused_with_its_name(copy_of_run_at_500, tmp_path):
    cartpole = copy_of_run_at_500
    acrobot = str(tmp_path / "acrobot")
    shutil.copytree(os.path.join(cartpole, "checkpoints"), os.path.join(acrobot, "checkpoints"))
    proc = run(acrobot, "--env=Acrobot-v1", "--num_steps=750")
    assert proc.returncode == 2
    [error] = error_lines(proc)
    assert "trained on --env=CartPole-v1, not --env=Acrobot-v1" in error
    assert checkpoint_steps(acrobot) == [250, 500]  # Nothing was overwritten.


@pytest.mark.slow
def test_output_dir_with_another_config_or_unwritable_is_refused(copy_of_run_at_500, tmp_path):
    out = copy_of_run_at_500
    with open(os.path.join(out, "config.json")) as f:
        config_before = f.read()
    proc = refused_before_tensorflow(out, "--num_steps=750", "--gamma=0.9")
    [error] = error_lines(proc)
    assert "holds a run with a different config (gamma: 0.99 -> 0.9)" in error
    assert "--overwrite" in error
    with open(os.path.join(out, "config.json")) as f:
        assert f.read() == config_before
    assert checkpoint_steps(out) == [250, 500]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = refused_before_tensorflow(str(blocker / "run"))
    [error] = error_lines(proc)
    assert "is not writable" in error and "choose another --output_dir" in error


def test_checkpoint_state_of_another_run_is_named():
    config = config_lib.Config(env="ALE/Pong-v5")
    state = json.loads(json.dumps({"version": training_lib.STATE_VERSION,
                                   "config": dataclasses.asdict(config)}))
    training_lib.check_checkpoint_state(state, config)
    with pytest.raises(UserInputError, match="--env=ALE/Pong-v5, not"):
        training_lib.check_checkpoint_state(state,
                                            dataclasses.replace(config, env="ALE/Breakout-v5"))
    with pytest.raises(UserInputError, match="--n_step=1, not --n_step=3"):
        training_lib.check_checkpoint_state(state, dataclasses.replace(config, n_step=3))
    with pytest.raises(UserInputError, match="format version 7"):
        training_lib.check_checkpoint_state(dict(state, version=7), config)


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
