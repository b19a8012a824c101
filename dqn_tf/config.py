"""Every command-line flag of `dqn_tf.main`, and the frozen `Config` built from them.

Defaults, with no flagfile, follow Mnih et al. (2015) Extended Data Table 1,
with the RMSprop of our user's card and sticky actions 0.25 (Machado et al.,
2018). Presets live in `flags/*.cfg`. Library code never reads FLAGS: `main`
calls `from_flags()` and passes fields to constructors.
"""

import dataclasses
import json
import os

from absl import flags

from dqn_tf.errors import UserInputError

_OPTIMIZER_NAMES = ["rmsprop", "nature_rmsprop", "adam"]

# Fields that may change when a run is resumed: they steer how long and how
# often, not what is learned.
RESUMABLE_FIELDS = frozenset({
    "num_steps", "output_dir", "overwrite", "eval_every", "eval_episodes", "eval_envs",
    "checkpoint_every", "keep_checkpoints", "checkpoint_replay", "summary_every", "progress",
    "stop_at_eval_return", "export_every_eval", "env_backend", "jit_act", "intra_op_threads",
    "eval_steps", "stop_at_train_return", "actor_chunk_steps", "actor_sync_updates",
    "ray_address", "actor_cpus", "actor_stall_seconds",
})
LOSSES = ["huber", "mse"]  # agent.LOSSES (tests/config_test.py checks they agree).
HEADS = ["plain", "quantile"]
ENCODERS = ["nature", "impala"]  # networks.ENCODERS (checked as LOSSES is)
AUGMENTATIONS = ["none", "shift", "shift_intensity"]  # augmentation.AUGMENTATIONS (likewise)


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run. Counts carry their unit in the name or the comment."""

    env: str = "SpaceInvaders"  # game short name or gymnasium id
    num_steps: int = 12_500_000  # agent steps to train for (Nature: 50M frames)
    num_envs: int = 1  # environments stepped in lockstep (per actor, with --num_actors)
    num_actors: int = 0  # Ray actors feeding the learner (0 = one process)
    actor_chunk_steps: int = 50  # lock-steps of an actor's envs sent per chunk
    actor_sync_updates: int = 100  # updates between weight publications to actors
    actor_epsilons: str = "schedule"  # schedule: the learner's epsilon | apex: fixed per actor
    actor_cpus: float = 1.0  # CPUs Ray reserves per actor
    actor_stall_seconds: float = 60.0  # an answering actor silent this long is replaced
    ray_address: str = ""  # an existing Ray cluster ('' = start Ray here, on 127.0.0.1)
    env_backend: str = "ale_vector"  # Atari: ale-py's C++ vector env, or gymnasium wrappers
    action_repeat: int = 4  # raw frames per agent step
    history_length: int = 4  # observations stacked into a state
    sticky_action_prob: float = 0.25  # per raw frame, probability of repeating the last action
    noop_max: int = 30  # max random no-op raw frames at game start (0 = off)
    fire_reset: bool = False  # press FIRE after reset
    life_loss_terminal: bool = True  # a lost life is a terminal for learning
    max_frames_per_episode: int = 108_000  # raw frames before truncation
    reward_clip: float = 1.0  # learning rewards clipped to +-this (0 = off)
    replay_capacity: int = 1_000_000  # transitions
    batch_size: int = 32  # transitions per update
    gamma: float = 0.99  # per agent step discount
    n_step: int = 1  # reward horizon, agent steps
    train_every: int = 4  # agent steps per gradient update
    target_update_period: int = 10_000  # agent steps between target-network syncs
    min_replay_size: int = 50_000  # transitions before learning starts
    epsilon_start: float = 1.0  # exploration at the end of warm-up
    epsilon_end: float = 0.1  # final exploration
    epsilon_decay_steps: int = 1_000_000  # agent steps of linear decay after warm-up
    epsilon_decay_from_start: bool = False  # decay from agent step 0, warm-up included
    loss: str = "huber"  # TD loss: huber (Nature) | mse (Dopamine JAX), mean over the batch
    double_q: bool = False  # online net picks the next action, target net values it
    dueling: bool = False  # value and advantage streams
    head: str = "plain"  # plain: Q-values | quantile: QR-DQN quantiles
    num_quantiles: int = 200  # quantiles of the quantile head
    encoder: str = "nature"  # image encoder: nature | impala
    augment: str = "none"  # DrQ's augmentation of sampled states: none | shift | shift_intensity
    prioritized: bool = False  # proportional prioritized replay
    priority_exponent: float = 0.6  # alpha: p = (priority + priority_epsilon)^alpha
    priority_epsilon: float = 1e-6  # added to every priority
    importance_exponent_start: float = 0.4  # beta when learning starts
    importance_exponent_end: float = 1.0  # beta at the end of its schedule
    importance_exponent_steps: int = 12_500_000  # agent steps of beta's linear schedule
    optimizer: str = "rmsprop"  # rmsprop | nature_rmsprop | adam
    learning_rate: float | None = None  # None = the optimizer preset's
    optimizer_epsilon: float | None = None  # None = the optimizer preset's
    max_grad_norm: float = 0.0  # global-norm clip (0 = off)
    mlp_hidden_sizes: tuple = (64, 64)  # hidden widths for vector observations
    jit_compile: bool = False  # XLA-compile the update
    jit_act: bool = True  # XLA-compile the greedy action (faster on CPU)
    intra_op_threads: int = 0  # TF threads splitting one op (0 = auto, see threads.set_tf_threads)
    eval_every: int = 250_000  # agent steps between evaluations (0 = never)
    eval_episodes: int = 10  # full games per evaluation
    eval_envs: int = 1  # evaluation games played side by side (each env its share)
    eval_steps: int = 0  # if > 0: full games until they add up to this many agent steps
    eval_epsilon: float = 0.05  # exploration during evaluation
    stop_at_eval_return: float | None = None  # stop once eval mean return >= this
    stop_at_train_return: float | None = None  # stop once the last 100 games' mean >= this
    seed: int = 0  # root of every random stream (dqn_tf.seeding)
    output_dir: str = ""  # run directory ('' = runs/<env>)
    checkpoint_every: int = 250_000  # agent steps between checkpoints
    keep_checkpoints: int = 4  # newest complete checkpoints kept
    checkpoint_replay: bool = True  # save the replay with checkpoints, incrementally
    summary_every: int = 1_000  # agent steps between TensorBoard scalar writes
    export_every_eval: bool = True  # export a SavedModel at each eval that beats the best
    overwrite: bool = False  # delete an existing run with another config in output_dir
    progress: bool = True  # show a progress bar

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def learning_fields(self) -> dict:
        """The fields that define what is learned (all but `RESUMABLE_FIELDS`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUMABLE_FIELDS}


