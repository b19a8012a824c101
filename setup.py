"""dqn_tf: DQN (Mnih et al., 2015) in TensorFlow 2 / Keras 3."""

from setuptools import setup

MODULES = ["agent", "atari_env", "checkpointing", "config", "errors", "evaluate", "export",
           "history", "main", "networks", "optimizers", "protocols", "replay", "replay_store",
           "run_loop", "schedules", "seeding", "summaries", "threads"]

setup(
    name="dqn_tf",
    version="0.1.0",
    description="A readable, fast DQN for Atari in TensorFlow 2 / Keras 3.",
    packages=["dqn_tf"],
    python_requires=">=3.10",
    install_requires=[
        # CPU build; on a CUDA machine install `tensorflow[and-cuda]==2.21.*` instead.
        "tensorflow-cpu==2.21.*",
        "tensorboard==2.21.*",  # tf.summary needs it; tensorflow-cpu does not pull it in.
        "gymnasium>=1.2,<2",
        "ale-py>=0.11,<0.13",  # Ships the Atari ROMs: no AutoROM step.
        "numpy>=1.26",
        "absl-py>=2.1",
        "opencv-python-headless>=4.10",  # No GUI libraries needed on servers.
        "tqdm>=4.66",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",  # Bundles an ffmpeg binary for MP4 videos.
    ],
    extras_require={"test": ["pytest>=8"]},
)
