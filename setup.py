"""dqn_tf: DQN (Mnih et al., 2015) in TensorFlow 2 / Keras 3."""

from setuptools import setup

MODULES = ["agent", "atari_env", "augmentation", "checkpointing", "config", "distributed",
           "errors", "evaluate", "export", "history", "main", "networks", "optimizers", "plot",
           "protocols", "ray_cluster", "replay", "replay_store", "report", "results",
           "run", "run_directory", "run_loop", "schedules", "seeding", "sum_tree", "summaries", "sweep",
           "tensorflow_startup", "threads", "timestep", "training"]

setup(
    name="dqn_tf",
    version="0.1.0",
    description="A readable, fast DQN for Atari in TensorFlow 2 / Keras 3.",
    packages=["dqn_tf"],
    python_requires=">=3.10",
    install_requires=[
        # One TensorFlow distribution, for CPU and GPU alike: `tensorflow` runs on x86-64
        # CPUs with AVX, and the `and-cuda` extra below adds NVIDIA's CUDA libraries to the
        # same package. (`tensorflow-cpu` plus `tensorflow[and-cuda]` would be two
        # distributions writing the same tensorflow/ directory.)
        "tensorflow==2.21.*",
        # dqn_tf.optimizers builds on Keras's optimizer internals: tested on 3.12-3.15.
        "keras>=3.12,<3.16",
        "tensorboard==2.21.*",  # tf.summary needs it.
        "gymnasium>=1.2,<2",
        # Ships the Atari ROMs. 0.11's vector env counts the frame cap in agent steps
        # and ignores seed 0.
        "ale-py>=0.12.1,<0.13",
        "numpy>=1.26",
        "absl-py>=2.1",
        "opencv-python-headless>=4.10",  # No GUI libraries needed on servers.
        "tqdm>=4.66",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",  # Bundles an ffmpeg binary for MP4 videos.
        "matplotlib>=3.8",  # dqn_tf.plot's learning curves.
    ],
    extras_require={
        "and-cuda": ["tensorflow[and-cuda]==2.21.*"],  # `pip install -e ".[and-cuda]"`
        # Sweeps and distributed actors (`pip install -e ".[ray]"`); the rest of dqn_tf
        # imports without it.
        "ray": ["ray==2.60.*"],
        # dqn_tf.report's bootstrap intervals (`pip install -e ".[report]"`). rliable 1.2
        # needs arch < 8, whose 7.x releases break on pandas 3 (deprecate_kwarg).
        "report": ["rliable==1.2.*", "pandas<3"],
        # The suite runs on two pytest-xdist workers (pytest.ini); LiteRT's interpreter
        # runs the TFLite conversion of a SavedModel (tf.lite.Interpreter is deprecated);
        # ruff's pyflakes rules find names used but undefined or shadowed.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ray==2.60.*", "rliable==1.2.*",
                 "pandas<3", "ai-edge-litert>=2.3", "ruff>=0.6"],
    },
)