_DEFAULTS = Config()


def with_defaults(saved_learning_fields: dict) -> dict:
    """A run's recorded learning fields, completed with today's defaults for the fields
    an older dqn_tf did not have (a new flag's default is always the old behaviour)."""
    completed = json.loads(json.dumps(_DEFAULTS.learning_fields()))  # Tuples -> lists.
    completed.update(saved_learning_fields)
    return completed


def _define_flags():
    f = flags
    d = _DEFAULTS
    f.DEFINE_string("env", d.env, "Game: short name (SpaceInvaders, space_invaders, Pong) or "
                    "gymnasium id (ALE/Pong-v5, CartPole-v1).")
    f.DEFINE_integer("num_steps", d.num_steps, "Agent steps to train for, in total over all "
                     "envs (one agent step = action_repeat raw frames).")
    f.DEFINE_integer("num_envs", d.num_envs, "Environments stepped in lockstep (in each "
                     "actor, with --num_actors).")
    f.DEFINE_integer("num_actors", d.num_actors, "Ray actors, each stepping --num_envs envs "
                     "with a CPU copy of the network and sending chunks of transitions to "
                     "this process's learner (Ape-X style); 0 = step the envs here.")
    f.DEFINE_integer("actor_chunk_steps", d.actor_chunk_steps, "Lock-steps of an actor's "
                     "envs per chunk it sends (each chunk holds this times --num_envs "
                     "transitions).")
    f.DEFINE_integer("actor_sync_updates", d.actor_sync_updates, "Updates between "
                     "publications of the learner's weights to the actors (Ape-X: every "
                     "400 frames of an actor).")
    f.DEFINE_enum("actor_epsilons", d.actor_epsilons, ["schedule", "apex"], "schedule: "
                  "every actor follows the learner's epsilon schedule; apex: actor i of N "
                  "keeps epsilon 0.4^(1 + 7 i / (N - 1)) (Horgan et al., 2018).")
    f.DEFINE_float("actor_cpus", d.actor_cpus, "CPUs Ray reserves for each actor.")
    f.DEFINE_float("actor_stall_seconds", d.actor_stall_seconds, "Seconds an actor that "
                   "has been sending chunks may leave a request for one unanswered before "
                   "it is taken for hung and replaced by a new process (a chunk takes about "
                   "a second).")
    f.DEFINE_string("ray_address", d.ray_address, "With --num_actors, and for dqn_tf.sweep: "
                    "an existing Ray cluster (auto, host:6379 or ray://host:10001; default: "
                    "start Ray on this machine, on 127.0.0.1).")
    f.DEFINE_enum("env_backend", d.env_backend, ["ale_vector", "gymnasium"],
                  "Atari only. ale_vector: ale-py's AtariVectorEnv (C++ threads); gymnasium: "
                  "AtariPreprocessing per game in Python. Same frames, different random streams.")
    f.DEFINE_integer("action_repeat", d.action_repeat, "Raw frames each action is held for.")
    f.DEFINE_integer("history_length", d.history_length, "Observations stacked into a state.")
    f.DEFINE_float("sticky_action_prob", d.sticky_action_prob, "Probability, per raw frame, "
                   "that the ALE repeats the previous action (0.25 Machado et al.; 0 Nature).")
    f.DEFINE_integer("noop_max", d.noop_max, "Max random no-op raw frames at game start (0=off).")
    f.DEFINE_boolean("fire_reset", d.fire_reset, "Press FIRE once after each reset.")
    f.DEFINE_boolean("life_loss_terminal", d.life_loss_terminal, "Treat a lost life as a "
                     "terminal for learning (the game continues; returns are per full game).")
    f.DEFINE_integer("max_frames_per_episode", d.max_frames_per_episode, "Raw frames before a "
                     "game is truncated (108,000 = 30 min).")
    f.DEFINE_float("reward_clip", d.reward_clip, "Clip learning rewards to +-this (0 = off); "
                   "reported returns are always raw.")
    f.DEFINE_integer("replay_capacity", d.replay_capacity, "Replay memory size, transitions.")
    f.DEFINE_integer("batch_size", d.batch_size, "Transitions per gradient update.")
    f.DEFINE_float("gamma", d.gamma, "Discount per agent step, in (0, 1].")
    f.DEFINE_integer("n_step", d.n_step, "Reward horizon of each transition, agent steps.")
    f.DEFINE_integer("train_every", d.train_every, "Agent steps per gradient update.")
    f.DEFINE_integer("target_update_period", d.target_update_period,
                     "Agent steps between target-network syncs.")
    f.DEFINE_integer("min_replay_size", d.min_replay_size,
                     "Transitions in replay before learning starts (acting is random until then).")
    f.DEFINE_float("epsilon_start", d.epsilon_start, "Exploration when learning starts.")
    f.DEFINE_float("epsilon_end", d.epsilon_end, "Final exploration.")
    f.DEFINE_integer("epsilon_decay_steps", d.epsilon_decay_steps,
                     "Agent steps over which epsilon falls linearly, after warm-up.")
    f.DEFINE_boolean("epsilon_decay_from_start", d.epsilon_decay_from_start, "Start the "
                     "epsilon decay at agent step 0, warm-up included (Lapan's Pong DQN), "
                     "instead of acting at random until learning starts.")
    f.DEFINE_enum("loss", d.loss, LOSSES, "TD loss, averaged over the batch: huber (delta 1, "
                  "Nature's error clipping; Dopamine's TF DQN) or mse ((y - q)^2, no 1/2: "
                  "Dopamine's JAX DQN).")
    f.DEFINE_boolean("double_q", d.double_q, "Double DQN (van Hasselt et al., 2016): the "
                     "online network picks the next action, the target network values it.")
    f.DEFINE_boolean("dueling", d.dueling, "Dueling head (Wang et al., 2016): value and "
                     "advantage streams, Q = V + A - mean_a A.")
    f.DEFINE_enum("head", d.head, HEADS, "plain: Q-values; quantile: --num_quantiles "
                  "quantiles per action and the quantile Huber loss (QR-DQN, Dabney et al., "
                  "2018); acting and the SavedModel's q_values use their mean.")
    f.DEFINE_integer("num_quantiles", d.num_quantiles, "Quantiles of --head=quantile "
                     "(Dopamine's QR-DQN: 200).")
    f.DEFINE_enum("encoder", d.encoder, ENCODERS, "Image encoder: nature (Mnih et al., "
                  "2015) or impala (the ResNet of Espeholt et al., 2018, as Dopamine's).")
    f.DEFINE_enum("augment", d.augment, AUGMENTATIONS, "Augmentation of sampled image "
                  "states in the update (DrQ, Kostrikov et al., 2020): shift: pad 4 pixels "
                  "by replicating the edge, crop 84x84 at a random offset, per state, s and "
                  "s' drawn independently; shift_intensity: then scale each state by "
                  "1 + 0.05 clip(N(0,1), -2, 2), as Dopamine's atari_100k DrQ.")
    f.DEFINE_boolean("prioritized", d.prioritized, "Proportional prioritized replay (Schaul "
                     "et al., 2016) with importance weights in the loss.")
    f.DEFINE_float("priority_exponent", d.priority_exponent, "alpha: priorities are "
                   "(|TD error| + --priority_epsilon)^alpha, or the quantile loss for "
                   "--head=quantile (Schaul et al.: 0.6; Dopamine: 0.5, as a square root).")
    f.DEFINE_float("priority_epsilon", d.priority_epsilon, "Added to every priority so that "
                   "none is zero (Dopamine: 1e-10).")
    f.DEFINE_float("importance_exponent_start", d.importance_exponent_start, "beta of the "
                   "importance weights when learning starts (Schaul et al.: 0.4; Dopamine: "
                   "0.5 throughout; 0 = no correction).")
    f.DEFINE_float("importance_exponent_end", d.importance_exponent_end, "beta at the end of "
                   "its linear schedule (Schaul et al.: 1).")
    f.DEFINE_integer("importance_exponent_steps", d.importance_exponent_steps, "Agent steps "
                     "over which beta goes from start to end, after the warm-up (default: "
                     "the Nature budget of 12.5M agent steps).")
    f.DEFINE_enum("optimizer", d.optimizer, _OPTIMIZER_NAMES, "rmsprop: lr 2.5e-4, momentum "
                  "0.95, eps 0.1 (the card's); nature_rmsprop: centred, rho 0.95, eps 0.01 / "
                  "batch_size^2 (Nature's 0.01 for its summed loss, rescaled to our mean loss); "
                  "adam: lr 6.25e-5, eps 1.5e-4 (Dopamine).")
    f.DEFINE_float("learning_rate", d.learning_rate, "Overrides the optimizer's learning rate.")
    f.DEFINE_float("optimizer_epsilon", d.optimizer_epsilon, "Overrides the optimizer's epsilon.")
    f.DEFINE_float("max_grad_norm", d.max_grad_norm, "Clip gradients to this global norm (0=off).")
    f.DEFINE_list("mlp_hidden_sizes", [str(s) for s in d.mlp_hidden_sizes],
                  "Hidden layer widths of the MLP used for vector observations.")
    f.DEFINE_boolean("jit_compile", d.jit_compile, "XLA-compile the update step (no faster "
                     "than plain graph mode on a 2-core CPU; see BENCHMARKS.md).")
    f.DEFINE_boolean("jit_act", d.jit_act, "XLA-compile the greedy action (0.45 vs 0.80 ms for "
                     "one Atari state on a 2-core CPU; see BENCHMARKS.md).")
    f.DEFINE_integer("intra_op_threads", d.intra_op_threads, "TF threads that split one op "
                     "(tf.config.threading). 0 = auto: 1 on a machine with at most 2 cores "
                     "unless --jit_compile (faster there: see BENCHMARKS.md), else TF's default "
                     "of one per core. Only the first run in a process can set it.")
    f.DEFINE_integer("eval_every", d.eval_every, "Agent steps between evaluations (0 = never).")
    f.DEFINE_integer("eval_episodes", d.eval_episodes, "Full games per evaluation (when "
                     "--eval_steps is 0).")
    f.DEFINE_integer("eval_envs", d.eval_envs, "Evaluation envs stepped in lockstep, with "
                     "batched actions; each plays its share of --eval_episodes games (its "
                     "first ones: an even split, so short games are not favoured); at most "
                     "--eval_episodes of them. Changing it on resume changes which games a "
                     "redone evaluation plays.")
    f.DEFINE_integer("eval_steps", d.eval_steps, "If > 0, each evaluation plays full games "
                     "until they add up to at least this many agent steps, the last one to its "
                     "end (Dopamine's Runner: 125,000), and reports their mean return.")
    f.DEFINE_float("eval_epsilon", d.eval_epsilon, "Exploration during evaluation.")
    f.DEFINE_float("stop_at_eval_return", d.stop_at_eval_return,
                   "Stop training once an evaluation's mean return reaches this.")
    f.DEFINE_float("stop_at_train_return", d.stop_at_train_return, "Stop training once the "
                   "mean return of the last 100 training games reaches this (Lapan's Pong "
                   "rule).")
    f.DEFINE_integer("seed", d.seed, "Root of every random stream (envs, network "
                     "initialisation, acting, replay sampling, evaluation), >= 0; streams are "
                     "independent across seeds (dqn_tf.seeding).")
    f.DEFINE_string("output_dir", d.output_dir, "Run directory for checkpoints, TensorBoard and "
                    "SavedModels ('' = runs/<Game>). Rerunning resumes from it.")
    f.DEFINE_integer("checkpoint_every", d.checkpoint_every, "Agent steps between checkpoints.")
    f.DEFINE_integer("keep_checkpoints", d.keep_checkpoints, "Newest complete checkpoints kept.")
    f.DEFINE_boolean("checkpoint_replay", d.checkpoint_replay, "Save the replay memory with the "
                     "checkpoints, so a resumed run learns as an uninterrupted one would. Each "
                     "checkpoint writes only the transitions added since the previous one; the "
                     "disk holds about one replay (7 GB at capacity 1M). Without it a resume "
                     "refills --min_replay_size transitions before learning again.")
    f.DEFINE_integer("summary_every", d.summary_every, "Agent steps between TensorBoard writes.")
    f.DEFINE_boolean("export_every_eval", d.export_every_eval, "Export a SavedModel whenever an "
                     "evaluation beats the best so far.")
    f.DEFINE_boolean("overwrite", d.overwrite, "Delete a run with a different config found in "
                     "--output_dir instead of refusing to start.")
    f.DEFINE_boolean("progress", d.progress, "Show a progress bar.")


