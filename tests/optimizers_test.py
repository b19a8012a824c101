"""Tests for dqn_tf.optimizers: the fused kernels against Keras's own optimizers and NumPy."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dqn_tf import optimizers

SHAPES = [(7, 5), (5,), (3, 3, 2, 4)]


def gradient_sequence(steps, seed=0):
    """`steps` lists of float32 gradients, one per shape in SHAPES, of mixed scale."""
    rng = np.random.default_rng(seed)
    return [[(rng.normal(size=shape) * rng.choice([1e-3, 1.0, 30.0])).astype(np.float32)
             for shape in SHAPES] for _ in range(steps)]


def run(optimizer, gradients, in_graph):
    """Applies every step of `gradients` to fresh variables; returns their final values."""
    rng = np.random.default_rng(1)
    variables = [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
    optimizer.build(variables)

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if in_graph:
        apply = tf.function(apply)
    for grads in gradients:
        apply([tf.constant(g) for g in grads])
    return [v.numpy() for v in variables]


def keras_reference(name, **overrides):
    kind, kwargs = optimizers.preset_arguments(name, **overrides)
    return keras.optimizers.Adam(**kwargs) if kind == "adam" else keras.optimizers.RMSprop(
        **kwargs)


@pytest.mark.parametrize("name", sorted(optimizers.PRESETS))
@pytest.mark.parametrize("in_graph", [False, True])
def test_fused_presets_match_keras(name, in_graph):
    gradients = gradient_sequence(6)
    fused = run(optimizers.make_optimizer(name, learning_rate=0.01), gradients, in_graph)
    reference = run(keras_reference(name, learning_rate=0.01), gradients, in_graph)
    start = run(keras_reference(name), [], in_graph)
    for got, want, before in zip(fused, reference, start):
        assert not np.allclose(got, before)  # The steps moved the variables...
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)  # ...as Keras does.


def test_card_rmsprop_matches_numpy():
    gradients = gradient_sequence(5, seed=3)
    got = run(optimizers.make_optimizer("rmsprop"), gradients, in_graph=True)
    rng = np.random.default_rng(1)
    for i, shape in enumerate(SHAPES):
        var = rng.normal(size=shape)
        ms, mom = np.zeros(shape), np.zeros(shape)
        for grads in gradients:
            g = grads[i].astype(np.float64)
            ms = 0.9 * ms + 0.1 * g ** 2
            mom = 0.95 * mom + 0.00025 * g / np.sqrt(ms + 0.1)
            var = var - mom
        np.testing.assert_allclose(got[i], var, rtol=1e-5, atol=1e-7)


def test_presets_and_overrides():
    card = optimizers.make_optimizer("rmsprop")
    assert isinstance(card, optimizers.FusedRMSprop)
    assert (card.momentum, card.epsilon, card.rho, card.centered) == (0.95, 0.1, 0.9, False)
    nature = optimizers.make_optimizer("nature_rmsprop")
    # DQN Zoo dqn/run_atari.py: optimizer_epsilon = 0.01 / 32**2 for its mean loss.
    assert (nature.momentum, nature.epsilon, nature.rho, nature.centered) == (
        0.0, 0.01 / 32**2, 0.95, True)
    assert optimizers.make_optimizer("nature_rmsprop", batch_size=64).epsilon == 0.01 / 64**2
    adam = optimizers.make_optimizer("adam", learning_rate=1e-3)
    assert isinstance(adam, optimizers.FusedAdam) and adam.epsilon == 1.5e-4
    assert float(adam.learning_rate) == pytest.approx(1e-3)
    assert optimizers.make_optimizer("rmsprop", epsilon=0.5).epsilon == 0.5


@pytest.mark.parametrize("batch_size", [32, 7])
def test_nature_epsilon_makes_a_mean_loss_step_as_nature_summed_loss_did(batch_size):
    """Centred RMSProp on B x the gradients (Nature's loss summed over a batch of B) with
    epsilon 0.01 moves the weights as the same optimizer on the gradients of the mean
    loss with `nature_epsilon(B)` = 0.01 / B^2."""
    gradients = gradient_sequence(6, seed=7)
    summed = [[batch_size * g for g in grads] for grads in gradients]

    def nature(epsilon=None):
        return optimizers.make_optimizer("nature_rmsprop", epsilon=epsilon,
                                         batch_size=batch_size)

    assert nature().epsilon == pytest.approx(0.01 / batch_size ** 2)
    ours = run(nature(), gradients, in_graph=True)
    for got, want in zip(ours, run(nature(epsilon=0.01), summed, in_graph=True)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # At a DQN's gradient scale (here <= 3e-5 per weight) epsilon sets the step size:
    # Nature's 0.01 with a mean loss moves the weights far less than 0.01 / B^2 does.
    tiny = [[1e-6 * g for g in grads] for grads in gradients]
    start = run(nature(), [], in_graph=True)
    ours = run(nature(), tiny, in_graph=True)
    too_small = run(nature(epsilon=0.01), tiny, in_graph=True)

    def moved(final):
        return sum(np.abs(a - b).sum() for a, b in zip(final, start))

    assert moved(too_small) < 0.5 * moved(ours)


@pytest.mark.parametrize("name", sorted(optimizers.PRESETS))
def test_slots_survive_a_checkpoint(tmp_path, name):
    gradients = gradient_sequence(4, seed=5)
    first = optimizers.make_optimizer(name, learning_rate=0.01)
    variables = [keras.Variable(np.ones(shape, np.float32)) for shape in SHAPES]
    first.build(variables)
    for grads in gradients[:3]:
        first.apply_gradients(zip(grads, variables))
    path = tf.train.Checkpoint(optimizer=first, variables=variables).write(
        str(tmp_path / "ckpt"))
    second = optimizers.make_optimizer(name, learning_rate=0.01)
    restored = [keras.Variable(np.zeros(shape, np.float32)) for shape in SHAPES]
    second.build(restored)
    tf.train.Checkpoint(optimizer=second, variables=restored).read(path).assert_consumed()
    first.apply_gradients(zip(gradients[3], variables))
    second.apply_gradients(zip(gradients[3], restored))
    for a, b in zip(variables, restored):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
