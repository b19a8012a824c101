"""--num_envs: N envs in lockstep fill the replay exactly as N single-env runs would.

Also: ale-py's C++ vector env yields the very frames of the gymnasium pipeline.
"""

import dataclasses
import sys

import numpy as np
import pytest

from dqn_tf import atari_env, run_loop, seeding
from dqn_tf import config as config_lib
from dqn_tf import training


@pytest.mark.parametrize("game,fire_reset", [("SpaceInvaders", False),
                                              ("SpaceInvaders", True), ("Pong", True)])
def test_ale_vector_env_frames_equal_the_gymnasium_pipeline(game, fire_reset):
    # No-ops and sticky actions off: the two backends then share every random draw. With
    # FIRE on, the evaluator (gymnasium) must start games as training (ale_vector) does:
    # a Pong policy trained on one start scored 19.4 there and 8.1 on the other.
    kwargs = dict(seeds=[0, 1], sticky_action_prob=0.0, noop_max=0, fire_reset=fire_reset,
                  max_frames_per_episode=2000)
    python_env = atari_env.make_env(game, backend="gymnasium", **kwargs)
    vector_env = atari_env.make_env(game, backend="ale_vector", **kwargs)
    assert vector_env.action_meanings == python_env.action_meanings
    expected, got = python_env.reset(), vector_env.reset()
    rng, events = np.random.default_rng(0), np.zeros(4, int)
    for _ in range(1200):
        for field in expected._fields:
            want, have = getattr(expected, field), getattr(got, field)
            if field == "observation":  # A game cut by the frame cap may end one raw
                # frame apart (ALE counts the FIRE frame in its cap, ale-py agent steps).
                want, have = want[~expected.truncated], have[~expected.truncated]
            np.testing.assert_array_equal(have, want, field)
        events += [expected.first.sum(), expected.truncated.sum(), expected.terminated.sum(),
                   expected.life_lost.sum()]
        actions = rng.integers(0, python_env.num_actions, 2)
        expected, got = python_env.step(actions), vector_env.step(actions)
    # Resets, time limits, game overs and lost lives seen (Pong has no lives).
    seen = events if game != "Pong" else events[:2]  # No lives, no game over this soon.
    assert (seen > 0).all(), events


@pytest.mark.parametrize("fire_reset", [False, True])
def test_both_backends_start_games_after_the_same_numbers_of_raw_frames(fire_reset):
    # With no-ops on, the backends draw from different streams: compare what can be drawn.
    kwargs = dict(sticky_action_prob=0.0, noop_max=30, fire_reset=fire_reset,
                  max_frames_per_episode=2000)
    python_env = atari_env.make_env("Pong", seeds=[0], backend="gymnasium", **kwargs)
    vector_env = atari_env.make_env("Pong", seeds=[0], backend="ale_vector", **kwargs)
    python_starts, vector_starts = set(), set()
    for _ in range(400):  # Seeded once: later resets go on along each stream (no ROM reload).
        python_env.reset()
        python_starts.add(python_env.games[0]._env.unwrapped.ale.getEpisodeFrameNumber())
        _, info = vector_env._env.reset()
        vector_starts.add(int(info["episode_frame_number"][0]))
    python_env.close()
    vector_env.close()
    expected = set(range(1 if fire_reset else 0, 30))  # ale-py: 0..29 frames, FIRE last.
    assert python_starts == expected and vector_starts == expected


def fill_replay(config, seed, env_indices, vector_steps):
    """Runs envs `env_indices` of run `seed` in lockstep, with their own env and actor
    streams, exploring at random (no learning); returns the replay."""
    num_envs = len(env_indices)
    config = dataclasses.replace(config, num_envs=num_envs, seed=seed,
                                 replay_capacity=num_envs * 2000, min_replay_size=100_000)
    env = training.build_env(config, [seeding.int_seed(seed, "env", i) for i in env_indices])
    agent = training.build_agent(config, env)
    agent.actor.rngs = [seeding.generator(seed, "actor", i) for i in env_indices]
    loop = run_loop.run_loop(agent.step, env, agent.learn)
    for _ in range(vector_steps + 1):
        next(loop)
    env.close()
    assert agent.updates == 0 and agent.epsilon == 1.0
    return agent.replay


CASES = {
    "atari_ale_vector": dict(env="ALE/SpaceInvaders-v5", env_backend="ale_vector",
                             max_frames_per_episode=600),
    "atari_gymnasium": dict(env="ALE/SpaceInvaders-v5", env_backend="gymnasium",
                            max_frames_per_episode=1200),  # Long enough to lose a life.
    "cartpole": dict(env="CartPole-v1", history_length=1, noop_max=0, mlp_hidden_sizes=(8,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_vectorised_run_stores_what_single_env_runs_with_the_same_seeds_store(case):
    config = dataclasses.replace(config_lib.Config(), **CASES[case])
    num_envs, seed, steps = 3, 11, 400
    batched = fill_replay(config, seed, range(num_envs), steps)
    assert batched.terminal.any() and batched.episode_end.any()  # Boundaries were crossed.
    for i in range(num_envs):
        single = fill_replay(config, seed, [i], steps)
        assert batched.num_added[i] == single.num_added[0]
        n = int(single.num_added[0])
        for name in ("frames", "action", "reward", "terminal", "episode_end"):
            np.testing.assert_array_equal(getattr(batched, name)[i, :n],
                                          getattr(single, name)[0, :n], f"env {i}: {name}")


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
