"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def trained_cartpole(tmp_path_factory):
    """One CartPole training run from flags/cartpole.cfg: (run directory, result dict)."""
    from tests.main_test import train_with_preset
    out = str(tmp_path_factory.mktemp("cartpole") / "run")
    return out, train_with_preset("cartpole.cfg", output_dir=out, progress=False)
