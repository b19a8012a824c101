"""TensorFlow, imported once and quietly: every dqn_tf module that uses TensorFlow or
Keras imports this module first (`from dqn_tf import tensorflow_startup`), so that TF's
start-up lines that say nothing is wrong never reach the user, and real warnings do.
"""

import glob
import importlib.metadata
import os
import sys
import tempfile

# Lines TensorFlow writes to stderr while it loads, before its logging is set up (so
# TF_CPP_MIN_LOG_LEVEL cannot hide them), that say nothing is wrong. Anything else
# it writes is passed on.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",  # Printed once per TF library: twice.
    "Could not find cuda drivers on your machine, GPU will not be used",
)


def startup_lines_to_keep(text: str, no_gpu_wanted: bool) -> list:
    """The lines of TF's start-up output that are not `_STARTUP_NOISE` (nor a failed
    cuInit, when no GPU is wanted)."""
    noise = _STARTUP_NOISE + (("failed call to cuInit",) if no_gpu_wanted else ())
    return [line for line in text.splitlines()
            if line.strip() and not any(n in line for n in noise)]


def _no_gpu_wanted() -> bool:
    """No NVIDIA device on this machine, or the user hid them: a failed cuInit is noise."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return hidden or not glob.glob("/dev/nvidia[0-9]*")


def import_tensorflow() -> None:
    """Imports TensorFlow and finds its devices, with their start-up noise removed from
    stderr and real warnings kept.

    TF's C++ code writes straight to file descriptor 2, so the descriptor is pointed at
    a temporary file meanwhile and the kept lines are written back afterwards. On a
    machine with CUDA's driver library but no GPU (or with GPUs hidden), TF's failed
    `cuInit` is logged as an error (E0000 ... failed call to cuInit): that line is
    dropped too, and kept where a GPU exists, where it is a real problem.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # C++ INFO logs off, warnings on.
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
            tensorflow.config.list_physical_devices()  # Initialises CUDA, if any, now.
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = startup_lines_to_keep(captured.read().decode(errors="replace"),
                                         _no_gpu_wanted())
            if kept:
                print("\n".join(kept), file=sys.stderr)
    _warn_about_two_tensorflows()


def _warn_about_two_tensorflows() -> None:
    """Two TensorFlow distributions overwrite each other's tensorflow/ directory."""
    installed = []
    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu"):
        try:
            importlib.metadata.version(name)
            installed.append(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        print(f"warning: {' and '.join(installed)} are both installed and share the "
              "tensorflow/ directory; keep one: pip uninstall -y "
              f"{' '.join(installed)} && pip install -e . (README: GPU)", file=sys.stderr)


import_tensorflow()
