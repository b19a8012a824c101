"""TensorBoard output: scalars on an agent-step x-axis, and the run's flags as text.

Tags follow Dopamine's runner (`Train/AverageReturns`, `Eval/AverageReturns`,
`Train/AverageStepsPerSecond`) plus `Loss/Huber` and Q statistics.

A run that resumes from the checkpoint at step S calls `discard_events_after(S)`
first, so points a killed process logged after S are not plotted twice; a run that
starts with no checkpoint calls it with S = -1, which drops every point.
"""

import glob
import os

import tensorflow as tf


def _read_events(path: str) -> list:
    """The events of one file; a record cut short by a crash ends the list."""
    events = []
    try:
        for record in tf.data.TFRecordDataset(path):
            events.append(tf.compat.v1.Event.FromString(record.numpy()))
    except tf.errors.DataLossError:
        pass
    return events


def discard_events_after(logdir: str, step: int) -> int:
    """Rewrites the event files in `logdir` without events logged at x > `step`.

    Each affected file is rewritten beside itself and renamed over the original,
    so a crash here leaves either the old or the new file.

    Returns:
      The number of events dropped.
    """
    dropped = 0
    for path in sorted(glob.glob(os.path.join(logdir, "*tfevents*"))):
        events = _read_events(path)
        kept = [e for e in events if e.step <= step or e.HasField("file_version")]
        if len(kept) == len(events):
            continue
        dropped += len(events) - len(kept)
        temporary = os.path.join(logdir, ".discard-events.tmp")
        with tf.io.TFRecordWriter(temporary) as writer:
            for event in kept:
                writer.write(event.SerializeToString())
        os.replace(temporary, path)
    return dropped


class TensorBoardWriter:
    """Writes event files under `logdir`."""

    def __init__(self, logdir: str):
        self._writer = tf.summary.create_file_writer(logdir, max_queue=1000,
                                                     flush_millis=30_000)

    def scalars(self, step: int, values: dict) -> None:
        """Writes each {tag: float} at x = `step` agent steps."""
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        with self._writer.as_default(step=step):
            tf.summary.text(tag, markdown)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
