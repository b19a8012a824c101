"""Tests for dqn_tf.config: defaults, presets, validation messages."""

import sys

import dataclasses
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from dqn_tf import config as config_lib
from dqn_tf.errors import UserInputError

FLAGS_DIR = os.path.join(os.path.dirname(__file__), "..", "flags")


@pytest.fixture(autouse=True)
def parsed_flags():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])


def test_defaults_follow_nature_extended_data_table_1():
    c = config_lib.Config()
    assert (c.replay_capacity, c.batch_size, c.history_length, c.target_update_period,
            c.gamma, c.action_repeat, c.train_every, c.min_replay_size, c.epsilon_start,
            c.epsilon_end, c.epsilon_decay_steps, c.noop_max, c.eval_epsilon) == (
        1_000_000, 32, 4, 10_000, 0.99, 4, 4, 50_000, 1.0, 0.1, 1_000_000, 30, 0.05)
    assert (c.optimizer, c.sticky_action_prob) == ("rmsprop", 0.25)


@pytest.mark.parametrize("overrides,flag", [
    (dict(gamma=0.0), "gamma"), (dict(gamma=1.5), "gamma"), (dict(batch_size=-1), "batch_size"),
    (dict(epsilon_end=1.5), "epsilon_end"), (dict(history_length=0), "history_length"),
    (dict(action_repeat=0), "action_repeat"), (dict(replay_capacity=-5), "replay_capacity"),
    (dict(min_replay_size=2_000_000), "min_replay_size"),
    (dict(min_replay_size=10, batch_size=32), "batch_size"),
    (dict(eval_epsilon=-0.1), "eval_epsilon"), (dict(sticky_action_prob=2.0),
                                                "sticky_action_prob"),
    (dict(intra_op_threads=-1), "intra_op_threads"),
    (dict(actor_stall_seconds=0.0), "actor_stall_seconds")])
def test_validation_names_the_flag_in_one_line(overrides, flag):
    with pytest.raises(UserInputError) as error:
        config_lib.validate(dataclasses.replace(config_lib.Config(), **overrides))
    message = str(error.value)
    assert message.startswith(f"--{flag}=") and "\n" not in message


@pytest.mark.parametrize("preset", sorted(os.listdir(FLAGS_DIR)))
def test_every_preset_parses_and_validates(preset):
    with flagsaver.flagsaver():
        flags.FLAGS(["test", f"--flagfile={os.path.join(FLAGS_DIR, preset)}"])
        config = config_lib.from_flags()
    with open(os.path.join(FLAGS_DIR, preset)) as f:
        assert f.readline().startswith("#")  # Each preset is headed by its source.
    assert config.output_dir


def preset_config(preset):
    with flagsaver.flagsaver():
        flags.FLAGS(["test", f"--flagfile={os.path.join(FLAGS_DIR, preset)}"])
        return config_lib.from_flags()


def test_nature_preset_is_natures_optimizer_for_a_mean_loss():
    from dqn_tf import optimizers
    c = preset_config("dqn_nature.cfg")
    optimizer = optimizers.make_optimizer(c.optimizer, c.learning_rate, c.optimizer_epsilon,
                                          c.batch_size)
    # DQN Zoo dqn/run_atari.py: centred RMSProp, decay 0.95, eps 0.01 / 32**2, lr 2.5e-4.
    assert (optimizer.epsilon, optimizer.rho, optimizer.momentum, optimizer.centered) == (
        0.01 / 32**2, 0.95, 0.0, True)
    assert float(optimizer.learning_rate) == pytest.approx(2.5e-4)
    assert (c.loss, c.sticky_action_prob, c.noop_max, c.life_loss_terminal) == (
        "huber", 0.0, 30, True)
    assert (c.min_replay_size, c.target_update_period, c.train_every, c.epsilon_end,
            c.epsilon_decay_steps, c.num_steps) == (50_000, 10_000, 4, 0.1, 1_000_000,
                                                    12_500_000)
    assert (c.eval_every, c.eval_steps, c.eval_epsilon) == (250_000, 125_000, 0.05)


def test_dopamine_preset_is_dopamine_jax_dqn_gin():
    c = preset_config("dqn_dopamine.cfg")
    # dopamine/jax/agents/dqn/configs/dqn.gin and the Runner's defaults.
    assert (c.loss, c.optimizer, c.learning_rate, c.optimizer_epsilon) == (
        "mse", "adam", None, None)  # The adam preset: lr 6.25e-5, eps 1.5e-4.
    assert (c.min_replay_size, c.train_every, c.target_update_period, c.epsilon_end,
            c.epsilon_decay_steps) == (20_000, 4, 8_000, 0.01, 250_000)
    assert (c.eval_epsilon, c.eval_steps, c.eval_every) == (0.001, 125_000, 250_000)
    assert (c.sticky_action_prob, c.noop_max, c.life_loss_terminal,
            c.max_frames_per_episode) == (0.25, 0, False, 108_000)


