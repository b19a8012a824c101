"""The DQN learner (Mnih et al., Nature 2015) and its family: update step, target
sync, and the agent.

The learning math is three functions built once per network pair and compiled
with `tf.function` over fixed input signatures (so they never retrace):

  update(s_tm1, a_tm1, r_t, discount_t, s_t, weight_t)
                          -> (metrics [4] float32, priorities [B] float32)
  sync_target()           -> copies online weights to target
  greedy_actions(states)  -> [B] int32 argmax_a Q_online(s, a)

One update serves every variant, chosen when it is built: the Q-value or quantile
head (QR-DQN, Dabney et al., 2018, with the network's output rank telling which),
Double DQN's target (van Hasselt et al., 2016), and importance weights (ones for
uniform replay; Schaul et al., 2016). Dueling and the encoder live in the network.

`Learner` owns what learns: both networks, the optimizer, the replay memory and the
update counters. It knows no env and no actor: transitions come to it as rows, from
`DqnAgent` (one process: an actor over the learner's own network, stepped by the
run loop) or from remote actors (`dqn_tf.distributed`).
"""

from typing import Sequence

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import keras
import numpy as np
import tensorflow as tf

from dqn_tf import augmentation, networks
from dqn_tf import replay as replay_lib
from dqn_tf import run_loop, schedules
from dqn_tf.timestep import TimeStep
from dqn_tf.errors import UserInputError

METRIC_NAMES = ("loss", "mean_q", "max_q", "grad_norm")
LOSSES = ("huber", "mse")


