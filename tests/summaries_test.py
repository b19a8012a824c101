"""Tests for dqn_tf.summaries: event files read back by TensorBoard's own reader."""

import sys

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from dqn_tf.summaries import TensorBoardWriter


def read_scalars(logdir):
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    reader.Reload()
    scalars = {}
    for tag in reader.Tags()["tensors"]:
        values = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in reader.Tensors(tag)]
        if all(v.dtype.kind == "f" for _, v in values):  # Skip text summaries.
            scalars[tag] = [(step, float(v)) for step, v in values]
    return scalars


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


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider"]))
