"""Tests for dqn_tf.export and dqn_tf.evaluate: SavedModel round trip, playing, bad input."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dqn_tf import export, networks

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Runs in a fresh interpreter: plain TensorFlow, no dqn_tf training modules.
LOAD_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
x = np.load(sys.argv[2])
out = serve(observations=tf.constant(x))
np.save(sys.argv[3], out["q_values"].numpy())
assert not any(m.startswith("dqn_tf") for m in sys.modules), "trainer was imported"
print(json.dumps(sorted(out)))
"""

CONFIG = {"env": "CartPole-v1", "action_repeat": 1, "sticky_action_prob": 0.0,
          "history_length": 1, "noop_max": 0, "fire_reset": False,
          "max_frames_per_episode": 500}


def export_mlp(directory):
    network = networks.mlp(2, (4,), (16,))
    env = export.env_metadata(CONFIG, ("0", "1"), (4,))
    export.export_saved_model(network, directory, env=env, agent_steps=7, config=CONFIG)
    return network


@pytest.mark.slow
def test_saved_model_matches_keras_in_a_fresh_process(tmp_path):
    network = export_mlp(str(tmp_path / "model"))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "model"),
                           str(tmp_path / "x.npy"), str(tmp_path / "q.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["action", "q_values"]
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), network(x).numpy(), rtol=1e-5)


def test_signature_and_metadata(tmp_path):
    import tensorflow as tf
    export_mlp(str(tmp_path / "model"))
    signature = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["observations"]
    assert spec.shape.as_list() == [None, 4] and spec.dtype == tf.float32
    with open(tmp_path / "model" / "assets" / "dqn_tf.json") as f:
        metadata = json.load(f)
    assert metadata["format"] == export.FORMAT and metadata["agent_steps"] == 7
    assert metadata["env"]["env_id"] == "CartPole-v1" and metadata["env"]["num_actions"] == 2


def test_export_replaces_atomically(tmp_path):
    target = str(tmp_path / "model")
    export_mlp(target)
    export_mlp(target)
    assert sorted(os.listdir(tmp_path)) == ["model"]  # No partial or old directories left.


def run_evaluate(*args):
    return subprocess.run([sys.executable, "-m", "dqn_tf.evaluate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_evaluate_atari_smoke_model_writes_video_and_json(tmp_path):
    from tests.main_test import train_with_preset
    out = str(tmp_path / "run")
    train_with_preset("smoke.cfg", env="SpaceInvaders", output_dir=out, progress=False,
                      num_steps=300, eval_every=0)
    video, report = str(tmp_path / "game.mp4"), str(tmp_path / "eval.json")
    proc = run_evaluate(f"--saved_model={out}/saved_model/final", "--episodes=1",
                        f"--video={video}", f"--output_json={report}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(report))
    assert result["episodes"] == 1 and result["env_id"] == "ALE/SpaceInvaders-v5"
    assert result["human_normalised"] == pytest.approx((result["mean"] - 148.0) / 1504.0)
    capture = cv2.VideoCapture(video)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        160, 210)
    # The smoke preset caps games at 4,000 raw frames = 1,000 agent steps.
    frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    assert frames >= 50 and "human-normalised" in proc.stdout
    # On-demand export from the run's newest checkpoint.
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.export", f"--checkpoint_dir={out}",
                           f"--saved_model_dir={tmp_path}/exported"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "exported" / "assets" / "dqn_tf.json") as f:
        assert json.load(f)["agent_steps"] == 300


@pytest.mark.slow
def test_evaluate_does_not_import_the_trainer():
    code = ("import sys, dqn_tf.evaluate; "
            "bad = [m for m in ('dqn_tf.agent', 'dqn_tf.networks', 'dqn_tf.replay', "
            "'dqn_tf.main', 'dqn_tf.checkpointing', 'dqn_tf.config') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_evaluate_bad_inputs(tmp_path):
    export_mlp(str(tmp_path / "model"))
    (tmp_path / "empty").mkdir()
    foreign = tmp_path / "foreign"
    export_mlp(str(foreign))
    os.remove(foreign / "assets" / "dqn_tf.json")
    cases = [([f"--saved_model={tmp_path}/missing"], "does not exist"),
             ([f"--saved_model={tmp_path}/empty"], "is not a SavedModel"),
             ([f"--saved_model={foreign}"], "not made by dqn_tf"),
             ([f"--saved_model={tmp_path}/model", "--env=Acrobot-v1"], "actions"),
             ([f"--saved_model={tmp_path}/model", "--intra_op_threads=-1"], "intra_op_threads")]
    for args, fragment in cases:
        proc = run_evaluate(*args)
        assert proc.returncode == 2, (args, proc.stderr[-1000:])
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and fragment in errors[0], (args, proc.stderr[-1000:])


@pytest.mark.slow
def test_evaluate_sizes_tf_threads_before_loading_the_model(tmp_path):
    export_mlp(str(tmp_path / "model"))
    small_machine = (len(os.sched_getaffinity(0)) <= 2
                     and "TF_NUM_INTRAOP_THREADS" not in os.environ)
    for flag, pool in [([], "1" if small_machine else "TF's default"),
                       (["--intra_op_threads=2"], "2")]:
        proc = run_evaluate(f"--saved_model={tmp_path}/model", "--episodes=1", "--verbosity=0",
                            *flag)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"TF intra-op threads: {pool}" in proc.stderr, (flag, proc.stderr[-2000:])
        assert "applies only to a new process" not in proc.stderr


@pytest.mark.slow
def test_evaluate_cartpole_matches_trainer_eval(tmp_path, trained_cartpole):
    run, result = trained_cartpole
    report = str(tmp_path / "eval.json")
    proc = run_evaluate(f"--saved_model={run}/saved_model/best", "--episodes=20",
                        "--epsilon=0", "--noop_max=0", f"--output_json={report}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.load(open(report))["mean"]
    assert evaluated >= 475 and abs(evaluated - result["best_eval_return"]) <= 25


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider"]))
