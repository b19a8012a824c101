"""Tests for dqn_tf.results: the files a run writes for plots, trimmed on resume."""

import os
import sys

import pytest

from dqn_tf import results


def test_results_round_trip_and_trim_to_the_restart_step(tmp_path):
    log = results.ResultsLog(str(tmp_path), restart_step=-1)
    for step in (10, 20, 30, 40):
        log.train_game(step, 4 * step, float(step) / 10, step)
    log.evaluation({"agent_steps": 20, "frames": 80, "returns": [1.0, 3.0], "mean": 2.0})
    log.evaluation({"agent_steps": 40, "frames": 160, "returns": [5.0], "mean": 5.0})
    log.close()
    with open(tmp_path / results.TRAIN_RETURNS, "a") as f:
        f.write("5")  # A line a killed process cut short.
    train = results.read_train_returns(str(tmp_path))
    assert train["agent_steps"] == [10, 20, 30, 40]  # The cut line is skipped.
    # Resumed from the checkpoint at step 25: what was logged past it is played again.
    log = results.ResultsLog(str(tmp_path), restart_step=25)
    log.train_game(30, 120, 9.0, 30)
    log.close()
    train = results.read_train_returns(str(tmp_path))
    assert train["agent_steps"] == [10, 20, 30] and train["return"] == [1.0, 2.0, 9.0]
    assert [r["agent_steps"] for r in results.read_evaluations(str(tmp_path))] == [20]
    # A new run (no checkpoint) drops everything an earlier process wrote.
    results.ResultsLog(str(tmp_path), restart_step=-1).close()
    assert results.read_train_returns(str(tmp_path))["agent_steps"] == []
    assert results.read_evaluations(str(tmp_path)) == []
    with open(tmp_path / results.TRAIN_RETURNS) as f:
        assert f.read() == "agent_steps,frames,return,length\n"


def test_reading_a_run_without_results_gives_nothing(tmp_path):
    assert results.read_train_returns(str(tmp_path))["return"] == []
    assert results.read_evaluations(str(tmp_path)) == []
    assert not os.listdir(tmp_path)


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
