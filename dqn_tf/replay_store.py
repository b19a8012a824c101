"""The replay memory on disk, as immutable chunks that checkpoints share.

A checkpoint writes only the transitions added since the previous one; the rest is
already on disk. Layout, under `<output_dir>/checkpoints/replay/`::

    chunk-e<env>-<first>-<end>-<token>/   env's transitions [first, end) (absolute indices)
        frames.npy action.npy reward.npy terminal.npy episode_end.npy

A checkpoint's `replay.json` (in its own directory, under its MANIFEST) is the record
of its replay: the memory's counters and the chunks that hold it, oldest first, with
the size and CRC-32 of every file. A prioritized replay's sum-tree leaves change
everywhere between checkpoints, so each checkpoint holds its own `priorities.npy`
(8 bytes per transition). Chunks are written once under a `.partial` name,
then renamed, and never changed; where two chunks of an env overlap, the later one
wins (a resume turns each env's last transition into a truncation, and the next
checkpoint writes that one transition again).

Chunks are cut at multiples of 1/16 of a segment and at the segment's wrap-around,
so each is one contiguous block of the memory, read and written without copies.
After each checkpoint, chunks wholly older than what the newest checkpoint's replay
holds are deleted. Disk use therefore stays near one replay, at most 1/16 more plus
the last checkpoint's increment, whatever `--keep_checkpoints`. Timeline, capacity C,
a checkpoint every K agent steps (one env)::

    ckpt at K    writes [0, K)             on disk [0, K)
    ckpt at 2K   writes [K, 2K)            on disk [0, 2K)
    ckpt at nK   writes [(n-1)K, nK)       on disk [about nK - C, nK)

An older checkpoint restores the part of its replay still on disk (its newest
transitions), never a newer one's; a chunk that is missing or damaged costs the
transitions at and before it, never the checkpoint: the memory then starts after it
(`ReplayMemory.restored_from`), with a warning.
"""

import io
import os
import secrets
import shutil
import zlib

import numpy as np

from dqn_tf.errors import UserInputError
from dqn_tf.replay import TRANSITION_ARRAYS, ReplayMemory

FORMAT_VERSION = 2
PIECES_PER_SEGMENT = 16
PRIORITIES = "priorities.npy"  # In each checkpoint's directory, for prioritized replay.
_BLOCK_BYTES = 64 << 20


class ChunkDamaged(Exception):
    """A chunk file is missing, truncated, foreign or fails its checksum."""


