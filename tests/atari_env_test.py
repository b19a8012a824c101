"""Tests for dqn_tf.atari_env: preprocessing order, signals, name resolution, real ALE."""

import sys

import hashlib

import numpy as np
import pytest

from dqn_tf import atari_env
from dqn_tf.errors import UserInputError
from tests.fakes import FakeAleEnv


def make_game(fake, **overrides):
    kwargs = dict(sticky_action_prob=0.0, noop_max=0, action_repeat=4, fire_reset=False,
                  max_frames_per_episode=108_000, seed=0)
    kwargs.update(overrides)
    return atari_env.AtariGame("fake", env=fake, **kwargs)


def test_action_repeat_sums_raw_rewards_and_holds_the_action():
    fake = FakeAleEnv(reward=lambda k: float(k))  # Raw frame k gives reward k.
    game = make_game(fake)
    game.reset()
    _, reward, terminated, truncated, life_lost = game.step(2)
    assert reward == 1 + 2 + 3 + 4  # Raw and unclipped: clipping is the learner's job.
    assert fake.actions == [2, 2, 2, 2]
    assert not (terminated or truncated or life_lost)


def test_frame_is_max_of_last_two_raw_frames_then_resized():
    # Screens alternate 10, 200, 30, 40: the max-pool of frames 3 and 4 is 40, and
    # a constant screen survives the INTER_AREA resize unchanged.
    values = {1: 10, 2: 200, 3: 30, 4: 40}
    fake = FakeAleEnv(screen=lambda k: values.get(k, 0))
    game = make_game(fake)
    game.reset()
    frame, *_ = game.step(0)
    assert frame.shape == (84, 84) and frame.dtype == np.uint8
    assert (frame == 40).all()


def test_life_loss_is_reported_and_game_continues():
    fake = FakeAleEnv(life_loss_frames=(6,))
    game = make_game(fake)
    game.reset()
    assert game.step(0)[4] is False  # Frames 1-4.
    _, _, terminated, truncated, life_lost = game.step(0)  # Frames 5-8.
    assert life_lost and not terminated and not truncated
    assert game.step(0)[4] is False  # Frames 9-12: the game went on.


def test_game_over_stops_the_repeat_early_and_is_terminal():
    fake = FakeAleEnv(game_over_frame=6)
    game = make_game(fake)
    game.reset()
    game.step(0)
    _, reward, terminated, truncated, _ = game.step(0)
    assert terminated and not truncated
    assert reward == 2.0  # Frames 5 and 6 only.
    assert len(fake.actions) == 6


def test_time_limit_is_truncation_not_terminal():
    fake = FakeAleEnv(truncate_frame=8)
    game = make_game(fake)
    game.reset()
    game.step(0)
    _, _, terminated, truncated, _ = game.step(0)
    assert truncated and not terminated


def test_noop_starts_take_zero_to_noop_max_minus_one_noops_and_drop_rewards():
    counts = set()
    for seed in range(40):
        fake = FakeAleEnv()
        game = make_game(fake, noop_max=5, seed=seed)
        game.reset()
        counts.add(len(fake.actions))
        assert set(fake.actions) <= {0}
        _, reward, *_ = game.step(1)
        assert reward == 4.0  # No-op rewards are not added to the first step.
    assert counts == set(range(0, 5))  # ale-py's AtariVectorEnv rule.


def test_fire_reset_presses_fire_for_one_raw_frame_and_shows_it():
    fake = FakeAleEnv(screen=lambda k: 10 * k + 1)
    game = make_game(fake, fire_reset=True)
    frame = game.reset()
    assert fake.actions == [1]
    assert (frame == 11).all()  # The screen after the FIRE frame, not the reset's.


def test_fire_reset_takes_the_place_of_the_last_noop():
    starts = set()
    for seed in range(40):
        fake = FakeAleEnv()
        make_game(fake, noop_max=5, fire_reset=True, seed=seed).reset()
        assert fake.actions[-1] == 1 and set(fake.actions[:-1]) <= {0}
        starts.add(len(fake.actions))
    assert starts == {1, 2, 3, 4}  # max(n - 1, 0) no-ops for n in 0..4, then FIRE.


