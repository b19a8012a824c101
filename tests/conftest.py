"""Shared pytest fixtures, the temp folder of the tests and their subprocesses, and the
order in which the two xdist workers are handed the tests."""

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def temp_files_inside_pytests_directory(tmp_path_factory):
    """TMPDIR of this process and of the processes it starts: a directory of pytest's,
    removed with the test directories when the run passes. TensorFlow's autograph writes
    a `__autograph_generated_file*.py` per traced function into the temp folder and does
    not always remove it (a run of the suite left 58 of them in /tmp), and Ray left its
    session directories in /tmp/ray."""
    directory = str(tmp_path_factory.mktemp("tmp"))
    # Ray's session directory holds AF_UNIX sockets, whose paths may not exceed 107
    # bytes: a short directory of its own in the system temp folder, removed at the end.
    ray_directory = tempfile.mkdtemp(prefix="ray-")
    saved = {name: os.environ.get(name)
             for name in ("TMPDIR", "RAY_TMPDIR", "RAY_worker_niceness")}
    saved_tempdir = tempfile.tempdir
    os.environ.update(TMPDIR=directory, RAY_TMPDIR=ray_directory,
                      # Ray runs its workers at nice 15: beside the other xdist worker's
                      # tests they starved. At 0 they share the cores evenly. (A killed
                      # actor that never came back was Ray's restart losing the request in
                      # flight: dqn_tf/distributed.py replaces actors itself.)
                      RAY_worker_niceness="0")
    tempfile.tempdir = directory
    yield directory
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = saved_tempdir
    shutil.rmtree(ray_directory, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_cartpole(tmp_path_factory):
    """One CartPole training run from flags/cartpole.cfg: (run directory, result dict).
    Its users share an xdist_group, so that one worker trains it once."""
    from tests.main_test import train_with_preset
    out = str(tmp_path_factory.mktemp("cartpole") / "run")
    return out, train_with_preset("cartpole.cfg", output_dir=out, progress=False)


def pytest_collection_modifyitems(config, items):
    """Slow tests first (in file order otherwise): the xdist workers take tests in this
    order, and a long test handed out last would run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
