"""The run directory itself, before any checkpoint: who may write it, and with which config.

Kept free of TensorFlow, so that `dqn_tf.main` refuses a run directory that is in use,
unwritable or holds another config in a fraction of a second, before TensorFlow loads.
`dqn_tf.checkpointing` holds the checkpoints inside it.
"""

import fcntl
import json
import logging
import os
import shutil

from dqn_tf import config as config_lib
from dqn_tf import replay_store
from dqn_tf.errors import UserInputError


def write_json(path: str, value) -> None:
    """Writes `value` as JSON to `path` and fsyncs it."""
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


class RunLock:
    """An exclusive OS lock on `<output_dir>/.lock`, held while a process writes the run.

    It is an flock: the kernel releases it when its holder exits in any way, kill -9
    included, so a lock is never stale. The file holds the holder's pid, for the
    message a second process gets.
    """

    def __init__(self, output_dir: str):
        """Takes the lock.

        Raises:
          UserInputError: another process holds it.
        """
        self.path = os.path.join(output_dir, ".lock")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise UserInputError(f"--output_dir={output_dir} is in use by another dqn_tf "
                                 f"process (pid {holder}); wait for it to stop, or choose "
                                 "another --output_dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # Closing the descriptor drops the flock.
            self._fd = None


def prepare_run_directory(output_dir: str, learning_config: dict, overwrite: bool,
                          complete=lambda recorded: recorded) -> RunLock:
    """Creates and locks `output_dir`, and checks that the run in it was made with this
    config. The caller releases the returned lock when it is done with the run.
    `complete(recorded)` fills in what an older run's config.json lacks.

    Raises:
      UserInputError: unwritable directory, a directory another process is using, or
        a run with a different config and no --overwrite.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise UserInputError(f"--output_dir={output_dir} is not writable ({error.strerror}); "
                             "choose another --output_dir") from None
    lock = RunLock(output_dir)  # Before anything in the run is read or changed.
    try:
        _check_or_write_config(output_dir, learning_config, overwrite, complete)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_or_write_config(output_dir: str, learning_config: dict, overwrite: bool,
                           complete) -> None:
    learning_config = json.loads(json.dumps(learning_config))  # Tuples -> lists, as on disk.
    path = os.path.join(output_dir, "config.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = {"<config.json>": "unreadable"}
        else:
            previous = complete(previous)
        differ = sorted(k for k in set(previous) | set(learning_config)
                        if previous.get(k) != learning_config.get(k))
        if differ and not overwrite:
            shown = ", ".join(f"{k}: {previous.get(k)!r} -> {learning_config.get(k)!r}"
                              for k in differ[:3])
            raise UserInputError(f"--output_dir={output_dir} holds a run with a different config "
                                 f"({shown}); use another --output_dir, or --overwrite to "
                                 "delete that run")
        if differ:
            logging.warning("--overwrite: deleting the run in %s", output_dir)
            for name in ("checkpoints", "tensorboard", "saved_model", "config.json",
                         "train_returns.csv", "evaluations.jsonl", "progress.json"):
                target = os.path.join(output_dir, name)
                if os.path.isdir(target):
                    shutil.rmtree(target)
                elif os.path.exists(target):
                    os.remove(target)
    tmp = path + ".tmp"
    write_json(tmp, learning_config)
    os.replace(tmp, path)
    replay_store.fsync_directory(output_dir)


def claim(config: config_lib.Config) -> RunLock:
    """`prepare_run_directory` for a training run of `config`."""
    return prepare_run_directory(config.output_dir, config.learning_fields(), config.overwrite,
                                 config_lib.with_defaults)
