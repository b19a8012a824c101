"""Tests for dqn_tf.augmentation and the augmented update: shifts against NumPy's edge
padding and cropping, the draws' distribution, and the update's use of them."""

import itertools
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dqn_tf import agent as agent_lib
from dqn_tf import augmentation, networks, run_loop


def numpy_pad_and_crop(image, row_offset, col_offset, pad=4):
    """DrQ as written: pad by replicating the edge, crop at (pad + offset)."""
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)], mode="edge")
    r, c = pad + row_offset, pad + col_offset
    return padded[r:r + image.shape[0], c:c + image.shape[1]]


def test_shift_is_edge_padding_then_cropping_for_every_offset():
    rng = np.random.default_rng(0)
    offsets = np.array(list(itertools.product(range(-4, 5), repeat=2)), np.int32)  # All 81.
    images = rng.integers(0, 256, (len(offsets), 84, 84, 4)).astype(np.float32)
    shifted = augmentation.shift(tf.constant(images), tf.constant(offsets)).numpy()
    for image, offset, out in zip(images, offsets, shifted):
        np.testing.assert_array_equal(out, numpy_pad_and_crop(image, *offset))


def decode_offsets(shifted):
    """The offsets of images made by `position_images`, read off their centre pixel."""
    centre = shifted[:, 42, 42, 0].astype(np.int64)
    return np.stack([centre // 100 - 42, centre % 100 - 42], axis=1)


def position_images(batch):
    """Images whose pixel (r, c) holds r * 100 + c: a shift is read off any pixel."""
    rows, cols = np.meshgrid(np.arange(84), np.arange(84), indexing="ij")
    image = (rows * 100 + cols).astype(np.float32)[:, :, None]
    return tf.constant(np.repeat(image[None], batch, axis=0))


def test_random_shift_draws_each_of_the_81_offsets_uniformly_per_image():
    generator = tf.random.Generator.from_seed(3)
    offsets = decode_offsets(augmentation.random_shift(position_images(8100), generator).numpy())
    assert offsets.min() == -4 and offsets.max() == 4
    counts = np.zeros((9, 9))
    np.add.at(counts, (offsets[:, 0] + 4, offsets[:, 1] + 4), 1)
    # 100 expected per cell; a chi-square with 80 degrees of freedom: 99.9 % below 124.8.
    chi_square = ((counts - 100) ** 2 / 100).sum()
    assert counts.min() > 0 and chi_square < 124.8
    # A fresh draw at each call: two calls do not repeat each other's offsets.
    again = decode_offsets(augmentation.random_shift(position_images(8100), generator).numpy())
    assert (again != offsets).any(axis=1).mean() > 0.95


def test_random_intensity_scales_each_image_by_one_factor_in_0_9_to_1_1():
    generator = tf.random.Generator.from_seed(5)
    images = tf.fill([20_000, 2, 3, 4], 0.5)
    out = augmentation.random_intensity(images, generator).numpy()
    factors = out[:, 0, 0, 0] / 0.5
    np.testing.assert_allclose(out, np.broadcast_to(factors[:, None, None, None] * 0.5,
                                                    out.shape), rtol=1e-6)
    assert factors.min() >= 0.9 - 1e-6 and factors.max() <= 1.1 + 1e-6
    # 1 + 0.05 clip(N(0, 1), -2, 2): mean 1; std 0.05 * 0.9733 (the clipped normal's).
    assert factors.mean() == pytest.approx(1.0, abs=0.002)
    assert factors.std() == pytest.approx(0.05 * 0.9733, rel=0.03)
    assert (np.isclose(factors, 0.9, atol=1e-6).mean() ==  # P(N < -2) = 2.3 %
            pytest.approx(0.0228, abs=0.005))


@pytest.mark.parametrize("dueling,quantiles", [(False, 0), (True, 0), (True, 5)])
def test_split_network_is_the_network(dueling, quantiles):
    network = networks.q_network(6, (4, 84, 84), dueling=dueling, num_quantiles=quantiles)
    preprocess, body = augmentation.split(network)
    states = np.random.default_rng(1).integers(0, 256, (5, 4, 84, 84)).astype(np.uint8)
    np.testing.assert_array_equal(body(preprocess(states)).numpy(), network(states).numpy())
    assert [v.path for v in body.trainable_variables] == [
        v.path for v in network.trainable_variables]
    assert not preprocess.trainable_variables


def image_batch(rng, batch=8, num_actions=6):
    s_tm1 = rng.integers(0, 256, (batch, 4, 84, 84)).astype(np.uint8)
    s_t = rng.integers(0, 256, (batch, 4, 84, 84)).astype(np.uint8)
    return (s_tm1, rng.integers(0, num_actions, batch).astype(np.int32),
            rng.normal(size=batch).astype(np.float32),
            rng.choice([0.0, 0.99 ** 10], batch).astype(np.float32), s_t,
            np.ones(batch, np.float32))


def twin_networks(seed=0):
    """Two online/target pairs with the same weights, and SGD optimizers."""
    pairs = []
    for name in ("a", "b"):
        keras.utils.set_random_seed(seed)
        online = networks.q_network(6, (4, 84, 84), dueling=True, name=f"{name}_online")
        target = networks.q_network(6, (4, 84, 84), dueling=True, name=f"{name}_target")
        target.set_weights([w * 0.5 for w in online.get_weights()])  # A stale target.
        pairs.append((online, target, keras.optimizers.SGD(0.01)))
    return pairs


def shift_numpy_states(states, offsets):
    """uint8 [B, H, 84, 84] states shifted as `augmentation.shift` shifts images."""
    images = np.transpose(states, (0, 2, 3, 1))
    out = np.stack([numpy_pad_and_crop(i, *o) for i, o in zip(images, offsets)])
    return np.ascontiguousarray(np.transpose(out, (0, 3, 1, 2)))


def test_update_shifts_s_tm1_then_s_t_with_independent_draws_and_nothing_else():
    """The shifted update equals a plain update fed states shifted in NumPy by the
    generator's draws, s_tm1's first: both states are shifted, each by its own offsets,
    and the update is otherwise the plain one."""
    batch = image_batch(np.random.default_rng(2))
    (online_a, target_a, opt_a), (online_b, target_b, opt_b) = twin_networks()
    spec = agent_lib.state_spec((4, 84, 84), np.uint8)
    shifted = agent_lib.build_update_fn(online_a, target_a, opt_a, spec, double_q=True,
                                        augment="shift",
                                        generator=tf.random.Generator.from_seed(9))
    plain = agent_lib.build_update_fn(online_b, target_b, opt_b, spec, double_q=True)
    replay_draws = tf.random.Generator.from_seed(9)
    offsets_tm1 = replay_draws.uniform([8, 2], -4, 5, dtype=tf.int32).numpy()
    offsets_t = replay_draws.uniform([8, 2], -4, 5, dtype=tf.int32).numpy()
    assert (offsets_tm1 != offsets_t).any()
    s_tm1, a_tm1, r_t, discount_t, s_t, weight_t = batch
    metrics_a, priorities_a = shifted(*batch)
    metrics_b, priorities_b = plain(shift_numpy_states(s_tm1, offsets_tm1), a_tm1, r_t,
                                    discount_t, shift_numpy_states(s_t, offsets_t), weight_t)
    np.testing.assert_allclose(metrics_a.numpy(), metrics_b.numpy(), rtol=1e-5)
    np.testing.assert_allclose(priorities_a.numpy(), priorities_b.numpy(), rtol=1e-5,
                               atol=1e-6)
    for a, b in zip(online_a.get_weights(), online_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Without the shift the same batch gives another loss: the test can tell.
    unshifted = plain(*batch)[0].numpy()
    assert not np.allclose(unshifted[0], metrics_a.numpy()[0], rtol=1e-3)


@pytest.mark.parametrize("augment", ["none", "shift_intensity"])
def test_target_is_online_gives_the_same_updates_as_a_target_synced_after_each(augment):
    """DrQ's target_update_period = 1: computing the target with the online network is
    the same, bit for bit, as a target network synced after every update."""
    (online_a, target_a, opt_a), (online_b, target_b, opt_b) = twin_networks()
    spec = agent_lib.state_spec((4, 84, 84), np.uint8)
    shared = agent_lib.build_update_fn(
        online_a, target_a, opt_a, spec, double_q=True, augment=augment,
        generator=tf.random.Generator.from_seed(4), target_is_online=True)
    synced = agent_lib.build_update_fn(
        online_b, target_b, opt_b, spec, double_q=True, augment=augment,
        generator=tf.random.Generator.from_seed(4))
    sync_b = agent_lib.build_sync_fn(online_b, target_b)
    sync_b()
    rng = np.random.default_rng(7)
    for _ in range(4):
        batch = image_batch(rng)
        metrics_a, priorities_a = shared(*batch)
        metrics_b, priorities_b = synced(*batch)
        sync_b()
        np.testing.assert_array_equal(metrics_a.numpy(), metrics_b.numpy())
        np.testing.assert_array_equal(priorities_a.numpy(), priorities_b.numpy())
    for a, b in zip(online_a.get_weights(), online_b.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_learner_shares_its_online_network_as_target_only_when_synced_every_update():
    from dqn_tf import replay

    def learner(period, train_every, streams):
        memory = replay.ReplayMemory(1_000, (1,), np.float32, history_length=1,
                                     num_envs=streams)
        return agent_lib.Learner(
            online_network=networks.mlp(2, (1,), (8,)), target_network=networks.mlp(2, (1,), (8,)),
            optimizer=keras.optimizers.SGD(0.01), replay=memory, batch_size=4,
            min_replay_size=10, train_every=train_every, target_update_period=period)

    shared = learner(1, 1, 1)
    assert shared.target_is_online
    assert learner(4, 4, 1).target_is_online
    assert not learner(2, 1, 1).target_is_online  # Two updates per sync.
    assert not learner(1, 1, 2).target_is_online  # Two transitions (updates) per lock-step.


def test_augmented_learner_checkpoints_its_generator_and_resumes_its_draws(tmp_path):
    from dqn_tf import replay

    def learner():
        keras.utils.set_random_seed(0)
        memory = replay.ReplayMemory(1_000, (84, 84), np.uint8, history_length=4)
        return agent_lib.Learner(
            online_network=networks.nature_cnn(6), target_network=networks.nature_cnn(6),
            optimizer=keras.optimizers.SGD(0.01), replay=memory, batch_size=4,
            min_replay_size=10, train_every=1, target_update_period=1,
            augment="shift", augment_seed=11)

    first = learner()
    assert "augment_generator" in first.trackables()
    first.augment_generator.normal([3])  # Draws before the checkpoint.
    checkpoint = tf.train.Checkpoint(**first.trackables())
    path = checkpoint.write(str(tmp_path / "ckpt"))
    expected = first.augment_generator.normal([3]).numpy()
    second = learner()
    tf.train.Checkpoint(**second.trackables()).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(second.augment_generator.normal([3]).numpy(), expected)


def test_a_target_no_update_reads_is_copied_only_before_a_checkpoint():
    from dqn_tf import replay
    memory = replay.ReplayMemory(1_000, (1,), np.float32, history_length=1)
    learner = agent_lib.Learner(
        online_network=networks.mlp(2, (1,), (8,)), target_network=networks.mlp(2, (1,), (8,)),
        optimizer=keras.optimizers.SGD(0.1), replay=memory, batch_size=4, min_replay_size=10,
        train_every=1, target_update_period=1)
    assert learner.target_is_online
    rng = np.random.default_rng(0)
    for _ in range(30):
        rows = run_loop.ReplayRows(rng.normal(size=(1, 1)).astype(np.float32),
                                   np.zeros(1, np.int32), np.ones(1, np.float32),
                                   np.zeros(1, bool), np.zeros(1, bool), np.ones(1, bool))
        learner.record(rows)
        learner.learn()
    assert learner.updates == 21 and learner.target_syncs == 30
    online, target = learner.online_network.get_weights(), learner.target_network.get_weights()
    assert any(not np.array_equal(o, t) for o, t in zip(online, target))
    learner.before_checkpoint()
    for o, t in zip(learner.online_network.get_weights(), learner.target_network.get_weights()):
        np.testing.assert_array_equal(o, t)


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
