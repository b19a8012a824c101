"""Resumable run state on disk: checkpoints that are complete or ignored.

Layout of a run directory::

    <output_dir>/.lock                       held (flock) by the process writing the run
    <output_dir>/config.json                 the learning config that made the run
    <output_dir>/checkpoints/ckpt-<step>/    one per checkpoint, newest `keep` kept
        tf/                                  tf.train.Checkpoint: both networks, optimizer slots
        state.json                           agent counters, RNG states, run bookkeeping
        replay.json                          its replay: counters and chunks (--checkpoint_replay)
        MANIFEST.json                        size and CRC-32 of every file
        COMPLETE                             written last
    <output_dir>/checkpoints/replay/         replay chunks that the checkpoints share
                                             (dqn_tf.replay_store: each written once)

A checkpoint is written under `ckpt-<step>.partial-<pid>/` and renamed into place
only after COMPLETE is on disk, so a crash at any moment leaves either the
complete checkpoint or a `.partial` directory that is never read (and is swept
at the next start). Older checkpoints are deleted only after a newer one is
complete, and replay chunks once no kept checkpoint needs them. Nothing is pickled:
TF's own format, JSON and `.npy`.
"""

import glob
import json
import logging
import os
import shutil
import zlib

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import tensorflow as tf

from dqn_tf import replay_store, run_directory
from dqn_tf.errors import UserInputError
from dqn_tf.replay import ReplayMemory
from dqn_tf.replay_store import ReplayStore

_PREFIX = "ckpt-"
_REPLAY_RECORD = "replay.json"
_REPLACED = ".replaced-"  # ckpt-N.replaced-<pid>: set aside while ckpt-N is rewritten.
_DAMAGED = ".damaged"  # ckpt-N.damaged: failed to restore; kept for inspection, never read.


def _crc32(path: str) -> int:
    """CRC-32 of a file's bytes."""
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