def huber_loss(x: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """Elementwise Huber: 0.5 x^2 for |x| <= delta, delta (|x| - 0.5 delta) beyond.

    Its gradient is the TD error clipped to [-delta, delta], Nature's "error clipping".
    """
    abs_x = tf.abs(x)
    quadratic = tf.minimum(abs_x, delta)
    return 0.5 * quadratic ** 2 + delta * (abs_x - quadratic)


def squared_loss(x: tf.Tensor) -> tf.Tensor:
    """Elementwise x^2, with no 1/2: Dopamine's JAX `losses.mse_loss`."""
    return tf.square(x)


def td_loss(name: str):
    """The elementwise loss of the TD error for `--loss`: one of `LOSSES`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    return huber_loss if name == "huber" else squared_loss


def state_spec(state_shape: Sequence[int], dtype) -> tf.TensorSpec:
    """TensorSpec of a batch of states: [None, *state_shape]."""
    return tf.TensorSpec([None] + list(state_shape), tf.as_dtype(dtype))


def quantile_huber_loss(target_t: tf.Tensor, quantiles_tm1: tf.Tensor) -> tf.Tensor:
    """QR-DQN's loss of each sample (Dabney et al., 2018), kappa = 1.

    With u_ij = target_j - quantile_i and tau_i = (i + 1/2) / N, the midpoints:

        rho_ij = |tau_i - 1{u_ij < 0}| * huber(u_ij)
        loss = sum_i mean_j rho_ij

    summed over the predicted quantiles i and averaged over the target ones j, as
    Dopamine's QR-DQN and rlax's quantile_regression_loss do.

    Args:
      target_t: [B, N] target quantiles (no gradient flows into them).
      quantiles_tm1: [B, N] the online network's quantiles of the taken action.

    Returns:
      [B] float32 per-sample losses.
    """
    n = quantiles_tm1.shape[-1]
    u = target_t[:, None, :] - quantiles_tm1[:, :, None]  # [B, i, j]
    tau = (tf.range(n, dtype=tf.float32) + 0.5) / n
    weight = tf.abs(tau[None, :, None] - tf.cast(u < 0.0, tf.float32))
    return tf.reduce_sum(tf.reduce_mean(weight * huber_loss(u), axis=2), axis=1)


def build_update_fn(online_network: keras.Model, target_network: keras.Model,
                    optimizer: keras.optimizers.Optimizer, spec: tf.TensorSpec, *,
                    loss: str = "huber", double_q: bool = False, max_grad_norm: float = 0.0,
                    augment: str = "none", generator: tf.random.Generator | None = None,
                    target_is_online: bool = False, jit_compile: bool = False):
    """Returns the compiled update over batches of transitions.

    With discount_t = gamma^n, or 0 when the transition hit a terminal within its
    horizon (the replay folds the (1 - done) mask into it), and a* the next action:

        a* = argmax_a Q_target(s_t, a)        (Double DQN: argmax_a Q_online(s_t, a))
        Q-value head:  y = r_t + discount_t * Q_target(s_t, a*)             (no gradient)
                       L_b = huber or x^2 (`--loss`) of y - Q_online(s_tm1, a_tm1)
        quantile head: y_j = r_t + discount_t * Z_target(s_t, a*)_j          (no gradient)
                       L_b = quantile_huber_loss(y, Z_online(s_tm1, a_tm1))
        loss = mean_b weight_b * L_b

    With `augment` (DrQ, `dqn_tf.augmentation`), s_tm1 and s_t are augmented with
    independent draws before any network sees them; Q_online(s_t) and Q_target(s_t)
    see the same augmented s_t.

    The loss is a mean over the batch, not Nature's sum: optimizer settings taken
    from a summed-loss source must be rescaled (see `optimizers.PRESETS`). The
    priorities returned are |y - Q| for the Q-value head and L_b for the quantile
    head (as Dopamine's QR-DQN).

    Args:
      online_network, target_network: networks of identical architecture, with
        outputs [B, A] (Q-values) or [B, A, N] (quantiles).
      optimizer: a Keras optimizer; built here on the online variables.
      spec: `state_spec` of s_tm1 and s_t.
      loss: "huber" (Nature, Dopamine TF) or "mse" (Dopamine JAX), see `td_loss`; the
        quantile head always uses the quantile Huber loss.
      double_q: the online network picks a*, the target network values it.
      max_grad_norm: clip gradients to this global norm; 0 disables.
      augment: one of `augmentation.AUGMENTATIONS`.
      generator: the random draws of `augment` (not needed for "none").
      target_is_online: the caller syncs the target network after every update, so
        Q_target(s_t) = Q_online(s_t): computed once, with the online network (the
        same numbers, one forward pass fewer; with double_q, two fewer).
      jit_compile: compile with XLA.

    Returns:
      update(s_tm1, a_tm1 [B] int32, r_t [B] float32, discount_t [B] float32, s_t,
             weight_t [B] float32)
      -> ([4] float32 metrics in `METRIC_NAMES` order (grad_norm before clipping),
          [B] float32 priorities).
    """
    variables = online_network.trainable_variables
    optimizer.build(variables)
    quantile = len(online_network.output_shape) == 3  # [B, A, N]: the quantile head.
    scalar_batch = tf.TensorSpec([None], tf.float32)
    elementwise_loss = td_loss(loss)
    online_call, target_call = online_network, target_network
    if augment != "none":  # The networks after their preprocessing (no variables in it).
        preprocess, online_call = augmentation.split(online_network)
        _, target_call = augmentation.split(target_network)
    if target_is_online:
        target_call = online_call

    def inputs(states):
        """The networks' inputs: `states`, or their augmented images."""
        if augment == "none":
            return states
        return augmentation.augment_images(preprocess(states), augment, generator)

    def taken(outputs, actions):
        """outputs[b, actions[b]]: [B] Q-values or [B, N] quantiles."""
        return tf.gather(outputs, actions, axis=1, batch_dims=1)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32), scalar_batch,
                                  scalar_batch, spec, scalar_batch], jit_compile=jit_compile)
    def update(s_tm1, a_tm1, r_t, discount_t, s_t, weight_t):
        s_tm1, s_t = inputs(s_tm1), inputs(s_t)  # Independent draws.
        target_t = target_call(s_t, training=False)
        chooser = (online_call(s_t, training=False) if double_q and not target_is_online
                   else target_t)
        a_star = tf.argmax(networks.q_values(chooser), axis=1, output_type=tf.int32)
        if quantile:
            y = r_t[:, None] + discount_t[:, None] * taken(target_t, a_star)
        else:
            y = r_t + discount_t * taken(target_t, a_star)
        y = tf.stop_gradient(y)
        with tf.GradientTape() as tape:
            out_tm1 = online_call(s_tm1, training=True)
            if quantile:
                per_sample = quantile_huber_loss(y, taken(out_tm1, a_tm1))
                priorities = per_sample
            else:
                td = y - taken(out_tm1, a_tm1)
                per_sample = elementwise_loss(td)
                priorities = tf.abs(td)
            loss = tf.reduce_mean(weight_t * per_sample)
        gradients = tape.gradient(loss, variables)
        grad_norm = tf.linalg.global_norm(gradients)
        if max_grad_norm > 0:
            gradients, _ = tf.clip_by_global_norm(gradients, max_grad_norm, use_norm=grad_norm)
        optimizer.apply_gradients(zip(gradients, variables))
        q_tm1 = networks.q_values(out_tm1)
        metrics = tf.stack([loss, tf.reduce_mean(q_tm1), tf.reduce_max(q_tm1), grad_norm])
        return metrics, tf.stop_gradient(priorities)

    return update


