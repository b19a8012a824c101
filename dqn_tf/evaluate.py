"""Plays a dqn_tf SavedModel under a published protocol: `python -m dqn_tf.evaluate
--saved_model=DIR [--protocol=nature|machado|dopamine|atari100k]`.

Needs nothing of the trainer: the policy is loaded with `tf.saved_model.load`
alone. The game, action repeat, history length and FIRE reset come from the
model's `assets/dqn_tf.json` (they are part of the policy); how the games are
played comes from the protocol (`dqn_tf.protocols`: epsilon, no-op starts, the
per-game frame cap, sticky actions, and the human/random table of the
human-normalised score), never from the training run. Every protocol field can be
overridden by its flag; the JSON output records the protocol, every setting used,
and the table.
"""

import dataclasses
import json
import os
import sys
import tempfile

from absl import app, flags, logging
import numpy as np
import tqdm

from dqn_tf import atari_env, protocols, run_loop, seeding
from dqn_tf.errors import UserInputError
from dqn_tf.history import stack_shape

# TensorFlow is imported once the flags and paths are checked (`load_policy`), so that bad
# input is refused at once; `dqn_tf.export` (its asset's name and format) needs it too.


def check_exists(directory: str) -> None:
    """Raises UserInputError if the SavedModel directory does not exist."""
    if not os.path.isdir(directory):
        raise UserInputError(f"--saved_model={directory} does not exist; pass a directory "
                             "written by dqn_tf (e.g. runs/<Game>/saved_model/best)")


def load_policy(directory: str):
    """Loads a dqn_tf SavedModel; returns (serving signature, metadata dict).

    Raises:
      UserInputError: missing directory, not a SavedModel, or not made by dqn_tf.
    """
    check_exists(directory)
    from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
    import tensorflow as tf
    from dqn_tf.export import FORMAT, METADATA_ASSET  # Imports no trainer code.
    if not tf.saved_model.contains_saved_model(directory):
        raise UserInputError(f"--saved_model={directory} is not a SavedModel (no "
                             "saved_model.pb); pass a directory written by dqn_tf")
    metadata_path = os.path.join(directory, "assets", METADATA_ASSET)
    try:
        with open(metadata_path) as f:
            metadata = json.load(f)
    except (OSError, ValueError):
        metadata = {}
    if metadata.get("format") != FORMAT:
        raise UserInputError(f"--saved_model={directory} was not made by dqn_tf (no valid "
                             "assets/dqn_tf.json); export one with dqn_tf.export")
    try:
        serve = tf.saved_model.load(directory).signatures["serving_default"]
    except Exception as error:  # noqa: BLE001 - any load failure is the user's file.
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UserInputError(f"--saved_model={directory} cannot be loaded ({first[:200]})") \
            from None
    return serve, metadata