class Checkpointer:
    """Writes and restores complete checkpoints of TF objects, JSON state and the replay."""

    def __init__(self, directory: str, trackables: dict, keep: int = 4,
                 replay: ReplayMemory | None = None, read_only: bool = False):
        """Args:
          directory: where the `ckpt-<step>` directories live.
          trackables: TF objects for `tf.train.Checkpoint` (networks, optimizer).
          keep: newest complete checkpoints to keep.
          replay: the memory to save incrementally with each checkpoint and to restore
            (chunks under `<directory>/replay/`, see `dqn_tf.replay_store`), or None.
          read_only: only restore, and change nothing on disk: for a reader of a run
            that another process may be writing (`dqn_tf.export`). A writer holds the
            run's `run_directory.RunLock` and cleans up after a crash.
        """
        self.directory = directory
        self._checkpoint = tf.train.Checkpoint(**trackables)
        self._keep = keep
        self._read_only = read_only
        self._replay_directory = os.path.join(directory, "replay")
        self._store = (ReplayStore(self._replay_directory, replay)
                       if replay is not None else None)
        self.last_replay_bytes = 0  # Replay bytes the last `save` wrote.
        if read_only:
            return
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.partial-*")):
            shutil.rmtree(stale, ignore_errors=True)
        for replaced in glob.glob(os.path.join(directory, f"*{_REPLACED}*")):
            # A crash while replacing a checkpoint of the same step: keep whichever is whole.
            final = replaced.split(_REPLACED)[0]
            if os.path.exists(os.path.join(final, "COMPLETE")):
                shutil.rmtree(replaced, ignore_errors=True)
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(replaced, final)
        self._sweep_replay(newest=None)  # Chunks of a write that a kill interrupted.

    def complete_checkpoints(self) -> list:
        """Paths of complete checkpoints, oldest first."""
        paths = []
        for path in glob.glob(os.path.join(self.directory, _PREFIX + "*")):
            name = os.path.basename(path)
            if name[len(_PREFIX):].isdigit() and os.path.exists(os.path.join(path, "COMPLETE")):
                paths.append(path)
        return sorted(paths, key=lambda p: int(os.path.basename(p)[len(_PREFIX):]))

    def save(self, step: int, state: dict) -> str:
        """Writes checkpoint `step` (with the replay's new transitions); returns its path.

        Args:
          step: agent steps so far (names the checkpoint).
          state: JSON-serialisable state (counters, RNG states, bookkeeping).

        Raises:
          OSError: the write failed; the previous checkpoints are untouched.
        """
        final = os.path.join(self.directory, f"{_PREFIX}{step:012d}")
        partial = f"{final}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.makedirs(partial)
            self._checkpoint.write(os.path.join(partial, "tf", "ckpt"))
            run_directory.write_json(os.path.join(partial, "state.json"), state)
            record = None
            if self._store is not None:
                record = self._store.write(partial)
                run_directory.write_json(os.path.join(partial, _REPLAY_RECORD), record)
            run_directory.write_json(os.path.join(partial, "MANIFEST.json"), _manifest(partial))
            run_directory.write_json(os.path.join(partial, "COMPLETE"), {"step": step})
            replaced = None
            if os.path.exists(final):  # The same step again: set the old one aside first.
                replaced = f"{final}{_REPLACED}{os.getpid()}"
                os.rename(final, replaced)
            os.rename(partial, final)
            replay_store.fsync_directory(self.directory)
            if replaced is not None:
                shutil.rmtree(replaced)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            self._sweep_replay(newest=None)
            raise
        if record is not None:
            self.last_replay_bytes = self._store.new_bytes(record)
            self._store.commit(record)
        for old in self.complete_checkpoints()[:-self._keep]:
            shutil.rmtree(old, ignore_errors=True)
        self._sweep_replay(newest=record)
        return final

    def _sweep_replay(self, newest: dict | None) -> None:
        """Deletes replay chunks that no kept checkpoint needs (`replay_store.sweep`),
        judged against `newest`, the replay record the run goes on from (None: delete
        only chunks that no kept checkpoint references). Runs with or without a replay
        in this run, so turning --checkpoint_replay off on resume frees its disk."""
        records = []
        for path in self.complete_checkpoints():
            try:
                with open(os.path.join(path, _REPLAY_RECORD)) as f:
                    records.append(json.load(f))
            except (OSError, ValueError):
                continue  # No replay saved, or unreadable: it needs no chunk.
        replay_store.sweep(self._replay_directory, records, newest)

    def restore_latest(self, check_state=None) -> tuple:
        """Restores the newest checkpoint that verifies and loads.

        A checkpoint that fails verification is skipped with a warning, and the
        next older one is tried. Its replay is read as far as its chunks are intact
        (`ReplayStore.read`: a damaged chunk costs the transitions before it).

        Args:
          check_state: called with the state dict before anything is restored;
            raises `UserInputError` when the checkpoint belongs to another run
            (another game or config).

        Returns:
          (path, state dict), or (None, None) when there is no checkpoint.

        Raises:
          UserInputError: checkpoints exist but none can be restored.
        """
        candidates = self.complete_checkpoints()
        problems, skipped = [], []
        for path in reversed(candidates):
            try:
                state = self._restore(path, check_state)
            except (UserInputError, ValueError, tf.errors.OpError, OSError) as error:
                message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                problems.append(f"{os.path.basename(path)}: {message}")
                skipped.append(path)
                logging.warning("skipping checkpoint %s: %s", path, message)
                continue
            if not self._read_only:
                for bad in skipped:  # Newer than the one resumed from, and unusable.
                    os.rename(bad, f"{bad}{_DAMAGED}")
                    logging.warning("set %s aside as %s%s", bad, os.path.basename(bad),
                                    _DAMAGED)
            return path, state
        if problems:
            raise UserInputError(f"no checkpoint in {self.directory} can be restored "
                                 f"({'; '.join(problems)[:400]}); use another --output_dir or "
                                 "--overwrite")
        return None, None

    def _restore(self, path: str, check_state) -> dict:
        problem = _verify(path)
        if problem:
            raise UserInputError(problem)
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)
        if check_state is not None:
            check_state(state)
        status = self._checkpoint.read(os.path.join(path, "tf", "ckpt"))
        status.assert_existing_objects_matched()
        if self._store is not None:
            record_path = os.path.join(path, _REPLAY_RECORD)
            if os.path.exists(record_path):
                with open(record_path) as f:
                    for warning in self._store.read(json.load(f), path):
                        logging.warning("%s: %s", os.path.basename(path), warning)
            else:
                logging.warning("checkpoint %s has no replay memory; refilling it", path)
        return state
