"""TensorBoard output: scalars on an agent-step x-axis, and the run's flags as text.

Tags follow Dopamine's runner (`Train/AverageReturns`, `Eval/AverageReturns`,
`Train/AverageStepsPerSecond`) plus `Loss/Huber` and Q statistics.
"""

import tensorflow as tf


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
