"""TF's thread pools for this machine, chosen before TF runs its first op.

Both commands call `set_tf_threads` first thing: the trainer (`dqn_tf.main`) and
the evaluation command (`dqn_tf.evaluate`), which imports no trainer code.
"""

import os

from absl import logging
from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import tensorflow as tf


def set_tf_threads(intra_op_threads: int, jit_compile: bool) -> int:
    """Sizes TF's intra-op pool (the threads that split one op) before TF starts.

    0 picks: 1 thread on a machine with at most 2 cores, where splitting a batch-1
    greedy action or a batch-32 update costs more in hand-offs than it gains
    (TF's inter-op pool still runs independent ops side by side), unless the update
    is XLA-compiled (XLA parallelises only through this pool) or TF_NUM_INTRAOP_THREADS
    is set; else TF's default (one per core). A process whose TF has already run an
    op keeps its pool, with a warning.

    Args:
      intra_op_threads: the --intra_op_threads flag; >= 0.
      jit_compile: whether the process will run an XLA-compiled update (False for
        acting only: XLA acting is fastest on one thread too).

    Returns:
      The pool size in effect; 0 means TF's default.
    """
    if intra_op_threads == 0:
        if (jit_compile or "TF_NUM_INTRAOP_THREADS" in os.environ
                or len(os.sched_getaffinity(0)) > 2):
            return tf.config.threading.get_intra_op_parallelism_threads()
        intra_op_threads = 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    except RuntimeError:
        logging.warning("TF already runs in this process with %d intra-op threads; "
                        "--intra_op_threads=%d applies only to a new process",
                        tf.config.threading.get_intra_op_parallelism_threads(),
                        intra_op_threads)
    return tf.config.threading.get_intra_op_parallelism_threads()
