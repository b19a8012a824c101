"""Tests for dqn_tf.protocols: the published settings and both score tables."""

import sys

import pytest

from dqn_tf import atari_env, protocols


def test_protocols_are_the_published_settings():
    nature = protocols.PROTOCOLS["nature"]
    # Mnih et al. (2015): epsilon 0.05, up to 30 no-ops, 5 minutes = 18,000 frames.
    assert (nature.epsilon, nature.noop_max, nature.max_frames_per_episode,
            nature.sticky_action_prob, nature.score_table) == (0.05, 30, 18_000, 0.0, "nature")
    machado = protocols.PROTOCOLS["machado"]
    assert (machado.noop_max, machado.max_frames_per_episode, machado.sticky_action_prob,
            machado.score_table) == (0, 108_000, 0.25, "atari57")
    dopamine = protocols.PROTOCOLS["dopamine"]  # Machado's env, Dopamine's epsilon_eval.
    assert dopamine == protocols.Protocol("dopamine", 0.001, 0, 108_000, 0.25, "atari57")


def test_tables_hold_the_published_scores():
    assert len(protocols.NATURE) == 49 and len(protocols.ATARI57) == 57
    assert set(protocols.NATURE) < set(protocols.ATARI57)
    # The check values: Atari-57 human scores differ from Nature's.
    assert protocols.ATARI57["SpaceInvaders"] == (148.0, 1668.7)
    assert protocols.ATARI57["Pong"] == (-20.7, 14.6)
    assert protocols.ATARI57["Seaquest"] == (68.4, 42054.7)
    assert protocols.NATURE["SpaceInvaders"] == (148.0, 1652.3)
    assert protocols.NATURE["Pong"] == (-20.7, 9.3)
    # Every random score is the same in both tables (the same random agent).
    assert all(protocols.ATARI57[g][0] == r for g, (r, _) in protocols.NATURE.items())


def test_every_table_game_is_an_ale_game():
    for game in protocols.ATARI57:
        assert protocols.game_name(atari_env.resolve_env_id(game)) == game


def test_human_normalised_names_its_table():
    score = protocols.human_normalised("ALE/Pong-v5", 14.6, "atari57")
    assert score["value"] == pytest.approx(1.0) and score["table"] == "atari57"
    score = protocols.human_normalised("ALE/Pong-v5", -20.7, "nature")
    assert score["value"] == pytest.approx(0.0) and "Extended Data Table 2" in score[
        "table_source"]
    assert protocols.human_normalised("ALE/Berzerk-v5", 100.0, "nature") is None
    assert protocols.human_normalised("CartPole-v1", 100.0, "atari57") is None


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
