"""dqn_tf: DQN (Mnih et al., Nature 2015) in TensorFlow 2 / Keras 3.

Modules, in data-flow order:
  atari_env   gymnasium/ALE games -> batched TimeStep (timestep) of preprocessed frames.
  history     the last `history_length` frames per env, for acting.
  run_loop    the epsilon-greedy actor, the actor/env event stream, episode statistics,
              and TransitionRecorder: TimeSteps -> replay rows, each frame once.
  replay      frame-once circular replay memory, stacks rebuilt by index; sum_tree for
              prioritized sampling; replay_store: the replay on disk.
  networks    Nature CNN, IMPALA ResNet and MLP Q-networks (Keras); plain, dueling or
              quantile heads.
  schedules, seeding, optimizers  epsilon and beta schedules; random streams from
              --seed; the RMSProp / Adam presets.
  augmentation  DrQ's random shift (and intensity noise) of sampled states, in the update.
  agent       the update step (tf.function); Learner (replay, networks, counters) and
              DqnAgent (a learner and its actor in one process).
  training    what a run's loops share: restore, outputs, evaluation, checkpoints.
  run         a run: locks, signals, and the single-process loop or `distributed`'s
              remote actors on Ray (--num_actors).
  summaries, results, plot  TensorBoard, results files, learning curves.
  report      a benchmark's human-normalised aggregates with bootstrap intervals.
  checkpointing  resumable run state on disk.
  export / evaluate / protocols  SavedModel of the greedy policy, playing it, and the
              published evaluation protocols and score tables.
  config      absl flags -> frozen Config.
  main        `python -m dqn_tf.main`; sweep: `python -m dqn_tf.sweep` (ray_cluster).

Importing the package imports TensorFlow once, quietly (`_import_tensorflow`).
"""

import glob
import importlib.metadata
import os
import sys
import tempfile

__version__ = "0.2.0"

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


def _import_tensorflow() -> None:
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


_import_tensorflow()
