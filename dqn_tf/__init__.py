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

Importing the package imports no TensorFlow: the modules that use it import it through
`tensorflow_startup` (once, quietly), so `dqn_tf.sweep` and `dqn_tf.report`, and the Ray
workers of a sweep, start without it.
"""

__version__ = "0.2.0"

