"""SavedModel export of the greedy policy, servable by every TensorFlow client.

The SavedModel has one `serving_default` signature:

  observations: [None, H, 84, 84] uint8 (Atari) or [None, D*H] float32 (vector envs)
  -> {"q_values": [None, num_actions] float32, "action": [None] int32}

(`q_values` is the mean over quantiles for a quantile head.)

It is written by Keras's own `keras.export.ExportArchive`, which names and tracks
the variables so that every client finds them: `tf.saved_model.load`, the TF1
session loader that TensorFlow Serving and `saved_model_cli run` use, and
`tf.lite.TFLiteConverter.from_saved_model` (tests/export_test.py runs all of them
in a fresh process against the Keras network). Beside it, `assets/dqn_tf.json`
holds what evaluation needs to rebuild the environment (env id, action repeat,
history length, frame preprocessing, action meanings), the training step and the
full config.

Run as a command to export from a run's newest checkpoint:

  python -m dqn_tf.export --checkpoint_dir=runs/SpaceInvaders --saved_model_dir=out/
"""

import json
import os
import shutil
import sys

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import keras
import tensorflow as tf

FORMAT = "dqn_tf.saved_model/1"
METADATA_ASSET = "dqn_tf.json"
SIGNATURE = "serving_default"


def env_metadata(config, action_meanings, observation_shape) -> dict:
    """What an evaluator needs to rebuild the env the policy was trained on."""
    return {"env_id": config["env"], "action_repeat": config["action_repeat"],
            "sticky_action_prob": config["sticky_action_prob"],
            "history_length": config["history_length"], "noop_max": config["noop_max"],
            "fire_reset": config["fire_reset"],
            "max_frames_per_episode": config["max_frames_per_episode"],
            "observation_shape": list(observation_shape),
            "preprocessing": ("ALE grayscale, max-pool of last 2 raw frames, 84x84 INTER_AREA"
                              if len(observation_shape) == 2 else "none"),
            "action_meanings": list(action_meanings), "num_actions": len(action_meanings)}


def export_saved_model(network, directory: str, *, env: dict, agent_steps: int,
                       config: dict, extra: dict | None = None) -> str:
    """Writes the greedy-policy SavedModel to `directory`, replacing it atomically.

    The model is written beside the target and renamed into place, so a crash
    leaves either the old SavedModel or the new one, never half of one (in the
    instant between the two renames the old one sits in `<directory>.old-<pid>`).

    Args:
      network: the Keras Q-network to serve.
      directory: the SavedModel directory to (re)place.
      env: `env_metadata(...)`.
      agent_steps: training step of the weights.
      config: the run's full config (all flags).
      extra: more JSON fields (e.g. the evaluation return that triggered it).
    """
    directory = os.path.normpath(directory)
    parent = os.path.dirname(directory) or "."
    os.makedirs(parent, exist_ok=True)
    metadata = {"format": FORMAT, "env": env, "agent_steps": agent_steps, "config": config}
    metadata.update(extra or {})
    from dqn_tf import networks  # Here: dqn_tf.evaluate imports this module, not networks.
    partial = f"{directory}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    input_shape = list(network.input_shape[1:])
    dtype = tf.uint8 if len(input_shape) == 3 else tf.float32

    def serve(observations):
        q_values = networks.q_values(network(observations, training=False))
        return {"q_values": q_values,
                "action": tf.argmax(q_values, axis=1, output_type=tf.int32)}

    try:
        archive = keras.export.ExportArchive()
        archive.track(network)
        archive.add_endpoint(SIGNATURE, serve, input_signature=[
            tf.TensorSpec([None] + input_shape, dtype, name="observations")])
        archive.write_out(partial, verbose=False)
        os.makedirs(os.path.join(partial, "assets"), exist_ok=True)
        with open(os.path.join(partial, "assets", METADATA_ASSET), "w") as f:
            json.dump(metadata, f, indent=1)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = f"{directory}.old-{os.getpid()}"
    if os.path.exists(directory):
        os.rename(directory, old)
    os.rename(partial, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def main(argv):
    """Exports the newest complete checkpoint of a run directory."""
    del argv
    from absl import flags
    from dqn_tf import atari_env, checkpointing, networks, optimizers  # The trainer's side.
    from dqn_tf.errors import UserInputError
    from dqn_tf.history import stack_shape
    flag_values = flags.FLAGS
    try:
        run_dir = flag_values.checkpoint_dir
        config_path = os.path.join(run_dir, "config.json")
        if not os.path.exists(config_path):
            raise UserInputError(f"--checkpoint_dir={run_dir} is not a dqn_tf run directory "
                                 "(no config.json); pass the --output_dir of a training run")
        with open(config_path) as f:
            config = json.load(f)
        env = atari_env.make_env(config["env"])
        shape = stack_shape(env.observation_shape, config["history_length"])
        online = networks.from_run_config(config, env.num_actions, shape, "online")
        target = networks.from_run_config(config, env.num_actions, shape, "target")
        optimizer = optimizers.make_optimizer(config["optimizer"], config["learning_rate"],
                                              config["optimizer_epsilon"], config["batch_size"])
        optimizer.build(online.trainable_variables)
        checkpointer = checkpointing.Checkpointer(
            os.path.join(run_dir, "checkpoints"),
            dict(online_network=online, target_network=target, optimizer=optimizer),
            read_only=True)  # The run may be training: touch nothing of it.
        path, state = checkpointer.restore_latest()
        if path is None:
            raise UserInputError(f"--checkpoint_dir={run_dir} has no complete checkpoint yet; "
                                 "train longer than --checkpoint_every")
        out = export_saved_model(
            online, flag_values.saved_model_dir,
            env=env_metadata(config, env.action_meanings, env.observation_shape),
            agent_steps=state["agent"]["agent_steps"], config=config)
        print(f"exported {path} (agent step {state['agent']['agent_steps']}) to {out}")
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_string("checkpoint_dir", None, "Run directory (--output_dir of training).")
    flags.DEFINE_string("saved_model_dir", None, "Where to write the SavedModel.")
    flags.mark_flags_as_required(["checkpoint_dir", "saved_model_dir"])
    app.run(main)
