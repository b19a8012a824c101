"""dqn_tf: DQN (Mnih et al., Nature 2015) in TensorFlow 2 / Keras 3.

Modules, in data-flow order:
  atari_env   gymnasium/ALE games -> batched TimeStep of preprocessed frames.
  history     the last `history_length` frames per env, for acting.
  replay      frame-once circular replay memory, stacks rebuilt by index.
  networks    Nature CNN and MLP Q-networks (Keras).
  schedules   epsilon schedules.
  agent       the update step (tf.function), epsilon-greedy acting, the DqnAgent.
  run_loop    the actor/env event stream and episode statistics.
  summaries   TensorBoard writing.
  checkpointing  resumable run state on disk.
  export / evaluate  SavedModel of the greedy policy, and playing it.
  config      absl flags -> frozen Config.
  main        `python -m dqn_tf.main`.
"""

__version__ = "0.1.0"
