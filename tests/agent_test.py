"""Tests for dqn_tf.agent: the update against NumPy, tracing, target sync, cadence."""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dqn_tf import agent as agent_lib
from dqn_tf import atari_env, networks, replay, run_loop
from tests.fakes import ScriptedGame

FLAGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "flags")


def linear_network(weights, bias, num_quantiles=0):
    """Q(s) = s @ weights + bias (reshaped to [B, A, N] with quantiles): a network
    whose gradient we can write by hand."""
    layers = [keras.Input((weights.shape[0],)), keras.layers.Dense(weights.shape[1])]
    if num_quantiles:
        layers.append(keras.layers.Reshape((weights.shape[1] // num_quantiles, num_quantiles)))
    model = keras.Sequential(layers)
    model.layers[0].set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def numpy_update(w, b, w_target, b_target, s_tm1, a_tm1, r_t, discount_t, s_t, weight_t,
                 lr, loss="huber", double_q=False):
    """Independent reference: DQN loss and one SGD step, written out in NumPy."""
    q_target_t = s_t @ w_target + b_target
    q_online_t = s_t @ w + b
    a_star = (q_online_t if double_q else q_target_t).argmax(axis=1)  # Double DQN picks online.
    y = r_t + discount_t * q_target_t[np.arange(len(a_star)), a_star]  # Masked target.
    q_tm1 = s_tm1 @ w + b
    q_acted = q_tm1[np.arange(len(a_tm1)), a_tm1]  # Gather of the taken action.
    td = y - q_acted
    dq = np.zeros_like(q_tm1)  # d loss / d q_tm1: only the taken action's column.
    if loss == "huber":
        per_sample = np.where(np.abs(td) <= 1, 0.5 * td ** 2, np.abs(td) - 0.5)
        dq[np.arange(len(a_tm1)), a_tm1] = -weight_t * np.clip(td, -1, 1) / len(a_tm1)
    else:  # Dopamine's mse_loss: (y - q)^2 with no 1/2, mean over the batch.
        per_sample = td ** 2
        dq[np.arange(len(a_tm1)), a_tm1] = -weight_t * 2 * td / len(a_tm1)
    value = (weight_t * per_sample).mean()
    grad_w, grad_b = s_tm1.T @ dq, dq.sum(axis=0)
    grad_norm = np.sqrt((grad_w ** 2).sum() + (grad_b ** 2).sum())
    return value, q_tm1, w - lr * grad_w, b - lr * grad_b, grad_norm, np.abs(td)


def random_batch(rng, batch=6, dim=3, num_actions=4):
    s_tm1 = rng.normal(size=(batch, dim)).astype(np.float32) * 3  # Some |td| > 1.
    s_t = rng.normal(size=(batch, dim)).astype(np.float32)
    a_tm1 = rng.integers(0, num_actions, batch).astype(np.int32)
    r_t = rng.normal(size=batch).astype(np.float32)
    # Terminals (0), gamma and an n-step gamma^3 discount.
    discount_t = rng.choice([0.0, 0.99, 0.99 ** 3], batch).astype(np.float32)
    weight_t = rng.uniform(0.2, 1.0, batch).astype(np.float32)  # Importance weights.
    return s_tm1, a_tm1, r_t, discount_t, s_t, weight_t


@pytest.mark.parametrize("jit_compile,loss,double_q", [
    (False, "huber", False), (True, "huber", False), (False, "mse", False),
    (False, "huber", True), (True, "mse", True)])
def test_update_matches_numpy_reference(jit_compile, loss, double_q):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    w_target, b_target = rng.normal(size=(3, 4)), rng.normal(size=4)
    online, target = linear_network(w, b), linear_network(w_target, b_target)
    update = agent_lib.build_update_fn(online, target, keras.optimizers.SGD(learning_rate=0.1),
                                       agent_lib.state_spec((3,), np.float32), loss=loss,
                                       double_q=double_q, jit_compile=jit_compile)
    batch = random_batch(rng)
    metrics, priorities = update(*batch)
    value, q_tm1, w_new, b_new, grad_norm, abs_td = numpy_update(
        w, b, w_target, b_target, *batch, lr=0.1, loss=loss, double_q=double_q)
    np.testing.assert_allclose(metrics.numpy(), [value, q_tm1.mean(), q_tm1.max(), grad_norm],
                               rtol=1e-5)
    np.testing.assert_allclose(priorities.numpy(), abs_td, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(online.get_weights()[0], w_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(online.get_weights()[1], b_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(target.get_weights()[0], w_target.astype(np.float32))


def test_the_numpy_double_q_target_differs_from_the_max_where_the_networks_disagree():
    """Guards the reference: the double-Q comparisons above mean something only if the
    NumPy double target differs from the plain max on their kind of batch."""
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    w_target, b_target = rng.normal(size=(3, 4)), rng.normal(size=4)
    batch = random_batch(rng, batch=64)
    s_t = batch[4]
    disagree = (s_t @ w + b).argmax(1) != (s_t @ w_target + b_target).argmax(1)
    assert disagree.any()  # The test means something only where the argmaxes differ.
    plain = numpy_update(w, b, w_target, b_target, *batch, lr=0.0)[-1]
    double = numpy_update(w, b, w_target, b_target, *batch, lr=0.0, double_q=True)[-1]
    assert not np.allclose(plain[disagree & (batch[3] > 0)], double[disagree & (batch[3] > 0)])


def numpy_quantile_huber(target, quantiles):
    """Per-sample loss and d loss / d quantiles, written out loop by loop."""
    batch, n = quantiles.shape
    loss, grad = np.zeros(batch), np.zeros((batch, n))
    for bi in range(batch):
        for i in range(n):
            tau = (i + 0.5) / n
            for j in range(n):
                u = target[bi, j] - quantiles[bi, i]
                huber = 0.5 * u * u if abs(u) <= 1 else abs(u) - 0.5
                k = abs(tau - (u < 0))
                loss[bi] += k * huber / n  # sum over i, mean over j
                grad[bi, i] += -k * np.clip(u, -1, 1) / n  # d huber(u) / du * du / dq
    return loss, grad


def test_quantile_huber_loss_and_its_gradient_against_numpy():
    rng = np.random.default_rng(1)
    target = (rng.normal(size=(5, 7)) * 2).astype(np.float32)
    quantiles = tf.Variable((rng.normal(size=(5, 7)) * 2).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = agent_lib.quantile_huber_loss(tf.constant(target), quantiles)
        total = tf.reduce_sum(loss)
    grad = tape.gradient(total, quantiles)
    want_loss, want_grad = numpy_quantile_huber(target, quantiles.numpy())
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("double_q", [False, True])
def test_quantile_update_matches_numpy_reference(double_q):
    rng = np.random.default_rng(2)
    num_actions, n = 3, 5
    w, b = rng.normal(size=(3, num_actions * n)), rng.normal(size=num_actions * n)
    w_target, b_target = rng.normal(size=(3, num_actions * n)), rng.normal(size=num_actions * n)
    online = linear_network(w, b, num_quantiles=n)
    target = linear_network(w_target, b_target, num_quantiles=n)
    update = agent_lib.build_update_fn(online, target, keras.optimizers.SGD(learning_rate=0.1),
                                       agent_lib.state_spec((3,), np.float32),
                                       double_q=double_q)
    s_tm1, a_tm1, r_t, discount_t, s_t, weight_t = random_batch(rng, num_actions=num_actions)
    metrics, priorities = update(s_tm1, a_tm1, r_t, discount_t, s_t, weight_t)
    z_target_t = (s_t @ w_target + b_target).reshape(-1, num_actions, n)
    chooser = (s_t @ w + b).reshape(-1, num_actions, n) if double_q else z_target_t
    a_star = chooser.mean(axis=2).argmax(axis=1)  # Greedy by the mean of the quantiles.
    y = r_t[:, None] + discount_t[:, None] * z_target_t[np.arange(len(a_star)), a_star]
    z_tm1 = (s_tm1 @ w + b).reshape(-1, num_actions, n)
    per_sample, grad_z = numpy_quantile_huber(y, z_tm1[np.arange(len(a_tm1)), a_tm1])
    dz = np.zeros_like(z_tm1)
    dz[np.arange(len(a_tm1)), a_tm1] = weight_t[:, None] * grad_z / len(a_tm1)
    dz = dz.reshape(len(a_tm1), -1)
    np.testing.assert_allclose(metrics.numpy()[:3], [(weight_t * per_sample).mean(),
                                                     z_tm1.mean(), z_tm1.mean(axis=2).max()],
                               rtol=1e-5)
    np.testing.assert_allclose(priorities.numpy(), per_sample, rtol=1e-5)  # Dopamine's.
    np.testing.assert_allclose(online.get_weights()[0], w - 0.1 * s_tm1.T @ dz, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(online.get_weights()[1], b - 0.1 * dz.sum(axis=0), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("jit_act", [False, True])
def test_greedy_actions_match_numpy_argmax(jit_act):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 5)), rng.normal(size=5)
    greedy = agent_lib.build_greedy_fn(linear_network(w, b),
                                       agent_lib.state_spec((3,), np.float32), jit_compile=jit_act)
    for batch_size in (1, 7):  # XLA specialises on each batch size.
        states = rng.normal(size=(batch_size, 3)).astype(np.float32)
        actions = greedy(states).numpy()
        assert actions.dtype == np.int32
        np.testing.assert_array_equal(actions, (states @ w + b).argmax(axis=1))


def test_huber_loss_values():
    x = tf.constant([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    expected = [2.5, 0.5, 0.125, 0.0, 0.125, 0.5, 2.5]
    np.testing.assert_allclose(agent_lib.huber_loss(x).numpy(), expected)


def preset_learning_config(preset):
    """A preset's Config (flags/<preset>), as main builds it."""
    from absl import flags
    from absl.testing import flagsaver
    from dqn_tf import config as config_lib
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver():
        flags.FLAGS(["test", f"--flagfile={os.path.join(FLAGS_DIR, preset)}"])
        return config_lib.from_flags()


PRESETS = sorted(os.listdir(FLAGS_DIR))
# Combinations used beside the presets: the Nature preset with the IMPALA encoder, and the
# CartPole gate's "all" variant (tests/main_test.py).
VARIANTS = {"impala": ("dqn_nature.cfg", dict(encoder="impala")),
            "cartpole-all": ("cartpole.cfg", dict(double_q=True, dueling=True,
                                                  prioritized=True, head="quantile",
                                                  num_quantiles=51))}


@pytest.mark.parametrize("preset", PRESETS + sorted(VARIANTS))
def test_update_of_every_preset_traces_once_across_batches_and_sizes(preset):
    """Each preset's flag combination (head, dueling, double Q, loss, optimizer, gradient
    clipping, encoder or MLP) has one trace of its update for every batch size, built as
    training builds it."""
    import dataclasses
    from dqn_tf import training
    name, overrides = VARIANTS.get(preset, (preset, {}))
    config = dataclasses.replace(preset_learning_config(name), replay_capacity=1_000,
                                 min_replay_size=100, **overrides)
    cartpole = config.env.startswith("CartPole")
    observation_shape, dtype = ((4,), np.float32) if cartpole else ((84, 84), np.uint8)
    learner = training.build_learner(config, observation_shape, dtype, 6, 1)
    # learn_once calls a concrete function, traced once when the learner is built: every
    # batch below must go through that one trace (a shape it cannot take raises).
    update = learner._update
    assert isinstance(update, tf.types.experimental.ConcreteFunction)
    state_shape = (4 * config.history_length,) if cartpole else (config.history_length, 84, 84)
    rng = np.random.default_rng(0)
    for batch_size in (32, 32, 8):
        s = rng.integers(0, 255, (batch_size,) + state_shape).astype(dtype)
        metrics, priorities = update(
            s, rng.integers(0, 6, batch_size, dtype=np.int32), np.ones(batch_size, np.float32),
            np.full(batch_size, 0.99, np.float32), s, np.ones(batch_size, np.float32))
        assert metrics.shape == (4,) and priorities.shape == (batch_size,)
        assert np.isfinite(metrics.numpy()).all()


def test_target_sync_copies_exactly():
    online, target = networks.nature_cnn(4, name="a"), networks.nature_cnn(4, name="b")
    differ = [not np.array_equal(o, t) for o, t in zip(online.get_weights(),
                                                       target.get_weights())]
    assert any(differ)
    agent_lib.build_sync_fn(online, target)()
    for o, t in zip(online.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(o, t)


def make_learner(num_streams=1, **overrides):
    kwargs = dict(batch_size=4, min_replay_size=10, train_every=4, target_update_period=20)
    kwargs.update(overrides)
    online = networks.mlp(2, (1,), (8,), name="online")
    target = networks.mlp(2, (1,), (8,), name="target")
    memory = replay.ReplayMemory(1000, (1,), np.float32, history_length=1,
                                 num_envs=num_streams)
    return agent_lib.Learner(online_network=online, target_network=target,
                             optimizer=keras.optimizers.SGD(0.01), replay=memory, **kwargs)


def make_agent(num_envs=1, life_loss_terminal=True, **learner_overrides):
    return agent_lib.DqnAgent(make_learner(num_envs, **learner_overrides),
                              actor_seeds=range(num_envs), epsilon_start=1.0, epsilon_end=0.1,
                              epsilon_decay_steps=100, reward_clip=1.0,
                              life_loss_terminal=life_loss_terminal)


def drive(agent, env, steps):
    for timestep, _ in run_loop.run_loop(agent.step, env, agent.learn):
        if agent.agent_steps >= steps:
            return timestep


def test_prioritized_learner_sets_priorities_from_its_td_errors_and_anneals_beta():
    online = networks.mlp(2, (1,), (8,), name="online")
    target = networks.mlp(2, (1,), (8,), name="target")
    memory = replay.ReplayMemory(1000, (1,), np.float32, history_length=1, prioritized=True,
                                 priority_exponent=0.6, priority_epsilon=0.01, seed=4)
    learner = agent_lib.Learner(
        online_network=online, target_network=target, optimizer=keras.optimizers.SGD(0.01),
        replay=memory, batch_size=8, min_replay_size=10, train_every=4,
        target_update_period=1000, loss="mse", importance_exponent=(0.4, 1.0, 100))
    agent = agent_lib.DqnAgent(learner, actor_seeds=[0], epsilon_start=1.0, epsilon_end=1.0,
                               epsilon_decay_steps=1, reward_clip=1.0, life_loss_terminal=True)
    drive(agent, atari_env.BatchedEnv([ScriptedGame(lengths=(7,))]), 30)
    assert learner.importance_exponent == pytest.approx(0.4 + 0.6 * 20 / 100)  # Linear.
    # The batch the next update draws, and its TD errors before the update, in NumPy.
    rng_state = memory.rng.bit_generator.state
    batch = memory.sample(8, learner.importance_exponent)
    memory.rng.bit_generator.state = rng_state
    q_tm1 = online(batch.s_tm1).numpy()[np.arange(8), batch.a_tm1]
    y = batch.r_t + batch.discount_t * target(batch.s_t).numpy().max(axis=1)
    learner.learn_once()
    expected = (np.abs(y - q_tm1) + 0.01) ** 0.6  # Schaul et al.: (|delta| + eps)^alpha.
    np.testing.assert_allclose(memory.priorities()[batch.key], expected, rtol=1e-5)


def test_a_non_finite_update_raises_before_its_priorities_reach_the_tree():
    online = networks.mlp(2, (1,), (8,), name="online")
    target = networks.mlp(2, (1,), (8,), name="target")
    memory = replay.ReplayMemory(1000, (1,), np.float32, history_length=1, prioritized=True)
    learner = agent_lib.Learner(
        online_network=online, target_network=target, optimizer=keras.optimizers.SGD(0.01),
        replay=memory, batch_size=8, min_replay_size=10, train_every=4,
        target_update_period=1000)
    agent = agent_lib.DqnAgent(learner, actor_seeds=[0], epsilon_start=1.0, epsilon_end=1.0,
                               epsilon_decay_steps=1, reward_clip=1.0, life_loss_terminal=True)
    drive(agent, atari_env.BatchedEnv([ScriptedGame(lengths=(7,))]), 30)
    before = memory.priorities().copy()
    online.set_weights([np.full_like(w, np.nan) for w in online.get_weights()])
    with pytest.raises(FloatingPointError, match="non-finite update"):
        learner.learn_once()
    np.testing.assert_array_equal(memory.priorities(), before)  # No NaN in the tree.


def test_agent_learns_on_cadence_and_syncs_target():
    agent = make_agent()
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(7,))])
    drive(agent, env, 50)
    # Learning starts once 10 transitions are stored: steps 10..50 pay 41 credits
    # -> 10 updates at one per 4 agent steps. Target syncs at 20 and 40.
    assert agent.agent_steps == 50 and len(agent.replay) == 50
    assert agent.updates == 10
    assert agent.target_syncs == 2


def test_updates_left_unpaid_by_a_loop_without_learn_are_paid_the_same_by_step():
    def train(with_learn_hook):
        keras.utils.set_random_seed(5)
        agent = make_agent(num_envs=2)
        env = atari_env.BatchedEnv([ScriptedGame(lengths=(7,)), ScriptedGame(lengths=(5,))])
        loop = run_loop.run_loop(agent.step, env, agent.learn if with_learn_hook else None)
        for _ in zip(range(40), loop):
            pass
        agent.learn()
        return agent

    overlapped, inline = train(True), train(False)
    assert overlapped.updates == inline.updates >= 15
    assert overlapped.target_syncs == inline.target_syncs == 3
    for a, b in zip(overlapped.online_network.get_weights(), inline.online_network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert overlapped.get_state() == inline.get_state()


def test_pop_metrics_averages_every_update_even_several_per_step():
    agent = make_agent(num_envs=2, train_every=1)  # Two updates per step once learning.
    seen = []
    learn_once = agent.learner.learn_once
    agent.learner.learn_once = lambda: seen.append(learn_once().copy())
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(7,)), ScriptedGame(lengths=(5,))])
    drive(agent, env, 30)
    assert len(seen) == agent.updates >= 15
    means = agent.learner.pop_metrics()
    np.testing.assert_allclose([means[name] for name in agent_lib.METRIC_NAMES],
                               np.mean(seen, axis=0), rtol=1e-6)
    assert agent.learner.pop_metrics() is None  # The window starts again.


def test_agent_records_what_the_env_did():
    agent = make_agent(life_loss_terminal=False)
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(3,))])
    drive(agent, env, 6)
    memory = agent.replay
    # Observations count up 1,2,3,4 (game 1: reset + 3 steps), 5,6,7,8 (game 2).
    # Stored: the observation each action was taken at, never the final one.
    assert memory.frames[0, :6, 0].tolist() == [1, 2, 3, 5, 6, 7]
    assert memory.terminal[0, :6].tolist() == [False, False, True] * 2
    assert memory.episode_end[0, :6].tolist() == [False, False, True] * 2


def test_agent_state_round_trip():
    agent = make_agent()
    drive(agent, atari_env.BatchedEnv([ScriptedGame()]), 30)
    state = agent.get_state()
    other = make_agent()
    drive(other, atari_env.BatchedEnv([ScriptedGame()]), 10)  # A replay past warm-up.
    other.set_state(state)
    assert other.get_state() == state
    assert other.epsilon == agent.epsilon


def test_resume_without_replay_refills_before_learning():
    agent = make_agent(train_every=1)
    drive(agent, atari_env.BatchedEnv([ScriptedGame()]), 30)
    state = agent.get_state()
    assert state["update_credit"] >= 1  # An update was owed when this state was taken.
    resumed = make_agent(train_every=1)  # An empty replay: no --checkpoint_replay.
    resumed.set_state(state)
    drive(resumed, atari_env.BatchedEnv([ScriptedGame()]), 45)
    # Steps 31..39 refill 9 transitions; from the 10th (step 40) one update per step,
    # paid after the step is yielded: steps 40..44 are paid, 45 is owed.
    assert len(resumed.replay) == 15
    assert resumed.updates - state["updates"] == 5


def test_epsilon_greedy_actor_is_greedy_at_zero_and_random_at_one():
    greedy = lambda states: np.full(len(states), 1, np.int32)  # noqa: E731
    actor = run_loop.EpsilonGreedyActor(greedy, num_actions=5, observation_shape=(1,),
                                        history_length=1, dtype=np.float32, seeds=range(64))
    ts = atari_env.TimeStep(np.zeros((64, 1), np.float32), np.zeros(64, np.float32),
                            np.ones(64, bool), *(np.zeros(64, bool),) * 3)
    assert (actor.step(ts, 0.0) == 1).all()
    assert len(set(actor.step(ts, 1.0).tolist())) == 5


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
