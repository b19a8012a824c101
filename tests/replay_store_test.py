"""Tests for dqn_tf.replay_store: incremental chunks, exact round trips, bounded disk use,
partial restores and damage."""

import os
import sys

import numpy as np
import pytest

from dqn_tf import replay_store
from dqn_tf.errors import UserInputError
from dqn_tf.replay import TRANSITION_ARRAYS, ReplayMemory

FRAME = (6, 5)  # Small frames: the arithmetic is the same as 84x84.


def make_memory(capacity=64, num_envs=1, **kwargs):
    return ReplayMemory(capacity, FRAME, np.uint8, history_length=3, n_step=2, gamma=0.9,
                        num_envs=num_envs, seed=0, **kwargs)


def add(memory, steps, rng, mask_prob=0.9):
    """`steps` lockstep adds of random transitions; frames hold (env, index) codes."""
    for _ in range(steps):
        mask = rng.random(memory.num_envs) < mask_prob
        frames = np.stack([np.full(FRAME, (7 * e + memory.num_added[e]) % 251, np.uint8)
                           for e in range(memory.num_envs)])
        memory.add(frames, rng.integers(0, 4, memory.num_envs),
                   rng.normal(size=memory.num_envs).astype(np.float32),
                   rng.random(memory.num_envs) < 0.05, rng.random(memory.num_envs) < 0.03,
                   env_mask=mask)


def held(memory):
    """What the memory holds: per env, {array: values in index order} over its window."""
    out = []
    for e in range(memory.num_envs):
        indices = np.arange(memory.first_kept()[e], memory.num_added[e])
        slots = indices % memory.segment_capacity
        out.append({name: getattr(memory, name)[e, slots].copy() for name in TRANSITION_ARRAYS})
    return out


def assert_same_replay(a, b):
    np.testing.assert_array_equal(a.num_added, b.num_added)
    np.testing.assert_array_equal(a.first_kept(), b.first_kept())
    for env_a, env_b in zip(held(a), held(b)):
        for name in TRANSITION_ARRAYS:
            np.testing.assert_array_equal(env_a[name], env_b[name], name)


def save(store):
    record = store.write()
    store.commit(record)
    return record


def restored(directory, record, **kwargs):
    memory = make_memory(**kwargs)
    warnings = replay_store.ReplayStore(directory, memory).read(record)
    return memory, warnings


def chunk_transitions_on_disk(directory):
    total = 0
    for name in os.listdir(directory):
        _, _, first, end, _ = name.split("-")
        total += int(end) - int(first)
    return total


@pytest.mark.parametrize("num_envs", [1, 3])
def test_increments_round_trip_through_wrap_around(tmp_path, num_envs):
    rng = np.random.default_rng(num_envs)
    memory = make_memory(capacity=64 * num_envs, num_envs=num_envs)
    store = replay_store.ReplayStore(str(tmp_path), memory)
    for steps in (10, 25, 1, 40, 70, 3):  # Past the capacity and around the wrap.
        add(memory, steps, rng)
        record = save(store)
        copy, warnings = restored(str(tmp_path), record, capacity=64 * num_envs,
                                  num_envs=num_envs)
        assert not warnings
        assert_same_replay(copy, memory)
        for _ in range(3):  # Same contents and sampler state: the same batches.
            copy.rng.bit_generator.state = memory.rng.bit_generator.state
            for x, y in zip(memory.sample(8), copy.sample(8)):
                np.testing.assert_array_equal(x, y)


def test_a_checkpoint_writes_only_what_was_added(tmp_path):
    memory = make_memory()
    store = replay_store.ReplayStore(str(tmp_path), memory)
    add(memory, 20, np.random.default_rng(0), mask_prob=1.0)
    store.commit(store.write())
    add(memory, 7, np.random.default_rng(1), mask_prob=1.0)
    record = store.write()
    # [20, 27) is cut at 24, a multiple of the piece (64 / 16 = 4): two new chunks. Each
    # transition is frames 30 B + action 4 + reward 4 + terminal 1 + episode_end 1, and
    # each of a chunk's five .npy files has a 128-byte header.
    assert [(c["first"], c["end"]) for c in record["chunks"][-2:]] == [(20, 24), (24, 27)]
    assert store.new_bytes(record) == 7 * (30 + 4 + 4 + 1 + 1) + 2 * 5 * 128
    store.commit(record)
    assert store.new_bytes(store.write()) == 0  # Nothing new: nothing written.


