"""Tests for dqn_tf.checkpointing: complete-or-ignored checkpoints, retention, config guard."""

import sys

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dqn_tf import checkpointing, run_directory
from dqn_tf.errors import UserInputError
from dqn_tf.replay import ReplayMemory


def make_checkpointer(directory, value=0.0, keep=2):
    variable = tf.Variable(np.full(3, value, np.float32))
    return checkpointing.Checkpointer(str(directory), {"v": variable}, keep), variable


def test_save_restore_and_keep_newest(tmp_path):
    saver, variable = make_checkpointer(tmp_path)
    for step in (10, 20, 30):
        variable.assign(np.full(3, step, np.float32))
        saver.save(step, {"step": step})
    assert [os.path.basename(p) for p in saver.complete_checkpoints()] == [
        "ckpt-000000000020", "ckpt-000000000030"]
    restorer, restored = make_checkpointer(tmp_path)
    path, state = restorer.restore_latest()
    assert state == {"step": 30} and restored.numpy().tolist() == [30, 30, 30]


def test_partial_checkpoint_is_ignored_and_swept(tmp_path):
    saver, variable = make_checkpointer(tmp_path)
    saver.save(10, {"step": 10})
    crashed = tmp_path / "ckpt-000000000020.partial-999"
    crashed.mkdir()
    (crashed / "state.json").write_text("{")
    incomplete = tmp_path / "ckpt-000000000030"  # Renamed but no COMPLETE (old layout).
    incomplete.mkdir()
    restorer, _ = make_checkpointer(tmp_path)
    assert not crashed.exists()
    assert restorer.restore_latest()[1] == {"step": 10}


