"""Tests for dqn_tf.replay: stacks, boundaries, n-step sums, wrap-around, save/load."""

import sys

import numpy as np
import pytest

from dqn_tf.replay import ReplayMemory


def add_frames(memory, values, terminal=(), episode_end=(), reward=1.0):
    """Adds one env's frames whose every pixel equals their value."""
    for value in values:
        memory.add(np.full((1,) + memory.observation_shape, value, memory.observation_dtype),
                   np.array([value]), np.array([reward], np.float32),
                   np.array([value in terminal]), np.array([value in episode_end]))


def test_stack_is_last_h_frames_history_major():
    memory = ReplayMemory(100, (84, 84), history_length=4)
    add_frames(memory, range(1, 11))
    stack = memory.stacks(np.array([0]), np.array([6]))  # Slot 6 holds frame value 7.
    assert stack.shape == (1, 4, 84, 84) and stack.dtype == np.uint8
    assert stack[0, :, 0, 0].tolist() == [4, 5, 6, 7]
    assert (stack[0, 0] == 4).all()


def test_frames_from_an_earlier_game_are_zero():
    memory = ReplayMemory(100, (84, 84), history_length=4)
    add_frames(memory, range(1, 11), episode_end={5})  # Frame 5 ends a game; 6 starts one.
    stacks = memory.stacks(np.zeros(4, int), np.array([4, 5, 6, 8]))
    expected = [[2, 3, 4, 5], [0, 0, 0, 6], [0, 0, 6, 7], [6, 7, 8, 9]]
    assert stacks[:, :, 0, 0].tolist() == expected


def test_frames_before_the_first_add_are_zero():
    memory = ReplayMemory(100, (84, 84), history_length=4)
    add_frames(memory, range(1, 4))
    assert memory.stacks(np.array([0]), np.array([1]))[0, :, 0, 0].tolist() == [0, 0, 1, 2]


def test_life_loss_terminal_does_not_cut_the_stack():
    # A lost life is a terminal for learning but the game (and the acting stack) go on.
    memory = ReplayMemory(100, (84, 84), history_length=4)
    add_frames(memory, range(1, 11), terminal={5})
    assert memory.stacks(np.array([0]), np.array([6]))[0, :, 0, 0].tolist() == [4, 5, 6, 7]


def test_n_step_returns_by_hand():
    memory = ReplayMemory(100, (1,), np.float32, history_length=1, n_step=3, gamma=0.5)
    # Rewards r_j = j for frames 1..12; frame 8 is terminal (and ends its game).
    for j in range(1, 13):
        memory.add(np.array([[j]], np.float32), np.array([j]), np.array([float(j)]),
                   np.array([j == 8]), np.array([j == 8]))
    env = np.zeros(4, int)
    valid, steps, r_t, discount_t = memory._horizon(env, np.array([0, 5, 6, 7]))
    # Index 0 (frame 1): 1 + .5*2 + .25*3 = 2.75, discount .5^3, next = frame 4.
    # Index 5 (frame 6): 6 + .5*7 + .25*8 = 11.5, terminal at k=2: discount 0.
    # Index 6 (frame 7): 7 + .5*8 = 11, cut after 2 steps.  Index 7: 8, cut after 1.
    assert valid.all()
    np.testing.assert_allclose(r_t, [2.75, 11.5, 11.0, 8.0])
    np.testing.assert_allclose(discount_t, [0.125, 0.0, 0.0, 0.0])
    assert steps.tolist() == [3, 3, 2, 1]


def test_truncation_inside_horizon_is_never_sampled():
    memory = ReplayMemory(100, (1,), np.float32, history_length=1, n_step=2, gamma=0.9)
    for j in range(1, 13):  # Frame 6 ends a game by time limit (no terminal).
        memory.add(np.array([[j]], np.float32), np.array([j]), np.array([1.0]),
                   np.array([False]), np.array([j == 6]))
    valid, *_ = memory._horizon(np.zeros(4, int), np.array([3, 4, 5, 6]))
    assert valid.tolist() == [True, False, False, True]
    for _ in range(50):
        batch = memory.sample(16)
        assert not np.isin(batch.s_tm1[:, 0], [5, 6]).any()


