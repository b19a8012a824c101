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

# Runs in a fresh interpreter with plain TensorFlow (no dqn_tf): every client of a
# SavedModel computes the Q-values and actions of inputs x.npy, and saves them.
CLIENTS_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf
model_dir, x_path, out = sys.argv[1:]
x = np.load(x_path)
# (a) TF2: tf.saved_model.load and the serving signature.
serve = tf.saved_model.load(model_dir).signatures["serving_default"]
result = serve(observations=tf.constant(x))
np.savez(out + "tf2.npz", **{k: v.numpy() for k, v in result.items()})
# (b) The TF1 session loader, as TensorFlow Serving's C++ loader runs a model.
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], model_dir)
    signature = meta_graph.signature_def["serving_default"]
    fetched = session.run({k: v.name for k, v in signature.outputs.items()},
                          {signature.inputs["observations"].name: x})
np.savez(out + "session.npz", **fetched)
# (c) TFLite: convert, then run the converted model in LiteRT's interpreter (TensorFlow
# deprecates tf.lite.Interpreter for it: ai-edge-litert, in the test extra).
from ai_edge_litert.interpreter import Interpreter
flatbuffer = tf.lite.TFLiteConverter.from_saved_model(model_dir).convert()
runner = Interpreter(model_content=flatbuffer).get_signature_runner("serving_default")
np.savez(out + "tflite.npz", **runner(observations=x))
assert not any(m.startswith("dqn_tf") for m in sys.modules), "dqn_tf was imported"
print(json.dumps({"outputs": sorted(result), "tflite_bytes": len(flatbuffer)}))
"""


CONFIG = {"env": "CartPole-v1", "action_repeat": 1, "sticky_action_prob": 0.0,
          "history_length": 1, "noop_max": 0, "fire_reset": False,
          "max_frames_per_episode": 500}


def export_mlp(directory):
    network = networks.mlp(2, (4,), (16,))
    env = export.env_metadata(CONFIG, ("0", "1"), (4,))
    export.export_saved_model(network, directory, env=env, agent_steps=7, config=CONFIG)
    return network


def export_nature_cnn(directory, **head):
    network = networks.q_network(6, (4, 84, 84), name="online", **head)
    networks.q_network(6, (4, 84, 84), name="target", **head)  # Same layer names again.
    config = dict(CONFIG, env="ALE/Pong-v5", action_repeat=4, history_length=4)
    env = export.env_metadata(config, tuple(str(i) for i in range(6)), (84, 84))
    export.export_saved_model(network, directory, env=env, agent_steps=7, config=config)
    return network


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nature_cnn", "quantile_dueling", "mlp"])
def test_every_tensorflow_client_serves_the_trainers_q_values(tmp_path, kind):
    model_dir = str(tmp_path / "model")
    rng = np.random.default_rng(0)
    if kind == "mlp":
        network = export_mlp(model_dir)
        x = rng.normal(size=(5, 4)).astype(np.float32)
    else:
        head = dict(num_quantiles=51, dueling=True) if kind == "quantile_dueling" else {}
        network = export_nature_cnn(model_dir, **head)
        x = rng.integers(0, 256, (5, 4, 84, 84), np.uint8)
    np.save(tmp_path / "x.npy", x)
    want = networks.q_values(network(x)).numpy()  # The quantile head: their mean.
    proc = subprocess.run([sys.executable, "-c", CLIENTS_SCRIPT, model_dir,
                           str(tmp_path / "x.npy"), str(tmp_path / "out_")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["outputs"] == ["action", "q_values"]
    # A converted model without its weights is a few KB and outputs NaN.
    assert report["tflite_bytes"] > (1_000 if kind == "mlp" else 4_000_000)
    for client in ("tf2", "session", "tflite"):
        got = np.load(tmp_path / f"out_{client}.npz")
        np.testing.assert_allclose(got["q_values"], want, rtol=1e-4, atol=1e-5, err_msg=client)
        np.testing.assert_array_equal(got["action"], want.argmax(axis=1), err_msg=client)
    # saved_model_cli run: the command-line face of the same session loader.
    proc = subprocess.run(["saved_model_cli", "run", "--dir", model_dir, "--tag_set", "serve",
                           "--signature_def", "serving_default", "--inputs",
                           f"observations={tmp_path / 'x.npy'}", "--outdir",
                           str(tmp_path / "cli")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "q_values.npy"), want, rtol=1e-4,
                               atol=1e-5)


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


@pytest.fixture(scope="module")
def space_invaders_model(tmp_path_factory):
    """A SpaceInvaders smoke run of 300 agent steps: its run directory."""
    from tests.main_test import train_with_preset
    out = str(tmp_path_factory.mktemp("space_invaders") / "run")
    train_with_preset("smoke.cfg", env="SpaceInvaders", output_dir=out, progress=False,
                      num_steps=300, eval_every=0)
    return out


@pytest.mark.slow
def test_evaluate_atari_smoke_model_writes_video_and_json(tmp_path, space_invaders_model):
    out = space_invaders_model
    video, report = str(tmp_path / "game.mp4"), str(tmp_path / "eval.json")
    proc = run_evaluate(f"--saved_model={out}/saved_model/final", "--episodes=1",
                        f"--video={video}", f"--output_json={report}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(report))
    assert result["episodes"] == 1 and result["env_id"] == "ALE/SpaceInvaders-v5"
    # The default protocol is Nature's, whatever the training run used (smoke: sticky
    # actions 0.25, games capped at 4,000 frames).
    assert result["protocol"] == "nature"
    assert {k: result["settings"][k] for k in ("epsilon", "noop_max", "max_frames_per_episode",
                                               "sticky_action_prob", "score_table")} == {
        "epsilon": 0.05, "noop_max": 30, "max_frames_per_episode": 18_000,
        "sticky_action_prob": 0.0, "score_table": "nature"}
    hns = result["human_normalised"]
    assert (hns["table"], hns["random"], hns["human"]) == ("nature", 148.0, 1652.3)
    assert hns["value"] == pytest.approx((result["mean"] - 148.0) / (1652.3 - 148.0))
    assert "Extended Data Table 2" in proc.stdout
    assert "1/1 [" in proc.stderr  # The progress bar, on by default.
    capture = cv2.VideoCapture(video)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        160, 210)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) >= 50
    # On-demand export from the run's newest checkpoint.
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.export", f"--checkpoint_dir={out}",
                           f"--saved_model_dir={tmp_path}/exported"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "exported" / "assets" / "dqn_tf.json") as f:
        assert json.load(f)["agent_steps"] == 300


@pytest.mark.slow
def test_evaluate_machado_protocol_with_overrides(tmp_path, space_invaders_model):
    report = str(tmp_path / "eval.json")
    # A 400-frame cap (100 agent steps) cuts every game: the override reaches the env.
    proc = run_evaluate(f"--saved_model={space_invaders_model}/saved_model/final",
                        "--protocol=machado", "--episodes=3", "--max_frames_per_episode=400",
                        "--epsilon=0.5", f"--output_json={report}", "--noprogress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0/3 [" not in proc.stderr and "3/3 [" not in proc.stderr  # No bar at all.
    result = json.load(open(report))
    settings = result["settings"]
    assert (result["protocol"], settings["sticky_action_prob"], settings["noop_max"],
            settings["epsilon"], settings["max_frames_per_episode"]) == (
        "machado", 0.25, 0, 0.5, 400)
    assert result["truncated_games"] == 3
    hns = result["human_normalised"]
    assert (hns["table"], hns["human"]) == ("atari57", 1668.7)


@pytest.mark.slow
def test_evaluate_refuses_unwritable_outputs_before_playing(tmp_path, space_invaders_model):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    model = f"--saved_model={space_invaders_model}/saved_model/final"
    for flag in ("video", "output_json"):
        proc = run_evaluate(model, f"--{flag}={blocker}/out/x", "--episodes=1000")
        assert proc.returncode == 2, proc.stderr[-2000:]
        [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert f"--{flag}=" in error and "cannot be written" in error
        assert "Traceback" not in proc.stderr and "return" not in proc.stdout


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
             ([f"--saved_model={tmp_path}/model", "--intra_op_threads=-1"], "intra_op_threads"),
             ([f"--saved_model={tmp_path}/model", "--epsilon=2"], "--epsilon=2.0 is invalid")]
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
@pytest.mark.xdist_group("trained_cartpole")  # One worker trains it, once (conftest.py).
def test_evaluate_cartpole_matches_trainer_eval(tmp_path, trained_cartpole):
    run, result = trained_cartpole
    report = str(tmp_path / "eval.json")
    proc = run_evaluate(f"--saved_model={run}/saved_model/best", "--episodes=20",
                        "--epsilon=0", f"--output_json={report}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.load(open(report))["mean"]
    assert evaluated >= 475 and abs(evaluated - result["best_eval_return"]) <= 25


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