def check_writable(path: str, flag: str) -> None:
    """Raises UserInputError unless a file can be written at `path` (checked before play)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserInputError(f"--{flag}={path} is a directory; pass a file path")
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".dqn_tf-write-test-"):
            pass
    except OSError as error:
        raise UserInputError(f"--{flag}={path} cannot be written ({error.strerror}); choose a "
                             "writable path") from None


def evaluate(saved_model: str, protocol: protocols.Protocol, *, episodes: int = 30,
             env_name: str | None = None, seed: int = 0, video: str | None = None,
             video_episodes: int = 1, progress: bool = True) -> dict:
    """Plays `episodes` full games with the SavedModel's greedy policy under `protocol`.

    Args:
      saved_model: a SavedModel directory written by dqn_tf.
      protocol: how to play (epsilon, no-ops, frame cap, sticky actions, score table).
      episodes: games to play.
      env_name: another env with the same observation shape and action count.
      seed: root of the env and exploration streams (`dqn_tf.seeding`).
      video: an MP4 path for the first `video_episodes` games (Atari), or None.
      progress: show a progress bar.

    Returns:
      A JSON-serialisable dict: the protocol and every setting used, the returns and
      their statistics, and the human-normalised mean with its table.
    """
    serve, metadata = load_policy(saved_model)
    import tensorflow as tf  # Loaded by load_policy.
    info = metadata["env"]
    env_id = atari_env.resolve_env_id(env_name or info["env_id"])
    env = atari_env.make_env(
        env_id, seeds=[seeding.int_seed(seed, "eval_env")],
        sticky_action_prob=protocol.sticky_action_prob, noop_max=protocol.noop_max,
        action_repeat=info["action_repeat"], fire_reset=info["fire_reset"],
        max_frames_per_episode=protocol.max_frames_per_episode)
    history = info["history_length"]
    want = list(serve.structured_input_signature[1]["observations"].shape[1:])
    have = list(stack_shape(env.observation_shape, history))
    if want != have or env.num_actions != info["num_actions"]:
        env.close()
        raise UserInputError(
            f"--env={env_id} gives states {have} with {env.num_actions} actions, the model "
            f"takes {want} with {info['num_actions']} actions; use a matching --env")

    def greedy(states):
        return serve(observations=tf.constant(states))["action"].numpy()

    actor = run_loop.EpsilonGreedyActor(greedy, num_actions=env.num_actions,
                                        observation_shape=env.observation_shape,
                                        history_length=history, dtype=env.observation_dtype,
                                        seeds=[seeding.seed_sequence(seed, "eval_actor")])
    writer = None
    if video:
        import imageio.v2 as imageio  # Deferred: only needed for videos.
        writer = imageio.get_writer(video, fps=max(1, 60 // info["action_repeat"]),
                                    codec="libx264", macro_block_size=1)
    bar = tqdm.tqdm(total=episodes, unit="game", disable=not progress)

    def record(timestep):
        if writer is not None and bar.n < video_episodes:
            writer.append_data(env.games[0].rgb_screen())

    def count(episode):
        bar.update(1)
        bar.set_postfix({"return": f"{episode.episode_return:.1f}"})

    try:
        episodes_done = run_loop.run_episodes(actor, env, protocol.epsilon,
                                              num_episodes=episodes, on_episode=count,
                                              on_timestep=record)
    finally:
        bar.close()
        env.close()
        if writer is not None:
            writer.close()
    returns = np.array([e.episode_return for e in episodes_done])
    mean = float(returns.mean())
    atari = atari_env.is_atari(env_id)
    return {"saved_model": saved_model, "env_id": env_id, "agent_steps": metadata["agent_steps"],
            "protocol": protocol.name, "settings": dict(
                dataclasses.asdict(protocol), episodes=len(returns), seed=seed,
                action_repeat=info["action_repeat"], history_length=history,
                fire_reset=info["fire_reset"], applies_to_atari_only=not atari),
            "episodes": len(returns), "returns": returns.tolist(), "mean": mean,
            "std": float(returns.std()),
            "min": float(returns.min()), "max": float(returns.max()),
            "truncated_games": int(sum(e.truncated for e in episodes_done)),
            "human_normalised": protocols.human_normalised(env_id, mean, protocol.score_table)}


def protocol_from_flags(flag_values) -> protocols.Protocol:
    """--protocol with each field its flag overrides (None = the protocol's own).

    Raises:
      UserInputError: an unknown protocol or an out-of-range override.
    """
    f = flag_values
    base = protocols.PROTOCOLS[f.protocol]
    overrides = {name: getattr(f, name) for name in
                 ("epsilon", "noop_max", "max_frames_per_episode", "sticky_action_prob")
                 if getattr(f, name) is not None}
    for name, ok, rule in [("epsilon", 0.0 <= overrides.get("epsilon", 0.0) <= 1.0, "in [0, 1]"),
                           ("sticky_action_prob",
                            0.0 <= overrides.get("sticky_action_prob", 0.0) <= 1.0, "in [0, 1]"),
                           ("noop_max", overrides.get("noop_max", 0) >= 0, "0 or more"),
                           ("max_frames_per_episode",
                            overrides.get("max_frames_per_episode", 1) >= 1, "at least 1")]:
        if not ok:
            raise UserInputError(f"--{name}={overrides[name]} is invalid: it must be {rule}")
    return dataclasses.replace(base, **overrides)


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    f = flags.FLAGS
    try:
        if not f.saved_model:
            raise UserInputError("--saved_model is required: pass a directory written by dqn_tf")
        if f.episodes < 1:
            raise UserInputError(f"--episodes={f.episodes} is invalid: it must be at least 1")
        if f.intra_op_threads < 0:
            raise UserInputError(f"--intra_op_threads={f.intra_op_threads} is invalid: it must "
                                 "be 0 (auto) or more")
        if f.seed < 0:
            raise UserInputError(f"--seed={f.seed} is invalid: it must be 0 or more")
        protocol = protocol_from_flags(f)
        for path, flag in ((f.video, "video"), (f.output_json, "output_json")):
            if path:  # Before playing: a bad path must not cost the games.
                check_writable(path, flag)
        check_exists(f.saved_model)  # Before TensorFlow loads.
        from dqn_tf import threads  # Sizes TF's pools before TF runs an op.
        pool = threads.set_tf_threads(f.intra_op_threads, jit_compile=False)
        logging.info("TF intra-op threads: %s", pool or "TF's default, one per core")
        result = evaluate(f.saved_model, protocol, episodes=f.episodes, env_name=f.env,
                          seed=f.seed, video=f.video, video_episodes=f.video_episodes,
                          progress=f.progress)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    p, hns = protocol, result["human_normalised"]
    print(f"{result['env_id']}, {p.name} protocol (epsilon {p.epsilon}, up to {p.noop_max} "
          f"no-op frames, {p.max_frames_per_episode:,}-frame cap, sticky actions "
          f"{p.sticky_action_prob}): return {result['mean']:.1f} +- {result['std']:.1f} "
          f"(min {result['min']:.1f}, max {result['max']:.1f}) over {result['episodes']} games")
    if hns is not None:
        print(f"human-normalised: {100 * hns['value']:.1f}% (random {hns['random']}, human "
              f"{hns['human']}: {hns['table_source']})")
    if f.output_json:
        with open(f.output_json, "w") as out:
            json.dump(result, out, indent=1)


def define_flags():
    """Flags of the command; defined only when run, so importing this module is safe."""
    flags.DEFINE_string("saved_model", None, "SavedModel directory written by dqn_tf.")
    flags.DEFINE_enum("protocol", "nature", sorted(protocols.PROTOCOLS), "How the games are "
                      "played and scored: nature (epsilon 0.05, 0-29 no-op frames, 18,000-frame "
                      "cap, no sticky actions, Nature's table), machado (sticky 0.25, "
                      "108,000-frame cap, no no-ops, epsilon 0.01, Atari-57 table), dopamine "
                      "(machado's with epsilon 0.001), atari100k (epsilon 0.001, 0-29 no-op frames, "
                      "108,000-frame cap, no sticky actions, Atari-57 table: Dopamine's "
                      "atari_100k lab). See dqn_tf/protocols.py for sources.")
    flags.DEFINE_integer("episodes", 30, "Full games to play.")
    flags.DEFINE_float("epsilon", None, "Overrides the protocol's probability of a random "
                       "action.")
    flags.DEFINE_integer("noop_max", None, "Overrides the protocol's max random no-op raw "
                         "frames at game start.")
    flags.DEFINE_integer("max_frames_per_episode", None, "Overrides the protocol's raw-frame "
                         "cap per game.")
    flags.DEFINE_float("sticky_action_prob", None, "Overrides the protocol's sticky-action "
                       "probability per raw frame.")
    flags.DEFINE_string("env", None, "Play another env than the one the model was trained on; "
                        "its observation shape and action count must match.")
    flags.DEFINE_integer("seed", 0, "Root of the env and exploration streams (>= 0).")
    flags.DEFINE_string("video", None, "Write an MP4 of the raw screen to this path (Atari).")
    flags.DEFINE_integer("video_episodes", 1, "Games recorded into --video.")
    flags.DEFINE_string("output_json", None, "Also write the results as JSON here.")
    flags.DEFINE_boolean("progress", True, "Show a progress bar of the games played "
                         "(--noprogress for logs, as for dqn_tf.main).")
    flags.DEFINE_integer("intra_op_threads", 0, "TF threads that split one op, as for "
                         "dqn_tf.main: 0 = auto, 1 on a machine with at most 2 cores (the "
                         "greedy action is fastest there; see BENCHMARKS.md), else TF's default.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