def test_wrap_around_overwrites_oldest_and_keeps_room_for_stacks():
    memory = ReplayMemory(10, (84, 84), history_length=4)
    add_frames(memory, range(1, 26))  # Slots now hold frames 16..25.
    assert len(memory) == 10
    low, high = memory._index_ranges()
    assert (low[0], high[0]) == (15 + 3, 25 - 1 - 1)
    stacks = memory.stacks(np.array([0]), np.array([19]))  # Frame 20 across the seam.
    assert stacks[0, :, 0, 0].tolist() == [17, 18, 19, 20]
    for _ in range(20):
        batch = memory.sample(32)
        newest = batch.s_tm1[:, -1, 0, 0]
        assert newest.min() >= 19 and newest.max() <= 24
        assert (batch.s_t[:, -1, 0, 0] == newest + 1).all()


def test_sample_before_enough_data_raises():
    memory = ReplayMemory(10, (84, 84))
    add_frames(memory, [1])
    with pytest.raises(RuntimeError):
        memory.sample(1)


def naive_transition(records, i, history, n_step, gamma, oldest):
    """Reference semantics over a plain list of (value, action, reward, terminal, end)."""
    def stack(j):
        out = []
        for d in range(history - 1, -1, -1):
            k = j - d
            ended = any(records[m][4] for m in range(max(k, 0), j))
            out.append(0.0 if k < 0 or ended else records[k][0])
        return out
    if i < (oldest + history - 1 if oldest > 0 else 0) or i + n_step > len(records) - 1:
        return None
    ret, discount, nxt = 0.0, gamma ** n_step, i + n_step
    for k in range(n_step):
        value, _, reward, terminal, end = records[i + k]
        ret += gamma ** k * reward
        if terminal:
            discount, nxt = 0.0, i + k + 1
            break
        if end:
            return None
    return (tuple(stack(i)), records[i][1], ret, discount, tuple(stack(nxt)))


@pytest.mark.parametrize("history,n_step,num_envs", [(4, 1, 1), (1, 1, 1), (4, 3, 1),
                                                     (2, 3, 3)])
def test_random_episodes_match_naive_reference(history, n_step, num_envs):
    rng = np.random.default_rng(history * 100 + n_step * 10 + num_envs)
    capacity, gamma = 60 * num_envs, 0.9
    memory = ReplayMemory(capacity, (1,), np.float32, history_length=history, n_step=n_step,
                          gamma=gamma, num_envs=num_envs, seed=1)
    records = [[] for _ in range(num_envs)]
    for _ in range(400):
        mask = rng.random(num_envs) < 0.8
        values = np.array([[1000.0 * e + len(records[e]) + 1] for e in range(num_envs)],
                          np.float32)
        actions = rng.integers(0, 5, num_envs)
        rewards = rng.normal(size=num_envs).astype(np.float32)
        terminal = rng.random(num_envs) < 0.08
        end = terminal & (rng.random(num_envs) < 0.5) | (rng.random(num_envs) < 0.04)
        memory.add(values, actions, rewards, terminal, end, env_mask=mask)
        for e in np.flatnonzero(mask):
            records[e].append((float(values[e, 0]), int(actions[e]), float(rewards[e]),
                               bool(terminal[e]), bool(end[e])))
        if rng.random() < 0.1 and memory.can_sample():
            batch = memory.sample(16)
            for b in range(16):
                newest = batch.s_tm1[b][-1] if history == 1 else batch.s_tm1[b].reshape(-1)[-1]
                e, i = divmod(int(newest) - 1, 1000)
                oldest = max(0, len(records[e]) - memory.segment_capacity)
                expected = naive_transition(records[e], i, history, n_step, gamma, oldest)
                assert expected is not None, f"sampled an invalid index {i} of env {e}"
                got = (tuple(batch.s_tm1[b].tolist()), int(batch.a_tm1[b]),
                       float(batch.r_t[b]), float(batch.discount_t[b]),
                       tuple(batch.s_t[b].tolist()))
                assert got[0] == expected[0] and got[1] == expected[1]
                np.testing.assert_allclose(got[2:4], expected[2:4], rtol=1e-5, atol=1e-6)
                assert got[4] == expected[4]


def test_sampling_is_uniform_over_valid_indices():
    memory = ReplayMemory(1000, (1,), np.float32, history_length=1, seed=0)
    add_frames(memory, range(1, 102))  # 100 sampleable indices.
    counts = np.bincount(memory.sample(50_000).s_tm1[:, 0].astype(int), minlength=102)[1:101]
    assert counts.min() > 380 and counts.max() < 620  # Expect 500 each.


