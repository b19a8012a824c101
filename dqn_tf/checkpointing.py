"""Resumable run state on disk: checkpoints that are complete or ignored.

Layout of a run directory::

    <output_dir>/config.json                 the learning config that made the run
    <output_dir>/checkpoints/ckpt-<step>/    one per checkpoint, newest `keep` kept
        tf/                                  tf.train.Checkpoint: both networks, optimizer slots
        state.json                           agent counters, RNG states, run bookkeeping
        replay/                              replay memory .npy files (--checkpoint_replay)
        MANIFEST.json                        size and CRC-32 of every file
        COMPLETE                             written last

A checkpoint is written under `ckpt-<step>.partial-<pid>/` and renamed into place
only after COMPLETE is on disk, so a crash at any moment leaves either the
complete checkpoint or a `.partial` directory that is never read (and is swept
at the next start). Older checkpoints are deleted only after a newer one is
complete. Nothing is pickled: TF's own format, JSON and `.npy`.
"""

import glob
import json
import logging
import os
import shutil
import zlib

import tensorflow as tf

from dqn_tf.errors import UserInputError

_PREFIX = "ckpt-"


def _write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _crc32(path: str) -> int:
    """CRC-32 of a file's bytes (about 6 GB/s: a 7 GB replay checks in seconds)."""
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _manifest(directory: str) -> dict:
    entries = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            entries[os.path.relpath(path, directory)] = {
                "size": os.path.getsize(path), "crc32": _crc32(path)}
    return entries


def _verify(directory: str) -> str | None:
    """Returns None if every file matches MANIFEST.json, else what is wrong."""
    try:
        with open(os.path.join(directory, "MANIFEST.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        return f"unreadable MANIFEST.json ({error})"
    for relative, entry in manifest.items():
        path = os.path.join(directory, relative)
        if not os.path.exists(path):
            return f"{relative} is missing"
        if os.path.getsize(path) != entry["size"]:
            return f"{relative} has {os.path.getsize(path)} bytes, expected {entry['size']}"
        if _crc32(path) != entry["crc32"]:
            return f"{relative} is corrupt (checksum mismatch)"
    return None


def prepare_run_directory(output_dir: str, learning_config: dict, overwrite: bool) -> None:
    """Creates `output_dir` or checks that the run in it was made with this config.

    Raises:
      UserInputError: unwritable directory, or a run with a different config and
        no --overwrite.
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
    learning_config = json.loads(json.dumps(learning_config))  # Tuples -> lists, as on disk.
    path = os.path.join(output_dir, "config.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = {"<config.json>": "unreadable"}
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
            for name in ("checkpoints", "tensorboard", "saved_model", "config.json"):
                target = os.path.join(output_dir, name)
                if os.path.isdir(target):
                    shutil.rmtree(target)
                elif os.path.exists(target):
                    os.remove(target)
    tmp = path + ".tmp"
    _write_json(tmp, learning_config)
    os.replace(tmp, path)


class Checkpointer:
    """Writes and restores complete checkpoints of TF objects, JSON state and replay."""

    def __init__(self, directory: str, trackables: dict, keep: int = 4):
        """Args:
          directory: where the `ckpt-<step>` directories live.
          trackables: TF objects for `tf.train.Checkpoint` (networks, optimizer).
          keep: newest complete checkpoints to keep.
        """
        self.directory = directory
        self._checkpoint = tf.train.Checkpoint(**trackables)
        self._keep = keep
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.partial-*")):
            shutil.rmtree(stale, ignore_errors=True)

    def complete_checkpoints(self) -> list:
        """Paths of complete checkpoints, oldest first."""
        paths = []
        for path in glob.glob(os.path.join(self.directory, _PREFIX + "*")):
            name = os.path.basename(path)
            if name[len(_PREFIX):].isdigit() and os.path.exists(os.path.join(path, "COMPLETE")):
                paths.append(path)
        return sorted(paths, key=lambda p: int(os.path.basename(p)[len(_PREFIX):]))

    def save(self, step: int, state: dict, replay=None) -> str:
        """Writes checkpoint `step`; returns its path.

        Args:
          step: agent steps so far (names the checkpoint).
          state: JSON-serialisable state (counters, RNG states, bookkeeping).
          replay: a `ReplayMemory` to save beside it, or None.

        Raises:
          OSError: the write failed; the previous checkpoints are untouched.
        """
        final = os.path.join(self.directory, f"{_PREFIX}{step:012d}")
        partial = f"{final}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.makedirs(partial)
            self._checkpoint.write(os.path.join(partial, "tf", "ckpt"))
            _write_json(os.path.join(partial, "state.json"), state)
            if replay is not None:
                replay.save(os.path.join(partial, "replay"))
            _write_json(os.path.join(partial, "MANIFEST.json"), _manifest(partial))
            _write_json(os.path.join(partial, "COMPLETE"), {"step": step})
            if os.path.exists(final):  # Same step saved before a crash: replace it.
                shutil.rmtree(final)
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        for old in self.complete_checkpoints()[:-self._keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def restore_latest(self, replay=None, check_state=None) -> tuple:
        """Restores the newest checkpoint that verifies and loads.

        A checkpoint that fails verification is skipped with a warning, and the
        next older one is tried.

        Args:
          replay: a `ReplayMemory` to fill from the checkpoint's replay, or None.
          check_state: called with the state dict before anything is restored;
            raises `UserInputError` when the checkpoint belongs to another run
            (another game or config).

        Returns:
          (path, state dict), or (None, None) when there is no checkpoint.

        Raises:
          UserInputError: checkpoints exist but none can be restored.
        """
        candidates = self.complete_checkpoints()
        problems = []
        for path in reversed(candidates):
            try:
                return path, self._restore(path, replay, check_state)
            except (UserInputError, ValueError, tf.errors.OpError, OSError) as error:
                message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                problems.append(f"{os.path.basename(path)}: {message}")
                logging.warning("skipping checkpoint %s: %s", path, message)
        if problems:
            raise UserInputError(f"no checkpoint in {self.directory} can be restored "
                                 f"({'; '.join(problems)[:400]}); use another --output_dir or "
                                 "--overwrite")
        return None, None

    def _restore(self, path: str, replay, check_state) -> dict:
        problem = _verify(path)
        if problem:
            raise UserInputError(problem)
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        if check_state is not None:
            check_state(state)
        status = self._checkpoint.read(os.path.join(path, "tf", "ckpt"))
        status.assert_existing_objects_matched()
        if replay is not None:
            replay_dir = os.path.join(path, "replay")
            if os.path.isdir(replay_dir):
                replay.load(replay_dir)
            else:
                logging.warning("checkpoint %s has no replay memory; refilling it", path)
        return state