_define_flags()


def validate(config: Config) -> Config:
    """Checks ranges and relations between fields.

    Raises:
      UserInputError: naming the flag, its value and what it must be.
    """
    def need(ok: bool, flag: str, rule: str):
        if not ok:
            value = getattr(config, flag)
            raise UserInputError(f"--{flag}={value} is invalid: it must be {rule}")

    for name in ("num_steps", "num_envs", "action_repeat", "history_length", "replay_capacity",
                 "actor_chunk_steps", "actor_sync_updates",
                 "batch_size", "n_step", "train_every", "target_update_period",
                 "eval_episodes", "eval_envs", "checkpoint_every", "keep_checkpoints",
                 "summary_every"):
        need(getattr(config, name) >= 1, name, "at least 1")
    need(config.actor_cpus > 0, "actor_cpus", "positive")
    need(config.actor_stall_seconds > 0, "actor_stall_seconds", "positive")
    for name in ("noop_max", "min_replay_size", "epsilon_decay_steps", "eval_every",
                 "num_actors",
                 "eval_steps", "intra_op_threads", "seed", "importance_exponent_steps"):
        need(getattr(config, name) >= 0, name, "0 or more")
    need(config.eval_envs == 1 or config.eval_steps == 0, "eval_envs",
         "1 with --eval_steps (a step budget keeps the first games to end)")
    need(config.augment == "none" or _has_image_states(config.env), "augment",
         f"none for --env={config.env}: it shifts image states (Atari games), and this env "
         "has vector observations")
    need(config.max_frames_per_episode >= config.action_repeat, "max_frames_per_episode",
         f"at least --action_repeat ({config.action_repeat})")
    need(0.0 <= config.sticky_action_prob <= 1.0, "sticky_action_prob", "in [0, 1]")
    need(0.0 < config.gamma <= 1.0, "gamma", "in (0, 1]")
    for name in ("epsilon_start", "epsilon_end", "eval_epsilon"):
        need(0.0 <= getattr(config, name) <= 1.0, name, "in [0, 1]")
    need(config.reward_clip >= 0, "reward_clip", "0 (off) or positive")
    need(config.max_grad_norm >= 0, "max_grad_norm", "0 (off) or positive")
    need(config.learning_rate is None or config.learning_rate > 0, "learning_rate", "positive")
    need(config.optimizer_epsilon is None or config.optimizer_epsilon > 0, "optimizer_epsilon",
         "positive")
    need(config.optimizer in _OPTIMIZER_NAMES, "optimizer", f"one of {_OPTIMIZER_NAMES}")
    need(config.loss in LOSSES, "loss", f"one of {LOSSES}")
    need(config.head in HEADS, "head", f"one of {HEADS}")
    need(config.encoder in ENCODERS, "encoder", f"one of {ENCODERS}")
    need(config.augment in AUGMENTATIONS, "augment", f"one of {AUGMENTATIONS}")
    need(config.num_quantiles >= 1, "num_quantiles", "at least 1")
    need(config.head != "quantile" or config.loss == "huber", "loss",
         "huber with --head=quantile (its loss is the quantile Huber loss)")
    need(config.priority_exponent >= 0, "priority_exponent", "0 or more")
    need(config.priority_epsilon > 0, "priority_epsilon", "positive")
    for name in ("importance_exponent_start", "importance_exponent_end"):
        need(0.0 <= getattr(config, name) <= 1.0, name, "in [0, 1]")
    need(all(s >= 1 for s in config.mlp_hidden_sizes), "mlp_hidden_sizes",
         "a comma-separated list of positive widths")
    need(config.min_replay_size <= config.replay_capacity, "min_replay_size",
         f"at most --replay_capacity ({config.replay_capacity})")
    need(config.batch_size <= max(config.min_replay_size, 1), "batch_size",
         f"at most --min_replay_size ({config.min_replay_size})")
    streams = config.num_envs * max(config.num_actors, 1)
    need(config.replay_capacity >= streams * (config.history_length + config.n_step + 1),
         "replay_capacity", "large enough to hold a stacked n-step transition per env")
    return config


def _has_image_states(env: str) -> bool:
    """Whether `env` (a gymnasium id, or a short name `from_flags` has yet to resolve)
    is an Atari game, whose states are stacked frames."""
    from dqn_tf.atari_env import is_atari  # Deferred: importing it loads the ALE.
    try:
        return is_atari(env)
    except KeyError:  # A short name: only Atari games have them.
        return True


def from_flags(flag_values=flags.FLAGS) -> Config:
    """Builds and validates a Config from parsed absl flags."""
    values = {}
    for field in dataclasses.fields(Config):
        value = flag_values[field.name].value
        if field.name == "mlp_hidden_sizes":
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise UserInputError(f"--mlp_hidden_sizes={','.join(value)} is invalid: it must "
                                     "be a comma-separated list of positive widths") from None
        values[field.name] = value
    from dqn_tf.atari_env import resolve_env_id  # Deferred: importing it loads the ALE.
    values["env"] = resolve_env_id(values["env"])
    if not values["output_dir"]:
        short = values["env"].split("/")[-1].split("-v")[0]
        values["output_dir"] = os.path.join("runs", short)
    return validate(Config(**values))