def test_batched_env_autoresets_on_the_next_step():
    fake = FakeAleEnv(game_over_frame=8)
    env = atari_env.BatchedEnv([make_game(fake)])
    ts = env.reset()
    assert ts.first.tolist() == [True] and ts.observation.shape == (1, 84, 84)
    ts = env.step(np.array([0]))
    ts = env.step(np.array([0]))
    assert ts.terminated.tolist() == [True] and ts.last.tolist() == [True]
    ts = env.step(np.array([3]))  # Action ignored: the game restarts.
    assert ts.first.tolist() == [True] and ts.reward.tolist() == [0.0]
    assert fake.resets == 2 and fake.actions.count(3) == 0


@pytest.mark.parametrize("name,expected", [
    ("SpaceInvaders", "ALE/SpaceInvaders-v5"), ("space_invaders", "ALE/SpaceInvaders-v5"),
    ("pong", "ALE/Pong-v5"), ("ALE/Pong-v5", "ALE/Pong-v5"), ("CartPole-v1", "CartPole-v1"),
    ("MsPacman", "ALE/MsPacman-v5"), ("ms-pacman", "ALE/MsPacman-v5")])
def test_resolve_env_id(name, expected):
    assert atari_env.resolve_env_id(name) == expected


def test_unknown_name_is_one_line_error_with_suggestions():
    with pytest.raises(UserInputError) as error:
        atari_env.resolve_env_id("SpaceInvader")
    message = str(error.value)
    assert "\n" not in message and "SpaceInvader" in message and "SpaceInvaders" in message


def test_every_ale_game_resolves_by_short_name():
    ids = atari_env._atari_game_ids()
    assert len(ids) >= 100
    for env_id in ids.values():
        assert atari_env.resolve_env_id(env_id.split("/")[1][:-3]) == env_id


def test_vector_env_passes_through_untouched():
    env = atari_env.make_env("CartPole-v1", seeds=[3])
    ts = env.reset()
    assert ts.observation.shape == (1, 4) and ts.observation.dtype == np.float32
    import gymnasium as gym
    raw = gym.make("CartPole-v1")
    expected, _ = raw.reset(seed=3)
    np.testing.assert_array_equal(ts.observation[0], expected)


def _first_frames(env_id, seed, steps=30):
    env = atari_env.make_env(env_id, seeds=[seed], sticky_action_prob=0.25, noop_max=30)
    frames = [env.reset().observation[0]]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        frames.append(env.step(rng.integers(env.num_actions, size=1)).observation[0])
    env.close()
    return np.stack(frames)


# sha256 of the first 31 processed frames with seed 0, sticky 0.25, noop_max 30 and
# seeded random actions. A change here means the preprocessing changed: scores
# are not comparable across such a change (dqn_zoo notes resize alone moves them).
# Changed 2026-11-22: game starts follow ale-py's vector env (0..29 no-op frames).
GOLDEN = {
    "ALE/SpaceInvaders-v5": "ed6c2c24ba62d54cbc299c9b102e231eca614ca28fe364a6f697624e26886237",
    "ALE/Pong-v5": "9bb7a28f8a3acfae98226bd75fe7511731a92969a14f252e950fc2c9ebf63396",
}


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(GOLDEN))
def test_real_ale_frames_are_deterministic_and_match_golden_hash(env_id):
    frames = _first_frames(env_id, seed=0)
    assert frames.shape == (31, 84, 84) and frames.dtype == np.uint8
    assert frames.std() > 0  # Not a blank screen.
    np.testing.assert_array_equal(frames, _first_frames(env_id, seed=0))
    assert not np.array_equal(frames, _first_frames(env_id, seed=1))
    assert hashlib.sha256(frames.tobytes()).hexdigest() == GOLDEN[env_id]


@pytest.mark.slow
def test_real_space_invaders_game_runs_to_the_end_with_raw_returns_and_lives():
    env = atari_env.make_env("SpaceInvaders", seeds=[0], sticky_action_prob=0.25)
    ts = env.reset()
    total, lives_lost, rng = 0.0, 0, np.random.default_rng(0)
    while not ts.last[0]:
        ts = env.step(rng.integers(env.num_actions, size=1))
        total += ts.reward[0]
        lives_lost += int(ts.life_lost[0])
    assert ts.terminated[0] and not ts.truncated[0]
    assert lives_lost == 3  # SpaceInvaders starts with 3 lives.
    assert total > 0 and total % 5 == 0  # Raw Space Invaders points, not clipped.


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