def random_adds(memory, rng, steps):
    """Random lockstep adds (some envs idle) with terminals and truncations."""
    for _ in range(steps):
        e = memory.num_envs
        mask = rng.random(e) < 0.8
        values = np.array([[1000.0 * i + memory.num_added[i] + 1] for i in range(e)],
                          np.float32)
        terminal = rng.random(e) < 0.08
        end = terminal & (rng.random(e) < 0.5) | (rng.random(e) < 0.04)
        memory.add(values, rng.integers(0, 5, e), rng.normal(size=e).astype(np.float32),
                   terminal, end, env_mask=mask)


def reference_sampleable(memory):
    """Every (env, index) `naive_transition` accepts, from the stored records alone."""
    keys = set()
    c = memory.segment_capacity
    for e in range(memory.num_envs):
        n = int(memory.num_added[e])
        oldest = max(0, n - c)
        records = [None] * n
        for j in range(oldest, n):
            s = j % c
            records[j] = (float(memory.frames[e, s, 0]), int(memory.action[e, s]),
                          float(memory.reward[e, s]), bool(memory.terminal[e, s]),
                          bool(memory.episode_end[e, s]))
        for i in range(oldest, n):
            try:
                ok = naive_transition(records, i, memory.history_length, memory.n_step,
                                      memory.gamma, oldest) is not None
            except TypeError:  # Its stack reaches a record that is gone: not sampleable.
                ok = False
            if ok:
                keys.add(e * c + i % c)
    return keys


@pytest.mark.parametrize("history,n_step,num_envs", [(4, 1, 1), (2, 3, 3), (1, 1, 2)])
def test_prioritized_mass_sits_exactly_on_sampleable_transitions(history, n_step, num_envs):
    rng = np.random.default_rng(7)
    memory = ReplayMemory(40 * num_envs, (1,), np.float32, history_length=history,
                          n_step=n_step, gamma=0.9, num_envs=num_envs, seed=1,
                          prioritized=True)
    # Reads of the tree after 1 to 55 adds (more than a segment holds): the tree is
    # brought up to date lazily, whatever happened in between.
    for steps in (1, 10, 3, 1, 55, 10, 2, 10, 10, 41, 1, 10, 10):
        random_adds(memory, rng, steps)
        if memory.can_sample():
            batch = memory.sample(8, importance_exponent=0.5)
            memory.update_priorities(batch.key, rng.random(8) * 3)
            updated = memory.priorities()
            random_adds(memory, rng, 1)  # Overwrites one slot per env at most.
            written = {e * memory.segment_capacity + (memory.num_added[e] - 1) %
                       memory.segment_capacity for e in range(num_envs)}
            kept = [k for k in set(batch.key.tolist()) - written
                    if k in reference_sampleable(memory)]
            np.testing.assert_array_equal(memory.priorities()[kept], updated[kept])
        has_mass = set(np.flatnonzero(memory.priorities() > 0).tolist())
        assert has_mass == reference_sampleable(memory)


def test_prioritized_batches_weights_and_priority_updates_against_numpy():
    memory = ReplayMemory(200, (1,), np.float32, history_length=1, seed=3, prioritized=True,
                          priority_exponent=0.6, priority_epsilon=0.01)
    add_frames(memory, range(1, 101))
    assert np.unique(memory.priorities()[memory.priorities() > 0]).tolist() == [1.0]
    batch = memory.sample(32)
    errors = np.linspace(0.0, 4.0, 32)
    memory.update_priorities(batch.key, errors)
    expected = (errors + 0.01) ** 0.6  # Schaul et al.: p = (|delta| + eps)^alpha.
    last = {k: v for k, v in zip(batch.key, expected)}  # A key drawn twice: its last error.
    got = memory.priorities()
    for key, value in last.items():
        assert got[key] == pytest.approx(value)
    assert memory.max_priority == pytest.approx(expected.max())
    add_frames(memory, range(101, 103))  # Index 100 is now complete: max priority.
    assert memory.priorities()[100] == pytest.approx(expected.max())
    # Weights: w_i = (N P(i))^-beta / max_j w_j, in NumPy from the tree's leaves.
    batch = memory.sample(64, importance_exponent=0.4)
    leaves = memory.priorities()
    p = leaves[batch.key] / leaves.sum()
    n = np.count_nonzero(leaves)
    w = (n * p) ** -0.4
    np.testing.assert_allclose(batch.weight, w / w.max(), rtol=1e-5)
    # Sampled frequencies follow the priorities: the highest is drawn most.
    draws = np.concatenate([memory.sample(32).key for _ in range(500)])
    top = max(last, key=last.get)
    assert np.mean(draws == top) > 5 * np.mean(draws == min(last, key=last.get))


