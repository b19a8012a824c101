"""Trains DQN: `python -m dqn_tf.main --env=SpaceInvaders [--flagfile=flags/<preset>.cfg]`.

Flags -> Config (`dqn_tf.config`) -> `run.train`, and the run's outcome as one
JSON line and an exit code:

  0   training complete (--num_steps, or a --stop_at_* rule)
  2   bad input: a flag, the game, --output_dir (in use, another run), a checkpoint
  3   a non-finite loss or Q value (the last good checkpoint is kept)
  4   a checkpoint or SavedModel could not be written (the previous one is intact)
  5   a remote actor (--num_actors) raised, could not start or did not come back (checkpointed)
  75  stopped by a signal with a checkpoint (EX_TEMPFAIL): rerun to resume
  130 a second interrupt: exited at once, without a checkpoint
"""

import ctypes
import json
import os
import signal
import sys

from absl import app, flags, logging

from dqn_tf import config as config_lib
from dqn_tf import run_directory
from dqn_tf.errors import ActorFailure, OutputWriteError, UserInputError

EXIT_STOPPED_BY_SIGNAL = 75  # EX_TEMPFAIL: checkpointed; rerun the same command to resume.


def _die_with_parent_if_asked() -> None:
    """Under `dqn_tf.sweep` (DQN_TF_PARENT_PID set): SIGKILL this process when the Ray
    worker that started it dies, as it would with its node, so the run directory's lock
    is freed for the retry."""
    parent = os.environ.get("DQN_TF_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # It died before the request: go now.
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    _die_with_parent_if_asked()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF logs every SavedModel write at INFO.
    try:
        config = config_lib.from_flags()
        # A bad flag, or a run directory in use, unwritable or holding another config, is
        # refused before TensorFlow loads (in `import run`).
        lock = run_directory.claim(config)
        from dqn_tf import run
        result = run.train(config, lock)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:
        print(f"error: {error}; the last good checkpoint is kept in --output_dir",
              file=sys.stderr)
        sys.exit(3)
    except OutputWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(4)
    except ActorFailure as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(5)
    print(json.dumps(result))
    if result["stopped_by_signal"]:
        print(f"stopped by a signal at agent step {result['agent_steps']:,} of "
              f"{config.num_steps:,} with a checkpoint: rerun the same command to resume",
              file=sys.stderr)
        sys.exit(EXIT_STOPPED_BY_SIGNAL)


if __name__ == "__main__":
    app.run(main)
