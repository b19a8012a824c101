"""Connecting to Ray, for the two parts of dqn_tf that use it (`sweep`, `distributed`).

With no address, Ray starts on this machine and listens on 127.0.0.1 only; with one
("auto", "host:6379", "ray://host:10001"), the process joins that cluster.
"""

import os

from dqn_tf.errors import UserInputError


def connect(address: str, num_cpus: int, what: str):
    """Initialises Ray and returns the `ray` module. Ray's SIGTERM handler replaces the
    caller's: a caller that catches SIGTERM installs its handler again afterwards.

    Args:
      address: an existing cluster, or "" to start one here.
      num_cpus: CPUs a cluster started here offers (ignored with an address).
      what: the flag that needs Ray, for the error if it is not installed.

    Raises:
      UserInputError: Ray is not installed, or the cluster at `address` is not reachable.
    """
    if not address:  # Read when Ray is imported: set before (../shared/notes/ray.md).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # 127.0.0.1 only.
    try:
        import ray
    except ImportError:
        raise UserInputError(f"{what} needs Ray: pip install -e \".[ray]\"") from None
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as error:
            raise UserInputError(f"--ray_address={address}: no Ray cluster there ({error}); "
                                 "start one with `ray start --head` or leave --ray_address "
                                 "empty to start Ray here") from None
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 2**20)
    return ray


def address_for_children(ray) -> str:
    """The address a process started inside this cluster (on any node) joins it by."""
    return ray.get_runtime_context().gcs_address