def test_rebuild_priorities_keeps_mass_only_where_it_may_be():
    memory = ReplayMemory(30, (1,), np.float32, history_length=2, n_step=2, seed=0,
                          prioritized=True)
    random_adds(memory, np.random.default_rng(1), 70)
    saved = memory.priorities()
    expected = reference_sampleable(memory)
    memory.rebuild_priorities(np.full_like(saved, 2.0))  # E.g. read from a checkpoint.
    assert set(np.flatnonzero(memory.priorities()).tolist()) == expected
    memory.rebuild_priorities(None)  # A replay restored without its tree.
    assert set(np.flatnonzero(memory.priorities()).tolist()) == expected
    assert set(np.unique(memory.priorities()).tolist()) <= {0.0, memory.max_priority}


def test_end_open_episodes_makes_a_resume_boundary_a_truncation():
    """A resumed run starts new games: the interrupted game's last transition must not
    bootstrap from the new game's first frame, and no stack may mix the two games."""
    memory = ReplayMemory(100, (84, 84), history_length=4, n_step=1)
    add_frames(memory, range(1, 8))  # Game A: frames 1..7, still running at the checkpoint.
    memory.unsaved_from[:] = memory.num_added  # As just restored: all of it is on disk.
    memory.end_open_episodes()
    assert memory.episode_end[0, 6] and not memory.terminal[0, 6]
    assert memory.unsaved_from[0] == 6  # That slot changed: the next checkpoint rewrites it.
    add_frames(memory, range(101, 110))  # Game B after the resume.
    valid, *_ = memory._horizon(np.zeros(2, int), np.array([5, 6]))
    assert valid.tolist() == [True, False]  # Index 6 (frame 7) would bootstrap from B.
    stack = memory.stacks(np.array([0]), np.array([8]))  # B's second frame.
    assert stack[0, :, 0, 0].tolist() == [0, 0, 101, 102]
    for _ in range(30):
        batch = memory.sample(32)
        stacks, newest = batch.s_tm1[:, :, 0, 0], batch.s_tm1[:, -1, 0, 0]
        in_a = (stacks >= 1) & (stacks <= 7)  # Game A's frames (0 is padding).
        assert not (in_a[:, -1] & (batch.s_t[:, -1, 0, 0] > 100)).any()  # Never A -> B.
        assert not (in_a & (newest[:, None] > 100)).any()  # No A frame in a B stack.


def test_end_open_episodes_leaves_ended_games_and_empty_envs_alone():
    memory = ReplayMemory(100, (1,), np.float32, history_length=1, num_envs=3)
    mask = np.array([True, True, False])
    for j in range(4):
        memory.add(np.full((3, 1), j, np.float32), np.zeros(3), np.zeros(3),
                   np.zeros(3, bool), np.array([False, j == 3, False]), env_mask=mask)
    memory.unsaved_from[:] = memory.num_added
    memory.end_open_episodes()
    assert memory.episode_end[0, 3] and memory.unsaved_from.tolist() == [3, 4, 0]


def test_end_open_episodes_of_some_streams_ends_only_theirs():
    """A restarted remote actor ends its own streams' games; the others play on."""
    memory = ReplayMemory(100, (1,), np.float32, history_length=1, num_envs=4)
    for j in range(3):
        memory.add(np.full((4, 1), j, np.float32), np.zeros(4), np.zeros(4),
                   np.zeros(4, bool), np.zeros(4, bool))
    memory.end_open_episodes(streams=np.array([2, 3]))
    assert memory.episode_end[:, 2].tolist() == [False, False, True, True]
    assert memory.episode_end[:, :2].sum() == 0


def test_a_partly_restored_memory_samples_only_what_it_holds():
    memory = ReplayMemory(100, (1,), np.float32, history_length=2, n_step=1)
    add_frames(memory, range(1, 41))
    memory.restored_from[:] = 30  # Transitions 0..29 were lost on restore.
    assert len(memory) == 10
    low, high = memory._index_ranges()
    assert (low[0], high[0]) == (31, 38)  # Room for a full stack above the loss.
    assert memory.sample(256).s_tm1.min() >= 31


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
