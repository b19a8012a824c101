"""Tests for dqn_tf.threads: TF's pool is sized before TF starts, and kept after."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.mark.slow
def test_intra_op_threads_are_set_before_tf_starts_and_kept_after():
    """In fresh processes: TF's pool size can only be chosen before its first op."""
    probe = ("import sys, tensorflow as tf; from dqn_tf import threads; "
             "print(threads.set_tf_threads(int(sys.argv[1]), sys.argv[2] == 'xla')); "
             "tf.constant(1.0) + 1.0; print(threads.set_tf_threads(3, False), "
             "tf.config.threading.get_intra_op_parallelism_threads())")
    small_machine = len(os.sched_getaffinity(0)) <= 2
    for requested, update, first in [(0, "graph", 1 if small_machine else 0), (0, "xla", 0),
                                     (2, "graph", 2)]:
        proc = subprocess.run([sys.executable, "-c", probe, str(requested), update], cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items()
                                   if k != "TF_NUM_INTRAOP_THREADS"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        # After the first op, asking for 3 threads changes nothing and says so.
        assert proc.stdout.split() == [str(first), str(first), str(first)], proc.stdout
        assert "--intra_op_threads=3 applies only to a new process" in proc.stderr


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