def test_modern_preset_is_dopamine_quantile_gin_plus_double_q():
    c = preset_config("dqn_modern.cfg")
    # dopamine/jax/agents/quantile/configs/quantile.gin at google/dopamine@5873f54.
    assert (c.head, c.num_quantiles, c.n_step, c.loss, c.dueling, c.encoder) == (
        "quantile", 200, 3, "huber", False, "nature")
    assert (c.optimizer, c.learning_rate, c.optimizer_epsilon) == ("adam", 5e-5, 0.01 / 32)
    assert (c.min_replay_size, c.train_every, c.target_update_period, c.epsilon_end,
            c.epsilon_decay_steps, c.replay_capacity) == (20_000, 4, 8_000, 0.01, 250_000,
                                                          1_000_000)
    # Dopamine's prioritized replay: priority sqrt(loss + 1e-10), beta 0.5 (Rainbow's).
    assert (c.prioritized, c.priority_exponent, c.priority_epsilon,
            c.importance_exponent_start, c.importance_exponent_end) == (
        True, 0.5, 1e-10, 0.5, 0.5)
    assert (c.sticky_action_prob, c.noop_max, c.life_loss_terminal,
            c.max_frames_per_episode) == (0.25, 0, False, 108_000)
    assert c.double_q  # Ours (the preset's header lists it as a difference).


def test_atari100k_preset_is_dopamine_der_gin():
    c = preset_config("atari100k.cfg")
    # dopamine/labs/atari_100k/configs/DER.gin and atari_100k_runner.py at 5873f54.
    assert (c.num_steps, c.train_every, c.n_step, c.min_replay_size,
            c.target_update_period, c.batch_size, c.gamma) == (
        100_000, 1, 10, 1_600, 2_000, 32, 0.99)
    assert (c.optimizer, c.learning_rate, c.optimizer_epsilon) == ("adam", 1e-4, 1.5e-4)
    assert (c.dueling, c.double_q, c.prioritized, c.priority_exponent,
            c.importance_exponent_start, c.importance_exponent_end) == (
        True, True, True, 0.5, 0.5, 0.5)
    assert (c.sticky_action_prob, c.life_loss_terminal, c.epsilon_end,
            c.epsilon_decay_steps, c.eval_epsilon, c.noop_max) == (
        0.0, True, 0.01, 2_000, 0.001, 30)
    assert (c.head, c.num_quantiles) == ("quantile", 51)  # DER: C51's 51 atoms.


def test_drq_eps_preset_is_dopamine_drq_eps_gin():
    c = preset_config("drq_eps.cfg")
    # dopamine/labs/atari_100k/configs/DrQ_eps.gin, atari_100k_rainbow_agent.py and
    # atari_100k_runner.py at google/dopamine@5873f54.
    assert (c.num_steps, c.train_every, c.n_step, c.min_replay_size,
            c.target_update_period, c.batch_size, c.gamma) == (
        100_000, 1, 10, 1_600, 1, 32, 0.99)
    assert (c.optimizer, c.learning_rate, c.optimizer_epsilon, c.loss) == (
        "adam", 1e-4, 1.5e-4, "huber")
    assert (c.dueling, c.double_q, c.prioritized, c.head) == (True, True, False, "plain")
    assert c.augment == "shift_intensity"  # data_augmentation=True: drq_image_augmentation.
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps, c.eval_epsilon) == (
        1.0, 0.01, 5_000, 0.001)
    assert (c.sticky_action_prob, c.life_loss_terminal, c.noop_max, c.reward_clip,
            c.max_frames_per_episode) == (0.0, True, 30, 1.0, 108_000)
    # DataEfficientAtariRunner (num_eval_episodes=100) after training.
    assert (c.eval_every, c.eval_episodes, c.eval_steps) == (100_000, 100, 0)
    # Defaults the preset relies on: the Nature CNN (FullRainbowNetwork's layers), no
    # gradient clipping, 4 stacked frames of 4 repeats, one env (so the target is the
    # online network: `Learner.target_is_online`), a replay holding the whole run.
    assert (c.encoder, c.max_grad_norm, c.history_length, c.action_repeat, c.num_envs,
            c.fire_reset, c.epsilon_decay_from_start, c.replay_capacity) == (
        "nature", 0.0, 4, 4, 1, False, False, 100_000)


def test_pong_preset_is_lapans_chapter_6_dqn():
    c = preset_config("pong.cfg")
    # Chapter06/02_dqn_pong.py at PacktPublishing/Deep-Reinforcement-Learning-Hands-On@10cd897.
    assert (c.optimizer, c.learning_rate, c.optimizer_epsilon, c.loss) == (
        "adam", 1e-4, 1e-8, "mse")
    assert (c.batch_size, c.gamma, c.replay_capacity, c.min_replay_size, c.train_every,
            c.target_update_period, c.n_step) == (32, 0.99, 10_000, 10_000, 1, 1_000, 1)
    # epsilon = max(0.02, 1 - t / 100,000) from step 0: 0.02 at t = 98,000.
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_from_start) == (1.0, 0.02, True)
    assert c.epsilon_start - c.epsilon_decay_steps / 100_000 == pytest.approx(c.epsilon_end)
    assert (c.stop_at_train_return, c.sticky_action_prob, c.fire_reset, c.reward_clip,
            c.history_length, c.action_repeat) == (19.5, 0.0, True, 0, 4, 4)


def test_flag_choices_are_what_the_library_accepts():
    from dqn_tf import agent, augmentation, networks, optimizers
    assert tuple(config_lib.LOSSES) == agent.LOSSES
    assert tuple(config_lib.ENCODERS) == tuple(networks.ENCODERS)
    assert tuple(config_lib.AUGMENTATIONS) == augmentation.AUGMENTATIONS
    assert set(config_lib._OPTIMIZER_NAMES) == set(optimizers.PRESETS)


def test_from_flags_resolves_env_and_default_output_dir():
    with flagsaver.flagsaver(env="space_invaders", output_dir=""):
        config = config_lib.from_flags()
    assert config.env == "ALE/SpaceInvaders-v5"
    assert config.output_dir == os.path.join("runs", "SpaceInvaders")


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
