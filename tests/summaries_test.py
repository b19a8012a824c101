"""Tests for dqn_tf.summaries: event files read back by TensorBoard's own reader."""

import glob
import os
import sys

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from dqn_tf.summaries import TensorBoardWriter, discard_events_after, read_scalars  # noqa: F401


def test_scalars_and_text_read_back(tmp_path):
    writer = TensorBoardWriter(str(tmp_path))
    writer.scalars(100, {"Train/AverageReturns": 1.5, "Loss/Huber": 0.25})
    writer.scalars(200, {"Train/AverageReturns": 2.5})
    writer.text("config", "|flag|value|")
    writer.close()
    scalars = read_scalars(tmp_path)
    assert scalars["Train/AverageReturns"] == [(100, 1.5), (200, 2.5)]
    assert scalars["Loss/Huber"] == [(100, 0.25)]
    assert "config" not in scalars and "config" in reader_tags(tmp_path)


def reader_tags(logdir):
    reader = event_accumulator.EventAccumulator(str(logdir))
    reader.Reload()
    return reader.Tags()["tensors"]


def raw_scalar_steps(logdir):
    """{tag: [step, ...]} over every event file, duplicates kept (no TensorBoard purging)."""
    steps = {}
    for path in sorted(glob.glob(os.path.join(str(logdir), "*tfevents*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
        except tf.errors.DataLossError:
            pass
    return steps


def test_discard_events_after_drops_what_a_killed_run_logged_past_its_checkpoint(tmp_path):
    first = TensorBoardWriter(str(tmp_path))
    for step in (100, 200, 300, 400):
        first.scalars(step, {"Train/AverageReturns": float(step)})
    first.close()
    killed_file = glob.glob(os.path.join(str(tmp_path), "*tfevents*"))[0]
    with open(killed_file, "ab") as f:
        f.write(b"\x10\x00\x00")  # A record cut short by SIGKILL.
    # The killed process started a minute before the resumed one. (Writers made in one
    # process within a second get names that TensorBoard may read in either order.)
    name = os.path.basename(killed_file).split(".")  # events.out.tfevents.<time>.<host>...
    name[3] = str(int(name[3]) - 60)
    os.replace(killed_file, os.path.join(str(tmp_path), ".".join(name)))
    assert discard_events_after(str(tmp_path), 200) == 2
    resumed = TensorBoardWriter(str(tmp_path))
    resumed.scalars(300, {"Train/AverageReturns": -3.0})
    resumed.close()
    assert sorted(raw_scalar_steps(tmp_path)["Train/AverageReturns"]) == [100, 200, 300]
    assert read_scalars(tmp_path)["Train/AverageReturns"][-1] == (300, -3.0)
    assert discard_events_after(str(tmp_path), 300) == 0  # Nothing to drop: no rewrite.


def test_discard_events_after_drops_rewritten_tags_at_the_restart_step(tmp_path):
    for _ in range(2):  # Two restarts from the checkpoint at step 200.
        discard_events_after(str(tmp_path), 200, rewritten_tags=("config",))
        resumed = TensorBoardWriter(str(tmp_path))
        resumed.text("config", "|flag|value|", step=200)
        resumed.scalars(200, {"Train/AverageReturns": 2.0})
        resumed.close()
    steps = raw_scalar_steps(tmp_path)
    assert steps["config"] == [200]
    assert steps["Train/AverageReturns"] == [200, 200]  # Only the rewritten tags are dropped.


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