class ReplayStore:
    """Writes and reads one `ReplayMemory` as chunks in `directory`."""

    def __init__(self, directory: str, memory: ReplayMemory):
        self.directory = directory
        self.memory = memory
        self.piece = max(1, -(-memory.segment_capacity // PIECES_PER_SEGMENT))
        self._chunks = []  # Records of the chunks holding the memory's replay, oldest first.

    # ------------------------------------------------------------------ writing

    def write(self, checkpoint_directory: str | None = None) -> dict:
        """Writes chunks for every transition changed since the last `commit` or `read`,
        and (prioritized replay) the sum tree's leaves into `checkpoint_directory`: they
        change everywhere between checkpoints, so each checkpoint has its own copy.

        Returns:
          The replay record for the checkpoint (`commit` it once the checkpoint is
          complete; a failed checkpoint leaves the store as it was).

        Raises:
          OSError: a write failed (chunks written so far are left for `sweep`).
        """
        m = self.memory
        os.makedirs(self.directory, exist_ok=True)
        first_kept = m.first_kept()
        new = [self._write_chunk(env, first, end)
               for env in range(m.num_envs)
               for first, end in self._pieces(max(int(m.unsaved_from[env]),
                                                  int(first_kept[env])),
                                              int(m.num_added[env]))]
        if new:
            fsync_directory(self.directory)
        held = [c for c in self._chunks if c["end"] > first_kept[c["env"]]]
        record = dict(self._metadata(), num_added=m.num_added.tolist(),
                      first_kept=first_kept.tolist(), chunks=held + new)
        if m.tree is not None and checkpoint_directory is not None:
            entry = _write_npy(os.path.join(checkpoint_directory, PRIORITIES), m.priorities())
            record["priorities"] = dict(entry, max_priority=m.max_priority)
        return record

    def commit(self, record: dict) -> None:
        """The checkpoint holding `record` is complete: its chunks are now the base."""
        self._chunks = record["chunks"]
        self.memory.unsaved_from[:] = record["num_added"]

    def new_bytes(self, record: dict) -> int:
        """Bytes of the chunks in `record` that the last `commit` did not have."""
        known = {c["name"] for c in self._chunks}
        return sum(f["size"] for c in record["chunks"] if c["name"] not in known
                   for f in c["files"].values())

    def _pieces(self, low: int, high: int) -> list:
        """[low, high) cut at multiples of `piece` and of the segment capacity."""
        capacity = self.memory.segment_capacity
        cuts = {low, high}
        cuts.update(range(-(-low // self.piece) * self.piece, high, self.piece))
        cuts.update(range(-(-low // capacity) * capacity, high, capacity))
        cuts = sorted(c for c in cuts if low <= c <= high)
        return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]

    def _write_chunk(self, env: int, first: int, end: int) -> dict:
        m = self.memory
        name = f"chunk-e{env}-{first:012d}-{end:012d}-{secrets.token_hex(4)}"
        partial = os.path.join(self.directory, name + ".partial")
        os.makedirs(partial)
        start = first % m.segment_capacity
        files = {}
        for array in TRANSITION_ARRAYS:
            block = getattr(m, array)[env, start:start + end - first]  # A view: no copy.
            files[array + ".npy"] = _write_npy(os.path.join(partial, array + ".npy"), block)
        fsync_directory(partial)
        os.rename(partial, os.path.join(self.directory, name))
        return {"name": name, "env": env, "first": first, "end": end, "files": files}

    # ------------------------------------------------------------------ reading

    def read(self, record: dict, checkpoint_directory: str | None = None) -> list:
        """Fills the memory with the replay of `record` (a checkpoint's replay.json).

        Per env, chunks are read newest first into place; the first one missing or
        damaged ends that env's replay there (it keeps what is newer). A prioritized
        memory reads its tree's leaves from `checkpoint_directory`, keeping mass only on
        transitions it can sample; without them (missing, damaged, or a record of a
        uniform replay) every sampleable transition gets the max priority.

        Returns:
          One warning per env that lost transitions (empty if all were read).

        Raises:
          UserInputError: the record is from another replay configuration.
        """
        m = self.memory
        expected = self._metadata()
        differ = [k for k in expected if record.get(k) != expected[k]]
        if differ:
            k = differ[0]
            raise UserInputError(f"the replay was saved with {k}={record.get(k)!r}, this run "
                                 f"has {expected[k]!r}; resume with the same config")
        num_added = np.asarray(record["num_added"], np.int64)
        window_low = np.maximum(num_added - m.segment_capacity,
                                np.asarray(record["first_kept"], np.int64))
        filled_from = num_added.copy()  # Per env: [filled_from, num_added) is read.
        damaged = {}  # env -> what was wrong with its first bad chunk (newest first).
        bad = set()
        for chunk in reversed(record["chunks"]):
            env = chunk["env"]
            if env in damaged:
                continue
            low = max(chunk["first"], int(window_low[env]))
            high = min(chunk["end"], int(filled_from[env]))
            if high <= low:
                continue  # Outside the replay, or superseded by a newer chunk.
            try:
                self._read_chunk(chunk, low, high)
            except ChunkDamaged as error:
                damaged[env] = f"{chunk['name']}: {error}"
                bad.add(chunk["name"])
                continue
            filled_from[env] = low
        m.num_added[:] = num_added
        m.restored_from[:] = filled_from
        m.unsaved_from[:] = num_added
        # The memory's replay on disk: what was read (a damaged chunk and everything
        # older of its env now lie below first_kept).
        first_kept = m.first_kept()
        self._chunks = [c for c in record["chunks"]
                        if c["name"] not in bad and c["end"] > first_kept[c["env"]]]
        warnings = []
        if m.tree is not None:
            warnings += self._read_priorities(record, checkpoint_directory)
        for env, problem in sorted(damaged.items()):
            lost = int(filled_from[env] - window_low[env])
            warnings.append(f"replay of env {env} lost its {lost:,} oldest transitions "
                            f"({problem}); it keeps the {int(num_added[env] - filled_from[env]):,} "
                            "newer ones")
        return warnings

    def _read_priorities(self, record: dict, checkpoint_directory: str | None) -> list:
        m = self.memory
        entry = record.get("priorities")
        if entry is None or checkpoint_directory is None:
            m.rebuild_priorities(None)
            return ["the replay has no saved priorities: every transition starts at the max "
                    "priority"]
        m.max_priority = float(entry["max_priority"])
        leaves = np.zeros(m.tree.size)
        try:
            _read_npy_range(os.path.join(checkpoint_directory, PRIORITIES), entry,
                            (m.tree.size,), np.float64, 0, leaves)
        except ChunkDamaged as error:
            m.rebuild_priorities(None)
            return [f"priorities not restored ({error}): every transition starts at the max "
                    "priority"]
        m.rebuild_priorities(leaves)
        return []

    def _read_chunk(self, chunk: dict, low: int, high: int) -> None:
        """Reads transitions [low, high) of `chunk` into their slots, checking every file."""
        m = self.memory
        directory = os.path.join(self.directory, chunk["name"])
        start = low % m.segment_capacity
        for array in TRANSITION_ARRAYS:
            target = getattr(m, array)
            dest = target[chunk["env"], start:start + high - low]
            entry = chunk["files"].get(array + ".npy")
            if entry is None:
                raise ChunkDamaged(f"no {array}.npy in the record")
            _read_npy_range(os.path.join(directory, array + ".npy"), entry,
                            (chunk["end"] - chunk["first"],) + target.shape[2:], target.dtype,
                            low - chunk["first"], dest)

    # ------------------------------------------------------------------ cleanup

    def _metadata(self) -> dict:
        m = self.memory
        return {"format_version": FORMAT_VERSION, "capacity": m.capacity,
                "num_envs": m.num_envs, "observation_shape": list(m.observation_shape),
                "observation_dtype": m.observation_dtype.name,
                "history_length": m.history_length, "n_step": m.n_step, "gamma": m.gamma}


def sweep(directory: str, records: list, newest: dict | None) -> None:
    """Deletes every chunk in `directory` that no checkpoint needs.

    Args:
      records: the replay records of every complete checkpoint kept.
      newest: the record of the checkpoint the run goes on from (the one just written,
        or restored), or None when it has no replay.

    Kept: the chunks of `newest`, and chunks of the other kept checkpoints that are not
    wholly older than what `newest` holds. Deleted: everything else, including the
    `.partial` chunks of an interrupted write. With `newest` None, only chunks that no
    kept checkpoint references are deleted.
    """
    if not os.path.isdir(directory):
        return
    referenced = {c["name"]: c for r in records for c in r["chunks"]}
    in_newest = {c["name"] for c in newest["chunks"]} if newest else set()
    for name in os.listdir(directory):
        chunk = referenced.get(name)
        keep = chunk is not None and (
            newest is None or name in in_newest or
            chunk["end"] > newest["first_kept"][chunk["env"]])
        if not keep:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def fsync_directory(path: str) -> None:
    """Makes the renames and creations in `path` durable (a power loss keeps them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npy(path: str, array: np.ndarray) -> dict:
    """Writes a C-contiguous array as `.npy` (never pickled), fsynced; returns its size
    and CRC-32."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, np.lib.format.header_data_from_array_1_0(array))
    data = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    crc = zlib.crc32(header.getvalue())
    with open(path, "wb") as f:
        f.write(header.getvalue())
        for offset in range(0, len(data), _BLOCK_BYTES):
            block = data[offset:offset + _BLOCK_BYTES]
            crc = zlib.crc32(block, crc)
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return {"size": len(header.getvalue()) + len(data), "crc32": crc}


def _read_npy_range(path: str, entry: dict, shape: tuple, dtype, skip: int,
                    dest: np.ndarray) -> None:
    """Streams `path` once, checking its size, header and CRC-32 against `entry`, and
    reads items [skip, skip + len(dest)) straight into `dest` (C-contiguous).

    Raises:
      ChunkDamaged: missing, truncated, another shape or dtype, or a checksum mismatch.
    """
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise ChunkDamaged(f"{name} is missing") from None
    if size != entry["size"]:
        raise ChunkDamaged(f"{name} has {size} bytes, expected {entry['size']}")
    if not dest.flags.c_contiguous:
        raise ValueError("dest must be a C-contiguous view of the memory")
    out = memoryview(dest.reshape(-1).view(np.uint8))
    item_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version != (1, 0):
                raise ValueError(f"unsupported .npy version {version}")
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
        except ValueError as error:
            raise ChunkDamaged(f"{name} has a bad header ({error})") from None
        if tuple(got_shape) != tuple(shape) or fortran or got_dtype != dtype:
            raise ChunkDamaged(f"{name} holds {got_shape} {got_dtype}, expected "
                               f"{tuple(shape)} {np.dtype(dtype)}")
        offset = f.tell()
        if size != offset + shape[0] * item_bytes:
            raise ChunkDamaged(f"{name} has {size} bytes for {shape[0]} items")
        f.seek(0)
        crc = zlib.crc32(f.read(offset))
        before = skip * item_bytes
        after = size - offset - before - len(out)
        scratch = memoryview(bytearray(min(_BLOCK_BYTES, max(before, after))))
        crc = _read_counted(f, before, crc, name, scratch=scratch)
        crc = _read_counted(f, len(out), crc, name, dest=out)  # The wanted items, in place.
        crc = _read_counted(f, after, crc, name, scratch=scratch)
    if crc != entry["crc32"]:
        raise ChunkDamaged(f"{name} is corrupt (checksum mismatch)")


def _read_counted(f, length: int, crc: int, name: str, *, dest: memoryview | None = None,
                  scratch: memoryview | None = None) -> int:
    """Reads `length` bytes of `f` into `dest` (that long) or through `scratch`;
    returns the CRC-32 carried on over them."""
    done = 0
    while done < length:
        size = min(length - done, _BLOCK_BYTES)
        block = dest[done:done + size] if dest is not None else scratch[:size]
        read = f.readinto(block)
        if not read:
            raise ChunkDamaged(f"{name} ended early")
        crc = zlib.crc32(block[:read], crc)
        done += read
    return crc
