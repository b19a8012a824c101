"""TensorBoard output: scalars on an agent-step x-axis, and the run's flags as text.

Tags follow Dopamine's runner (`Train/AverageReturns`, `Eval/AverageReturns`,
`Train/AverageStepsPerSecond`) plus the loss (`Loss/Huber` or `Loss/MSE`, as `--loss`
says) and Q statistics.

A run that resumes from the checkpoint at step S calls `discard_events_after(S)`
first, so points a killed process logged after S are not plotted twice (nor the
config text it wrote at S); a run that starts with no checkpoint calls it with
S = -1, which drops every point.
"""

import glob
import os

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
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


def discard_events_after(logdir: str, step: int, rewritten_tags: tuple = ()) -> int:
    """Rewrites the event files in `logdir` without events logged at x > `step`.

    Each affected file is rewritten beside itself and renamed over the original,
    so a crash here leaves either the old or the new file.

    Args:
      logdir: the directory of the event files.
      step: the agent step the run restarts from; -1 drops every point.
      rewritten_tags: tags the restarted run writes again at x = `step` (the config
        text), also dropped there, so two restarts from one checkpoint leave one copy.

    Returns:
      The number of events dropped.
    """
    def keep(event):
        if event.HasField("file_version") or event.step < step:
            return True
        return event.step == step and not any(value.tag in rewritten_tags
                                              for value in event.summary.value)

    dropped = 0
    for path in sorted(glob.glob(os.path.join(logdir, "*tfevents*"))):
        events = _read_events(path)
        kept = [e for e in events if keep(e)]
        if len(kept) == len(events):
            continue
        dropped += len(events) - len(kept)
        temporary = os.path.join(logdir, ".discard-events.tmp")
        with tf.io.TFRecordWriter(temporary) as writer:
            for event in kept:
                writer.write(event.SerializeToString())
        os.replace(temporary, path)
    return dropped


def read_scalars(logdir: str) -> dict:
    """{tag: [(step, value)]} of the scalars in `logdir`, read by TensorBoard's own reader
    (TF2 writes scalars as tensors)."""
    from tensorboard.backend.event_processing import event_accumulator
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    reader.Reload()
    scalars = {}
    for tag in reader.Tags()["tensors"]:
        values = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in reader.Tensors(tag)]
        if all(v.dtype.kind == "f" for _, v in values):  # Skip text summaries.
            scalars[tag] = [(step, float(v)) for step, v in values]
    return scalars


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
