"""Tests for dqn_tf.plot: grouping runs, the window means it prints, the PNG it draws."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dqn_tf import plot, results

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def fake_run(directory, seed, returns_by_frames, evaluations=(), env="ALE/Pong-v5"):
    """A run directory with a config and results files, as a training run leaves them."""
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"env": env, "seed": seed, "n_step": 3, "action_repeat": 4}, f)
    log = results.ResultsLog(directory, restart_step=-1)
    for frames, episode_return in returns_by_frames:
        log.train_game(frames // 4, frames, episode_return, 100)
    for frames, mean in evaluations:
        log.evaluation({"agent_steps": frames // 4, "frames": frames, "mean": mean,
                        "returns": [mean]})
    log.close()
    return directory


def test_runs_differing_only_in_seed_form_one_named_group(tmp_path):
    a = fake_run(str(tmp_path / "dqn_modern-Pong-0"), 0, [(1000, 1.0)])
    b = fake_run(str(tmp_path / "dqn_modern-Pong-1"), 1, [(1000, 3.0)])
    c = fake_run(str(tmp_path / "dopamine-Pong-0"), 0, [(1000, 2.0)])
    with open(os.path.join(c, "config.json"), "w") as f:
        json.dump({"env": "ALE/Pong-v5", "seed": 0, "n_step": 1, "action_repeat": 4}, f)
    groups = plot.group_runs([plot.load_run(d) for d in (a, b, c)])
    assert {k: sorted(r["seed"] for r in v) for k, v in groups.items()} == {
        ("Pong", "dqn_modern"): [0, 1], ("Pong", "dopamine"): [0]}


def test_a_run_older_than_a_flag_groups_with_new_runs_at_its_default(tmp_path):
    old = fake_run(str(tmp_path / "dqn_modern-Pong-0"), 0, [(1000, 1.0)])
    new = fake_run(str(tmp_path / "dqn_modern-Pong-1"), 1, [(1000, 3.0)])
    with open(os.path.join(new, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(new, "config.json"), "w") as f:
        json.dump(dict(config, head="plain"), f)  # Written by a dqn_tf that has --head.
    groups = plot.group_runs([plot.load_run(d) for d in (old, new)])
    assert [sorted(r["seed"] for r in v) for v in groups.values()] == [[0, 1]]


def test_groups_with_the_same_name_and_other_settings_are_both_kept(tmp_path):
    a = fake_run(str(tmp_path / "a" / "dqn_modern-Pong-0"), 0, [(1000, 1.0)])
    b = fake_run(str(tmp_path / "b" / "dqn_modern-Pong-0"), 0, [(1000, 3.0)])
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump({"env": "ALE/Pong-v5", "seed": 0, "n_step": 1, "action_repeat": 4}, f)
    groups = plot.group_runs([plot.load_run(d) for d in (a, b)])
    assert len(groups) == 2
    assert sorted(r["dir"] for v in groups.values() for r in v) == sorted([a, b])


def test_window_mean_and_bins():
    run = {"train": {"frames": [500, 1_500, 1_800, 2_500], "return": [1.0, 2.0, 4.0, 8.0]}}
    assert plot.window_mean(run, 1_000, 2_000) == (3.0, 2)
    bins = plot.binned_returns(run, 1_000, 3_000)
    np.testing.assert_allclose(bins, [1.0, 3.0, 8.0])


def test_bad_reference_is_a_clear_error():
    assert plot.parse_reference("Pong=Lapan:19.5") == ("Pong", "Lapan", 19.5, None, None)
    assert plot.parse_reference("MsPacman=DER:1187:0:400000") == (
        "MsPacman", "DER", 1187.0, 0.0, 400000.0)
    with pytest.raises(ValueError, match="GAME=LABEL:VALUE"):
        plot.parse_reference("Pong:19.5")


@pytest.mark.slow
def test_the_command_draws_a_png_and_prints_the_window_means(tmp_path):
    rng = np.random.default_rng(0)
    runs = [fake_run(str(tmp_path / f"modern-Pong-{seed}"), seed,
                     [(f, float(r)) for f, r in zip(range(10_000, 2_000_000, 10_000),
                                                    rng.normal(seed, 1, 199))],
                     evaluations=[(1_000_000, 5.0 + seed), (2_000_000, 9.0 + seed)])
            for seed in (0, 1)]
    out = str(tmp_path / "curves.png")
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.plot", *runs, f"--out={out}",
                           "--reference=Pong=Lapan:19.5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(out) > 20_000
    expected = []
    for run in runs:
        train = results.read_train_returns(run)
        expected.append(np.mean([r for f, r in zip(train["frames"], train["return"])
                                 if 1_000_000 < f <= 2_000_000]))
    assert f"seed 0: {expected[0]:8.1f}" in proc.stdout
    assert f"mean over 2 seeds: {np.mean(expected):.1f}" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.plot", str(tmp_path / "nothing")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a dqn_tf run directory" in proc.stderr


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
