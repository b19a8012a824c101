"""Plays a dqn_tf SavedModel: `python -m dqn_tf.evaluate --saved_model=DIR`.

Needs nothing of the trainer: the policy is loaded with `tf.saved_model.load`
alone, and the environment is rebuilt from the model's `assets/dqn_tf.json`.
The default protocol is Nature's (Mnih et al., 2015): epsilon 0.05, up to 30
random no-ops at the start, the 108,000-frame cap, raw full-game returns.

Human-normalised score = (agent - random) / (human - random), with the random
and human scores of Mnih et al. (2015) Extended Data Table 2 (as reprinted by
Wang et al., 2016 and used by DQN Zoo's `atari_data.py`).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tqdm  # noqa: E402

from dqn_tf import atari_env, run_loop, seeding, threads  # noqa: E402
from dqn_tf.errors import UserInputError  # noqa: E402
from dqn_tf.export import FORMAT, METADATA_ASSET  # noqa: E402  (imports no trainer code)
from dqn_tf.history import stack_shape  # noqa: E402

# (random, human) per game, Mnih et al. (2015) Extended Data Table 2.
HUMAN_AND_RANDOM = {
    "Alien": (227.8, 6875.0), "Amidar": (5.8, 1676.0), "Assault": (222.4, 1496.0),
    "Asterix": (210.0, 8503.0), "Asteroids": (719.1, 13157.0), "Atlantis": (12850.0, 29028.0),
    "BankHeist": (14.2, 734.4), "BattleZone": (2360.0, 37800.0), "BeamRider": (363.9, 5775.0),
    "Bowling": (23.1, 154.8), "Boxing": (0.1, 4.3), "Breakout": (1.7, 31.8),
    "Centipede": (2090.9, 11963.0), "ChopperCommand": (811.0, 9882.0),
    "CrazyClimber": (10780.5, 35411.0), "DemonAttack": (152.1, 3401.0),
    "DoubleDunk": (-18.6, -15.5), "Enduro": (0.0, 309.6), "FishingDerby": (-91.7, 5.5),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4335.0), "Gopher": (257.6, 2321.0),
    "Gravitar": (173.0, 2672.0), "Hero": (1027.0, 25763.0), "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 406.7), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2395.0),
    "KungFuMaster": (258.5, 22736.0), "MontezumaRevenge": (0.0, 4367.0),
    "MsPacman": (307.3, 15693.0), "NameThisGame": (2292.3, 4076.0), "Pong": (-20.7, 9.3),
    "PrivateEye": (24.9, 69571.0), "Qbert": (163.9, 13455.0), "Riverraid": (1338.5, 13513.0),
    "RoadRunner": (11.5, 7845.0), "Robotank": (2.2, 11.9), "Seaquest": (68.4, 20182.0),
    "SpaceInvaders": (148.0, 1652.0), "StarGunner": (664.0, 10250.0),
    "Tennis": (-23.8, -8.9), "TimePilot": (3568.0, 5925.0), "Tutankham": (11.4, 167.7),
    "UpNDown": (533.4, 9082.0), "Venture": (0.0, 1188.0), "VideoPinball": (16256.9, 17298.0),
    "WizardOfWor": (563.5, 4757.0), "Zaxxon": (32.5, 9173.0),
}


def load_policy(directory: str):
    """Loads a dqn_tf SavedModel; returns (serving signature, metadata dict).

    Raises:
      UserInputError: missing directory, not a SavedModel, or not made by dqn_tf.
    """
    if not os.path.isdir(directory):
        raise UserInputError(f"--saved_model={directory} does not exist; pass a directory "
                             "written by dqn_tf (e.g. runs/<Game>/saved_model/best)")
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


def human_normalised(env_id: str, score: float):
    """(score - random) / (human - random) for known games, else None."""
    short = env_id.split("/")[-1].split("-v")[0].replace("NoFrameskip", "")
    if short not in HUMAN_AND_RANDOM:
        return None
    random_score, human_score = HUMAN_AND_RANDOM[short]
    return (score - random_score) / (human_score - random_score)


def evaluate(saved_model: str, *, episodes: int = 30, epsilon: float = 0.05,
             noop_max: int = 30, env_name: str | None = None, seed: int = 0,
             video: str | None = None, video_episodes: int = 1, progress: bool = True) -> dict:
    """Plays `episodes` full games with the SavedModel's greedy policy plus epsilon.

    Returns:
      A dict with returns, mean, std, min, max, episodes and human_normalised.
    """
    serve, metadata = load_policy(saved_model)
    info = metadata["env"]
    env_id = atari_env.resolve_env_id(env_name or info["env_id"])
    env = atari_env.make_env(
        env_id, seeds=[seeding.int_seed(seed, "eval_env")],
        sticky_action_prob=info["sticky_action_prob"],
        noop_max=noop_max, action_repeat=info["action_repeat"], fire_reset=info["fire_reset"],
        max_frames_per_episode=info["max_frames_per_episode"])
    history = info["history_length"]
    want = list(serve.structured_input_signature[1]["observations"].shape[1:])
    have = list(stack_shape(env.observation_shape, history))
    if want != have or env.num_actions != info["num_actions"]:
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
        os.makedirs(os.path.dirname(os.path.abspath(video)), exist_ok=True)
        writer = imageio.get_writer(video, fps=max(1, 60 // info["action_repeat"]),
                                    codec="libx264", macro_block_size=1)
    bar = tqdm.tqdm(total=episodes, unit="game", disable=not progress)
    tracker = run_loop.EpisodeTracker(1)
    episodes_done = []
    try:
        for timestep, _ in run_loop.run_loop(lambda ts: actor.step(ts, epsilon), env):
            if writer is not None and len(episodes_done) < video_episodes:
                writer.append_data(env.games[0].rgb_screen())
            for episode in tracker.observe(timestep):
                episodes_done.append(episode.episode_return)
                bar.update(1)
                bar.set_postfix({"return": f"{episode.episode_return:.1f}"})
            if len(episodes_done) >= episodes:
                break
    finally:
        bar.close()
        env.close()
        if writer is not None:
            writer.close()
    returns = np.array(episodes_done)
    mean = float(returns.mean())
    return {"saved_model": saved_model, "env_id": env_id, "agent_steps": metadata["agent_steps"],
            "episodes": len(returns), "epsilon": epsilon, "noop_max": noop_max,
            "returns": returns.tolist(), "mean": mean, "std": float(returns.std()),
            "min": float(returns.min()), "max": float(returns.max()),
            "human_normalised": human_normalised(env_id, mean)}


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    f = flags.FLAGS
    try:
        if not f.saved_model:
            raise UserInputError("--saved_model is required: pass a directory written by dqn_tf")
        if f.episodes < 1 or not 0.0 <= f.epsilon <= 1.0 or f.noop_max < 0:
            raise UserInputError("--episodes must be >= 1, --epsilon in [0, 1], --noop_max >= 0")
        if f.intra_op_threads < 0:
            raise UserInputError(f"--intra_op_threads={f.intra_op_threads} is invalid: it must "
                                 "be 0 (auto) or more")
        pool = threads.set_tf_threads(f.intra_op_threads, jit_compile=False)  # Before TF runs.
        logging.info("TF intra-op threads: %s", pool or "TF's default, one per core")
        result = evaluate(f.saved_model, episodes=f.episodes, epsilon=f.epsilon,
                          noop_max=f.noop_max, env_name=f.env, seed=f.seed, video=f.video,
                          video_episodes=f.video_episodes)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    hns = result["human_normalised"]
    print(f"{result['env_id']}: return {result['mean']:.1f} +- {result['std']:.1f} "
          f"(min {result['min']:.1f}, max {result['max']:.1f}) over {result['episodes']} games"
          + (f"; human-normalised {100 * hns:.1f}%" if hns is not None else ""))
    if f.output_json:
        with open(f.output_json, "w") as out:
            json.dump(result, out, indent=1)


def define_flags():
    """Flags of the command; defined only when run, so importing this module is safe."""
    flags.DEFINE_string("saved_model", None, "SavedModel directory written by dqn_tf.")
    flags.DEFINE_integer("episodes", 30, "Full games to play.")
    flags.DEFINE_float("epsilon", 0.05, "Probability of a random action (Nature: 0.05).")
    flags.DEFINE_integer("noop_max", 30, "Max random no-op raw frames at game start.")
    flags.DEFINE_string("env", None, "Play another env than the one the model was trained on; "
                        "its observation shape and action count must match.")
    flags.DEFINE_integer("seed", 0, "Seeds the env and the exploration.")
    flags.DEFINE_string("video", None, "Write an MP4 of the raw screen to this path (Atari).")
    flags.DEFINE_integer("video_episodes", 1, "Games recorded into --video.")
    flags.DEFINE_string("output_json", None, "Also write the results as JSON here.")
    flags.DEFINE_integer("intra_op_threads", 0, "TF threads that split one op, as for "
                         "dqn_tf.main: 0 = auto, 1 on a machine with at most 2 cores (the "
                         "greedy action is fastest there; see BENCHMARKS.md), else TF's default.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