@pytest.mark.parametrize("victim", ["state.json", "tf/ckpt.index", "MANIFEST.json"])
def test_corrupt_newest_falls_back_to_previous(tmp_path, victim):
    saver, variable = make_checkpointer(tmp_path)
    variable.assign([1, 1, 1])
    saver.save(10, {"step": 10})
    variable.assign([2, 2, 2])
    newest = saver.save(20, {"step": 20})
    path = os.path.join(newest, victim)
    with open(path, "r+b") as f:
        f.truncate(max(os.path.getsize(path) // 2, 1))
    restorer, restored = make_checkpointer(tmp_path)
    path, state = restorer.restore_latest()
    assert state == {"step": 10} and restored.numpy().tolist() == [1, 1, 1]


def test_no_restorable_checkpoint_is_a_clear_error(tmp_path):
    saver, _ = make_checkpointer(tmp_path)
    newest = saver.save(10, {"step": 10})
    os.remove(os.path.join(newest, "state.json"))
    restorer, _ = make_checkpointer(tmp_path)
    with pytest.raises(UserInputError, match="no checkpoint .* can be restored"):
        restorer.restore_latest()


def test_foreign_checkpoint_shape_is_refused(tmp_path):
    saver, _ = make_checkpointer(tmp_path)
    saver.save(10, {"step": 10})
    other = checkpointing.Checkpointer(str(tmp_path), {"v": tf.Variable(np.zeros(5))})
    with pytest.raises(UserInputError):
        other.restore_latest()


def add_transitions(memory, values):
    for i in values:
        memory.add(np.full((1, 2), i, np.float32), np.array([i]), np.array([1.0]),
                   np.array([False]), np.array([False]))


def test_replay_is_saved_incrementally_and_restored(tmp_path):
    variable = tf.Variable(np.zeros(3, np.float32))
    memory = ReplayMemory(32, (2,), np.float32, history_length=1)
    saver = checkpointing.Checkpointer(str(tmp_path), {"v": variable}, keep=2, replay=memory)
    add_transitions(memory, range(5))
    saver.save(5, {"step": 5})
    first_bytes = saver.last_replay_bytes
    add_transitions(memory, range(5, 7))
    saver.save(7, {"step": 7})
    assert 0 < saver.last_replay_bytes < first_bytes  # Only transitions 5 and 6.
    fresh = ReplayMemory(32, (2,), np.float32, history_length=1)
    restorer = checkpointing.Checkpointer(str(tmp_path), {"v": variable}, replay=fresh)
    assert restorer.restore_latest()[1] == {"step": 7}
    np.testing.assert_array_equal(fresh.frames[0, :7], memory.frames[0, :7])
    assert fresh.num_added.tolist() == [7] and fresh.unsaved_from.tolist() == [7]


def test_a_failed_save_leaves_no_replay_chunks(tmp_path):
    variable = tf.Variable(np.zeros(3, np.float32))
    memory = ReplayMemory(32, (2,), np.float32, history_length=1)
    saver = checkpointing.Checkpointer(str(tmp_path), {"v": variable}, replay=memory)
    add_transitions(memory, range(5))
    saver.save(5, {"step": 5})
    chunks = sorted(os.listdir(tmp_path / "replay"))
    add_transitions(memory, range(5, 9))
    with pytest.raises(TypeError):
        saver.save(9, {"step": object()})  # state.json cannot be written.
    assert sorted(os.listdir(tmp_path / "replay")) == chunks
    assert memory.unsaved_from.tolist() == [5]  # The next save writes 5..8 again.
    saver.save(9, {"step": 9})
    assert len(os.listdir(tmp_path / "replay")) > len(chunks)


def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    run = str(tmp_path / "run")
    lock = run_directory.prepare_run_directory(run, {"env": "A"}, overwrite=False)
    with pytest.raises(UserInputError, match=f"in use by another dqn_tf process \\(pid "
                                             f"{os.getpid()}\\)"):
        run_directory.prepare_run_directory(run, {"env": "A"}, overwrite=False)
    lock.release()  # As the kernel does when the holder dies, however it dies.
    run_directory.prepare_run_directory(run, {"env": "A"}, overwrite=False).release()


def test_a_read_only_reader_leaves_a_writers_files_alone(tmp_path):
    saver, _ = make_checkpointer(tmp_path)
    saver.save(10, {"step": 10})
    writing = tmp_path / "ckpt-000000000020.partial-12345"  # Another process's checkpoint.
    writing.mkdir()
    reader = checkpointing.Checkpointer(
        str(tmp_path), {"v": tf.Variable(np.zeros(3, np.float32))}, read_only=True)
    assert reader.restore_latest()[1] == {"step": 10}
    assert writing.exists()


def test_a_crash_while_replacing_a_step_keeps_a_whole_checkpoint(tmp_path):
    saver, variable = make_checkpointer(tmp_path)
    variable.assign([1, 1, 1])
    saver.save(10, {"step": 10})
    # As a kill between the two renames of a second save at step 10 leaves it:
    os.rename(tmp_path / "ckpt-000000000010", tmp_path / "ckpt-000000000010.replaced-77")
    restorer, restored = make_checkpointer(tmp_path)
    assert restorer.restore_latest()[1] == {"step": 10}
    assert restored.numpy().tolist() == [1, 1, 1]
    variable.assign([2, 2, 2])
    saver.save(10, {"step": 10, "again": True})  # A normal replace leaves nothing aside.
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000000000010", "replay"] or sorted(
        os.listdir(tmp_path)) == ["ckpt-000000000010"]
    assert make_checkpointer(tmp_path)[0].restore_latest()[1] == {"step": 10, "again": True}


def test_a_damaged_checkpoint_is_set_aside_and_the_replay_judged_by_the_resumed_one(
        tmp_path):
    variable = tf.Variable(np.zeros(3, np.float32))

    def checkpointer(memory):
        return checkpointing.Checkpointer(str(tmp_path), {"v": variable}, keep=4, replay=memory)

    memory = ReplayMemory(8, (2,), np.float32, history_length=1)
    saver = checkpointer(memory)
    add_transitions(memory, range(6))
    saver.save(6, {"step": 6})
    add_transitions(memory, range(6, 30))
    newest = saver.save(30, {"step": 30})  # Holds transitions 22..29 only.
    with open(os.path.join(newest, "state.json"), "a") as f:
        f.write(" ")  # No longer matches its manifest.
    fresh = ReplayMemory(8, (2,), np.float32, history_length=1)
    resumed = checkpointer(fresh)
    assert resumed.restore_latest()[1] == {"step": 6}  # Its replay was swept at step 30.
    assert os.path.isdir(newest + ".damaged")
    assert [os.path.basename(p) for p in resumed.complete_checkpoints()] == [
        "ckpt-000000000006"]
    add_transitions(fresh, range(100, 103))
    resumed.save(9, {"step": 9})  # Judged against the damaged step 30, these would go.
    again = ReplayMemory(8, (2,), np.float32, history_length=1)
    checkpointer(again).restore_latest()
    held = again.frames[0, np.arange(again.first_kept()[0], again.num_added[0]) % 8, 0]
    assert held.tolist() == [100, 101, 102]


def test_turning_the_replay_off_on_resume_frees_its_disk(tmp_path):
    variable = tf.Variable(np.zeros(3, np.float32))
    memory = ReplayMemory(32, (2,), np.float32, history_length=1)
    saver = checkpointing.Checkpointer(str(tmp_path), {"v": variable}, keep=2, replay=memory)
    add_transitions(memory, range(5))
    saver.save(5, {"step": 5})
    assert os.listdir(tmp_path / "replay")
    without = checkpointing.Checkpointer(str(tmp_path), {"v": variable}, keep=2)
    without.save(6, {"step": 6})
    without.save(7, {"step": 7})  # The last checkpoint with a replay is pruned...
    assert not os.listdir(tmp_path / "replay")  # ...and its chunks with it.


def test_run_directory_refuses_other_config_unless_overwrite(tmp_path):
    run = str(tmp_path / "run")
    for _ in range(2):
        run_directory.prepare_run_directory(run, {"env": "A", "sizes": (1, 2)},
                                            overwrite=False).release()
    os.makedirs(os.path.join(run, "checkpoints", "ckpt-000000000001"))
    with pytest.raises(UserInputError) as error:
        run_directory.prepare_run_directory(run, {"env": "B", "sizes": (1, 2)}, overwrite=False)
    assert "env: 'A' -> 'B'" in str(error.value) and "--overwrite" in str(error.value)
    run_directory.prepare_run_directory(run, {"env": "B", "sizes": (1, 2)},
                                        overwrite=True).release()
    assert not os.path.exists(os.path.join(run, "checkpoints"))
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["env"] == "B"


def test_unwritable_output_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="not writable"):
        run_directory.prepare_run_directory(str(blocker / "run"), {}, overwrite=False)


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