def build_sync_fn(online_network: keras.Model, target_network: keras.Model):
    """Returns sync() that copies every online variable into the target (tau = 1)."""
    pairs = list(zip(online_network.variables, target_network.variables))
    for source, target in pairs:
        if source.shape != target.shape:
            raise ValueError(f"online/target variable mismatch: {source.path} {target.path}")

    @tf.function(input_signature=[])
    def sync():
        for source, target in pairs:
            target.assign(source)

    return sync


def build_greedy_fn(network: keras.Model, spec: tf.TensorSpec, jit_compile: bool = False):
    """Returns greedy(states [B, *state_shape]) -> [B] int32 argmax actions."""

    @tf.function(input_signature=[spec], jit_compile=jit_compile)
    def greedy(states):
        q = networks.q_values(network(states, training=False))
        return tf.argmax(q, axis=1, output_type=tf.int32)

    return greedy


class Learner:
    """Learns from the transitions it is given: the replay memory, both networks, the
    optimizer and the update schedule. It knows no env and no actor.

    `record` adds transitions (from the single-process agent below, or from remote
    actors' chunks); `learn` pays the updates they are due, one per `train_every`
    transitions once the replay holds `min_replay_size`, and syncs the target network
    every `target_update_period` transitions. Counting is in agent steps: one per
    transition recorded, from any env or actor.
    """

    def __init__(self, *, online_network: keras.Model, target_network: keras.Model,
                 optimizer: keras.optimizers.Optimizer, replay: replay_lib.ReplayMemory,
                 batch_size: int, min_replay_size: int, train_every: int,
                 target_update_period: int, loss: str = "huber", double_q: bool = False,
                 importance_exponent: tuple = (0.0, 0.0, 0), max_grad_norm: float = 0.0,
                 augment: str = "none", augment_seed: int = 0,
                 jit_compile: bool = False, jit_act: bool = False):
        """Args:
          online_network, target_network: Q-networks with identical architecture.
          optimizer: Keras optimizer for the online network.
          replay: the replay memory to record into and sample from.
          batch_size: transitions per update.
          min_replay_size: transitions in replay before learning starts.
          train_every: agent steps per gradient update.
          target_update_period: agent steps between target syncs.
          loss: the TD loss, one of `LOSSES`.
          double_q: Double DQN's target.
          importance_exponent: (start, end, agent steps) of prioritized replay's beta,
            linear from the end of the warm-up.
          max_grad_norm: global-norm gradient clipping; 0 = off.
          augment: DrQ's augmentation of sampled states, one of
            `augmentation.AUGMENTATIONS`.
          augment_seed: seeds the augmentation's draws (a generator checkpointed
            with the networks).
          jit_compile: XLA-compile the update.
          jit_act: XLA-compile the greedy-action function.
        """
        self.online_network = online_network
        self.target_network = target_network
        self.optimizer = optimizer
        self.replay = replay
        state_shape = online_network.input_shape[1:]
        spec = state_spec(state_shape, replay.observation_dtype)
        self.augment_generator = (tf.random.Generator.from_seed(augment_seed)
                                  if augment != "none" else None)
        # With one stream of transitions and a sync at least every `train_every` agent
        # steps, the target network would be synced after every update: it would equal
        # the online network whenever an update reads it (DrQ's target_update_period =
        # 1). The update then reads the online network instead, and the target's copy
        # is made only for checkpoints (`before_checkpoint`).
        self.target_is_online = (replay.num_envs == 1
                                 and target_update_period <= train_every)
        # The hot path calls concrete functions (traced here, once): this skips
        # tf.function's per-call signature dispatch, 0.1-0.2 ms per call.
        self._update = build_update_fn(online_network, target_network, optimizer, spec,
                                       loss=loss, double_q=double_q,
                                       max_grad_norm=max_grad_norm, augment=augment,
                                       generator=self.augment_generator,
                                       target_is_online=self.target_is_online,
                                       jit_compile=jit_compile).get_concrete_function()
        self._sync_target = build_sync_fn(online_network, target_network)
        self.greedy_actions = build_greedy_fn(online_network, spec,
                                              jit_compile=jit_act).get_concrete_function()
        self.num_actions = online_network.output_shape[1]
        self._batch_size = batch_size
        self.min_replay_size = min_replay_size
        self._train_every = train_every
        self._target_update_period = target_update_period
        beta_start, beta_end, beta_steps = importance_exponent
        self._beta = dict(start=beta_start, end=beta_end, steps=beta_steps)
        # Counters: the whole of the learner's Python state besides the replay's RNG.
        self.agent_steps = 0
        self.updates = 0
        self.target_syncs = 0
        self._update_credit = 0  # Learning agent steps not yet paid for with an update.
        self._warm = False  # The replay has reached min_replay_size.
        self.last_metrics = None  # [4] numpy metrics of the latest update.
        self._metric_sums = np.zeros(len(METRIC_NAMES))  # Since the last `pop_metrics`.
        self._metric_count = 0
        self._sync_target()

    @property
    def importance_exponent(self) -> float:
        """Prioritized replay's beta now (linear from the end of the warm-up)."""
        return schedules.linear(self.agent_steps - self.min_replay_size, **self._beta)

    def record(self, rows: run_loop.ReplayRows, streams: np.ndarray | None = None) -> None:
        """Adds transitions: one lock-step ([E] rows) or a chunk ([T, E] rows, `stack_rows`),
        into the replay segments `streams` (default: env e into segment e)."""
        if rows.action.ndim == 2:
            for step in zip(*rows):
                self.record(run_loop.ReplayRows(*step), streams)
            return
        self.replay.add(*rows[:5], env_mask=rows.env_mask, streams=streams)
        added = int(rows.env_mask.sum())
        self.agent_steps += added
        # The replay never shrinks: once warm, it stays warm (no size check per step).
        self._warm = self._warm or len(self.replay) >= self.min_replay_size
        if self._warm:
            self._update_credit += added

    def learn(self) -> None:
        """Pays the updates due (one per `train_every` agent steps once learning has
        started) and syncs the target network when its period is up."""
        while self._update_credit >= self._train_every:
            self._update_credit -= self._train_every
            self.learn_once()
        if self.agent_steps >= (self.target_syncs + 1) * self._target_update_period:
            if not self.target_is_online:  # Else no update reads the target's variables.
                self._sync_target()
            self.target_syncs += 1

    def before_checkpoint(self) -> None:
        """Makes the target network what it stands for before it is saved: with
        `target_is_online` the update never reads it, so it is copied only here."""
        if self.target_is_online:
            self._sync_target()

    def learn_once(self) -> np.ndarray:
        """One gradient update on a fresh batch; returns the [4] metrics."""
        batch = self.replay.sample(self._batch_size, self.importance_exponent)
        metrics, priorities = self._update(batch.s_tm1, batch.a_tm1, batch.r_t,
                                           batch.discount_t, batch.s_t, batch.weight)
        self.last_metrics = metrics.numpy()
        self.updates += 1
        if not np.isfinite(self.last_metrics).all():  # Before the tree takes its priorities.
            values = dict(zip(METRIC_NAMES, self.last_metrics.tolist()))
            raise FloatingPointError(f"non-finite update at agent step {self.agent_steps} "
                                     f"(update {self.updates}): {values}")
        self.replay.update_priorities(batch.key, priorities.numpy())
        self._metric_sums += self.last_metrics
        self._metric_count += 1
        return self.last_metrics

    def pop_metrics(self) -> dict | None:
        """Mean of each of `METRIC_NAMES` over every update since the last call
        (None if there was none), and starts a new window."""
        if not self._metric_count:
            return None
        means = dict(zip(METRIC_NAMES, (self._metric_sums / self._metric_count).tolist()))
        self._metric_sums[:], self._metric_count = 0.0, 0
        return means

    def weights(self) -> list:
        """The online network's weights (numpy arrays), for actors' copies."""
        return self.online_network.get_weights()

    # ------------------------------------------------------------ state

    def trackables(self) -> dict:
        """TF objects a `tf.train.Checkpoint` must hold to restore learning."""
        objects = dict(online_network=self.online_network,
                       target_network=self.target_network, optimizer=self.optimizer)
        if self.augment_generator is not None:
            objects["augment_generator"] = self.augment_generator
        return objects

    def get_state(self) -> dict:
        """JSON-serialisable counters and RNG state (networks go via `trackables`)."""
        return {"agent_steps": self.agent_steps, "updates": self.updates,
                "target_syncs": self.target_syncs, "update_credit": self._update_credit,
                "replay_rng": self.replay.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.agent_steps = int(state["agent_steps"])
        self.updates = int(state["updates"])
        self.target_syncs = int(state["target_syncs"])
        # Restored without its replay (no --checkpoint_replay), the learner refills
        # `min_replay_size` transitions before it learns again: the credit owed
        # when the checkpoint was taken cannot be paid from an empty replay.
        refilled = len(self.replay) >= self.min_replay_size
        self._update_credit = int(state["update_credit"]) if refilled else 0
        self.replay.rng.bit_generator.state = state["replay_rng"]


class DqnAgent:
    """The single-process agent: a `Learner`, an epsilon-greedy actor over the learner's
    own online network, and the recorder between them.

    Call `step` with every `TimeStep` of a batched env; it returns the next actions.
    Call `learn` while the env computes the next step (the run loop does); it pays the
    updates that the recorded transitions are due.
    """

    def __init__(self, learner: Learner, *, actor_seeds: Sequence, epsilon_start: float,
                 epsilon_end: float, epsilon_decay_steps: int, reward_clip: float,
                 life_loss_terminal: bool, epsilon_decay_from_start: bool = False):
        """Args:
          learner: what learns from the transitions.
          actor_seeds: one exploration seed per env stepped in lockstep (ints or
            `np.random.SeedSequence`s, see `dqn_tf.seeding`).
          epsilon_start, epsilon_end, epsilon_decay_steps: linear schedule after warm-up
            (from agent step 0 with `epsilon_decay_from_start`).
          reward_clip: learning rewards are clipped to [-reward_clip, reward_clip]; 0 = off.
          life_loss_terminal: a lost life is a terminal for learning (game continues).
        """
        self.learner = learner
        replay = learner.replay
        self.actor = run_loop.EpsilonGreedyActor(
            learner.greedy_actions, num_actions=learner.num_actions,
            observation_shape=replay.observation_shape, history_length=replay.history_length,
            dtype=replay.observation_dtype, seeds=actor_seeds)
        self.recorder = run_loop.TransitionRecorder(reward_clip, life_loss_terminal)
        self._epsilon = dict(start=epsilon_start, end=epsilon_end,
                             decay_agent_steps=epsilon_decay_steps,
                             warmup_agent_steps=learner.min_replay_size,
                             decay_from_start=epsilon_decay_from_start)

    # The learner's counters and parts, as the run loop and its consumers read them.
    agent_steps = property(lambda self: self.learner.agent_steps)
    updates = property(lambda self: self.learner.updates)
    target_syncs = property(lambda self: self.learner.target_syncs)
    replay = property(lambda self: self.learner.replay)
    online_network = property(lambda self: self.learner.online_network)
    greedy_actions = property(lambda self: self.learner.greedy_actions)

    @property
    def epsilon(self) -> float:
        return schedules.linear_epsilon(self.learner.agent_steps, **self._epsilon)

    def step(self, timestep: TimeStep) -> np.ndarray:
        """Records the transitions that `timestep` completes and picks the next actions.

        The updates those transitions pay for are left to `learn`, which the run
        loop calls while the env computes the next step. If nobody called it,
        they are paid here first, on the same replay contents, so the result is
        the same either way.

        Returns:
          [E] int32 actions (ignored by the env for envs whose game just ended).
        """
        self.learner.learn()
        rows = self.recorder.record(timestep)
        if rows is not None:
            self.learner.record(rows)
        actions = self.actor.step(timestep, self.epsilon)
        self.recorder.remember(timestep, actions)
        return actions

    def learn(self) -> None:
        self.learner.learn()

    def get_state(self) -> dict:
        """The learner's state and the actor's RNG states (JSON-serialisable)."""
        return dict(self.learner.get_state(), epsilon=self.epsilon,
                    actor_rngs=[rng.bit_generator.state for rng in self.actor.rngs])

    def set_state(self, state: dict) -> None:
        if len(state["actor_rngs"]) != len(self.actor.rngs):
            raise UserInputError(f"the checkpoint has {len(state['actor_rngs'])} actor RNGs "
                                 f"for {len(self.actor.rngs)} envs; resume with the same "
                                 "--num_envs")
        self.learner.set_state(state)
        for rng, rng_state in zip(self.actor.rngs, state["actor_rngs"]):
            rng.bit_generator.state = rng_state