def test_disk_holds_about_one_replay_whatever_the_checkpoints_kept(tmp_path):
    memory = make_memory(capacity=64)
    store = replay_store.ReplayStore(str(tmp_path), memory)
    records, rng = [], np.random.default_rng(0)
    for _ in range(30):  # 30 checkpoints of 24 transitions each: 11 times the capacity.
        add(memory, 24, rng, mask_prob=1.0)
        records.append(save(store))
        replay_store.sweep(str(tmp_path), records[-4:], records[-1])  # --keep_checkpoints=4
    # At most one replay, plus a piece (1/16) that is partly overwritten.
    assert 64 <= chunk_transitions_on_disk(str(tmp_path)) <= 64 + store.piece
    newest, _ = restored(str(tmp_path), records[-1])
    assert_same_replay(newest, memory)
    # An older checkpoint restores the part of its replay still on disk: its newest
    # transitions, never a newer checkpoint's.
    older, warnings = restored(str(tmp_path), records[-3])
    assert older.num_added[0] == records[-3]["num_added"][0]
    assert 0 < len(older) < 64 and warnings
    kept = held(older)[0]["frames"][:, 0, 0]
    expected = (np.arange(older.first_kept()[0], older.num_added[0]) % 251).astype(np.uint8)
    np.testing.assert_array_equal(kept, expected)


def test_a_damaged_chunk_costs_only_older_transitions(tmp_path):
    memory = make_memory(capacity=64)
    store = replay_store.ReplayStore(str(tmp_path), memory)
    rng = np.random.default_rng(0)
    for _ in range(3):
        add(memory, 12, rng, mask_prob=1.0)
        record = save(store)
    [second] = [c for c in record["chunks"] if c["end"] == 24]
    path = os.path.join(str(tmp_path), second["name"], "frames.npy")
    with open(path, "r+b") as f:  # Same size, one byte flipped.
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    copy = make_memory(capacity=64)
    copy_store = replay_store.ReplayStore(str(tmp_path), copy)
    warnings = copy_store.read(record)
    assert copy.first_kept()[0] == second["end"] == 24
    assert len(warnings) == 1 and "checksum mismatch" in warnings[0]
    np.testing.assert_array_equal(held(copy)[0]["frames"], held(memory)[0]["frames"][24:])
    # The resumed run's next checkpoint still holds what was read, and a second resume
    # gets all of it back (not only what was added after the first).
    add(copy, 4, rng, mask_prob=1.0)
    again, warnings = restored(str(tmp_path), save(copy_store))
    assert not warnings and len(again) == 36 - 24 + 4
    assert_same_replay(again, copy)
    os.remove(os.path.join(str(tmp_path), record["chunks"][-1]["name"], "reward.npy"))
    copy, warnings = restored(str(tmp_path), record)
    assert len(copy) == 0 and "reward.npy is missing" in warnings[0]


def test_a_resume_boundary_survives_the_next_resume(tmp_path):
    memory = make_memory()
    store = replay_store.ReplayStore(str(tmp_path), memory)
    add(memory, 10, np.random.default_rng(0), mask_prob=1.0)
    memory.episode_end[0, 9] = False
    record = save(store)
    first = make_memory()  # Resume 1 ends the game in progress at index 9.
    second_store = replay_store.ReplayStore(str(tmp_path), first)
    second_store.read(record)
    first.end_open_episodes()
    add(first, 5, np.random.default_rng(1), mask_prob=1.0)
    record = save(second_store)  # Rewrites index 9 with the truncation, then 10..14.
    assert [(c["first"], c["end"]) for c in record["chunks"]][-2:] == [(9, 12), (12, 15)]
    again, _ = restored(str(tmp_path), record)  # Resume 2 still sees the boundary.
    assert again.episode_end[0, 9]
    assert_same_replay(again, first)


