"""Tests for dqn_tf.run_loop: event order (tape), episode statistics."""

import sys

import numpy as np
import pytest

from dqn_tf import atari_env, run_loop
from tests.fakes import ScriptedGame


def test_tape_of_reset_and_step_interleaving():
    game = ScriptedGame(lengths=(2,))
    env = atari_env.BatchedEnv([game])
    tape = []

    def actor(timestep):
        tape.append(("act", bool(timestep.first[0]), bool(timestep.last[0])))
        return np.array([len(tape) % 2])

    for i, _ in enumerate(run_loop.run_loop(actor, env)):
        if i == 5:
            break
    assert tape == [("act", True, False), ("act", False, False), ("act", False, True),
                    ("act", True, False), ("act", False, False), ("act", False, True)]
    # The action after the last step (tape[2]) is never sent to the game.
    assert [entry[0] for entry in game.log] == ["reset", "step", "step", "reset", "step",
                                                "step"]
    # Actions 1, 0 (game 1), [1 ignored], 0, 1 (game 2).
    assert [entry[1] for entry in game.log if entry[0] == "step"] == [1, 0, 0, 1]


def test_episode_tracker_reports_full_game_returns_per_env():
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(2,)), ScriptedGame(lengths=(3,))])
    tracker = run_loop.EpisodeTracker(2)
    episodes = []
    for i, (timestep, _) in enumerate(run_loop.run_loop(lambda ts: np.zeros(2, int), env)):
        episodes += tracker.observe(timestep)
        if i == 8:
            break
    assert [(e.env_index, e.episode_return, e.length) for e in episodes] == [
        (0, 2.0, 2), (1, 3.0, 3), (0, 2.0, 2), (1, 3.0, 3), (0, 2.0, 2)]


def test_run_episodes_counts_truncated_games():
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(4,), truncate=True)])
    actor = run_loop.EpsilonGreedyActor(lambda s: np.zeros(len(s), np.int32), num_actions=2,
                                        observation_shape=(1,), history_length=1,
                                        dtype=np.float32, seeds=[0])
    episodes = run_loop.run_episodes(actor, env, 0.0, num_episodes=3)
    assert [(e.episode_return, e.truncated) for e in episodes] == [(4.0, True)] * 3


def test_run_episodes_by_step_budget_finishes_the_last_game():
    # Games of 4, 6, 4, 6 ... agent steps: 4 + 6 = 10 < 12, the third game crosses it
    # and is played to its end (Dopamine's evaluation phase).
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(4, 6))])
    actor = run_loop.EpsilonGreedyActor(lambda s: np.zeros(len(s), np.int32), num_actions=2,
                                        observation_shape=(1,), history_length=1,
                                        dtype=np.float32, seeds=[0])
    episodes = run_loop.run_episodes(actor, env, 0.0, min_agent_steps=12)
    assert [e.length for e in episodes] == [4, 6, 4]


def test_run_episodes_with_several_envs_keeps_each_envs_first_games_not_the_shortest():
    # Env 0 plays games of 2 agent steps, env 1 of 9: 6 games are 3 of each, although
    # env 0 ends 6 games before env 1 ends its second.
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(2,)), ScriptedGame(lengths=(9,))])
    actor = run_loop.EpsilonGreedyActor(lambda s: np.zeros(len(s), np.int32), num_actions=2,
                                        observation_shape=(1,), history_length=1,
                                        dtype=np.float32, seeds=[0, 1])
    episodes = run_loop.run_episodes(actor, env, 0.0, num_episodes=6)
    assert sorted((e.env_index, e.length) for e in episodes) == [(0, 2)] * 3 + [(1, 9)] * 3
    assert list(run_loop.env_quotas(7, 3)) == [3, 2, 2]
    assert list(run_loop.env_quotas(2, 4)) == [1, 1, 0, 0]


def test_run_episodes_stops_when_asked():
    env = atari_env.BatchedEnv([ScriptedGame(lengths=(1000,))])
    actor = run_loop.EpsilonGreedyActor(lambda s: np.zeros(len(s), np.int32), num_actions=2,
                                        observation_shape=(1,), history_length=1,
                                        dtype=np.float32, seeds=[0])
    calls = []
    result = run_loop.run_episodes(actor, env, 0.0, num_episodes=1,
                                   should_stop=lambda: calls.append(1) or len(calls) >= 7)
    assert result is None and len(calls) == 7 and env.games[0].log[-1][0] == "step"


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