def test_files_are_plain_npy_and_an_object_array_is_refused(tmp_path):
    memory = make_memory()
    store = replay_store.ReplayStore(str(tmp_path), memory)
    add(memory, 5, np.random.default_rng(0), mask_prob=1.0)
    record = save(store)
    rows = 0
    for chunk in record["chunks"]:  # Loadable without pickle, numeric dtypes.
        for name in TRANSITION_ARRAYS:
            array = np.load(os.path.join(str(tmp_path), chunk["name"], name + ".npy"),
                            allow_pickle=False)
            assert not array.dtype.hasobject and len(array) == chunk["end"] - chunk["first"]
        rows += len(array)
    assert rows == 5
    # A chunk swapped for a pickled object array of the same size is refused, not loaded.
    newest = record["chunks"][-1]
    path = os.path.join(str(tmp_path), newest["name"], "action.npy")
    entry = newest["files"]["action.npy"]
    objects = np.empty(newest["end"] - newest["first"], object)
    objects[:] = [{"x": i} for i in range(len(objects))]
    np.save(path, objects, allow_pickle=True)
    entry["size"] = os.path.getsize(path)
    copy, warnings = restored(str(tmp_path), record)
    assert len(copy) == 0 and f"holds ({len(objects)},) object" in warnings[0]


def test_the_sum_tree_is_saved_and_restored_with_the_replay(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    memory = make_memory(prioritized=True)
    rng = np.random.default_rng(0)
    for _ in range(5):
        add(memory, 20, rng)
        batch = memory.sample(8)
        memory.update_priorities(batch.key, rng.random(8) * 5)
    record = save_to(memory, str(tmp_path / "replay"), str(checkpoint))
    copy = make_memory(prioritized=True)
    warnings = replay_store.ReplayStore(str(tmp_path / "replay"), copy).read(record,
                                                                             str(checkpoint))
    assert not warnings
    np.testing.assert_array_equal(copy.priorities(), memory.priorities())
    np.testing.assert_array_equal(copy.tree.nodes, memory.tree.nodes)
    assert copy.max_priority == memory.max_priority
    # Damaged (or absent): rebuilt, every sampleable transition at the max priority.
    with open(checkpoint / "priorities.npy", "r+b") as f:
        f.seek(300)
        f.write(b"\xff")
    copy = make_memory(prioritized=True)
    [warning] = replay_store.ReplayStore(str(tmp_path / "replay"), copy).read(record,
                                                                              str(checkpoint))
    assert "checksum mismatch" in warning
    has_mass = copy.priorities() > 0
    np.testing.assert_array_equal(has_mass, memory.priorities() > 0)
    assert set(copy.priorities()[has_mass].tolist()) == {memory.max_priority}


def save_to(memory, directory, checkpoint_directory):
    store = replay_store.ReplayStore(directory, memory)
    record = store.write(checkpoint_directory)
    store.commit(record)
    return record


def test_a_replay_of_another_configuration_is_refused(tmp_path):
    memory = make_memory()
    add(memory, 5, np.random.default_rng(0))
    record = save(replay_store.ReplayStore(str(tmp_path), memory))
    with pytest.raises(UserInputError, match="capacity=64"):
        restored(str(tmp_path), record, capacity=32)


def test_sweep_deletes_partial_and_unreferenced_chunks(tmp_path):
    memory = make_memory()
    store = replay_store.ReplayStore(str(tmp_path), memory)
    add(memory, 5, np.random.default_rng(0))
    record = save(store)
    os.makedirs(os.path.join(str(tmp_path), "chunk-e0-000000000005-000000000009-dead.partial"))
    add(memory, 5, np.random.default_rng(1))
    store.write()  # A checkpoint that never completed: its chunk is referenced by nobody.
    replay_store.sweep(str(tmp_path), [record], record)
    assert sorted(os.listdir(str(tmp_path))) == sorted(c["name"] for c in record["chunks"])


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
