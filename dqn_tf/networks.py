"""Q-networks: the Nature CNN (Mnih et al., 2015) and an MLP for vector observations.

Both map a batch of stacked states to Q-values [B, num_actions] float32. The CNN
takes uint8 pixels and scales them to [0, 1] inside the model, so replay memory
and the SavedModel stay uint8 (4x smaller than float32).
"""

from typing import Sequence

import keras

NATURE_DQN_STACK_SIZE = 4


def nature_cnn(num_actions: int, input_shape: tuple = (NATURE_DQN_STACK_SIZE, 84, 84),
               name: str = "nature_cnn") -> keras.Model:
    """Conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, dense 512, dense |A|; ReLU.

    Args:
      num_actions: size of the output layer.
      input_shape: (H, 84, 84) uint8 stacked frames, oldest first (see
        `history.stack_shape`). The graph moves H last for TF's CPU convolutions.
    """
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="stacked_frames")
    # Scale to float before moving H last: a uint8 transpose makes oneDNN log an error
    # line ("supports DT_UINT8 only on platforms with AVX-512") and fall back anyway.
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Permute((2, 3, 1), name="history_last")(x)
    x = keras.layers.Conv2D(32, 8, strides=4, activation="relu")(x)
    x = keras.layers.Conv2D(64, 4, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=1, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    q_values = keras.layers.Dense(num_actions, name="q_values")(x)
    return keras.Model(inputs, q_values, name=name)


def mlp(num_actions: int, input_shape: tuple, hidden_sizes: Sequence[int] = (64, 64),
        name: str = "mlp") -> keras.Model:
    """Fully connected ReLU layers of `hidden_sizes`, then a linear |A| output.

    Args:
      num_actions: size of the output layer.
      input_shape: (D,) float32 stacked observation vectors.
      hidden_sizes: widths of the hidden layers.
    """
    inputs = keras.Input(shape=input_shape, dtype="float32", name="observations")
    x = inputs
    for width in hidden_sizes:
        x = keras.layers.Dense(width, activation="relu")(x)
    q_values = keras.layers.Dense(num_actions, name="q_values")(x)
    return keras.Model(inputs, q_values, name=name)


def q_network(num_actions: int, state_shape: tuple, hidden_sizes: Sequence[int] = (64, 64),
              name: str = "q_network") -> keras.Model:
    """The CNN for image states (3-D `state_shape`), the MLP for vector states (1-D)."""
    if len(state_shape) == 3:
        return nature_cnn(num_actions, state_shape, name=name)
    return mlp(num_actions, state_shape, hidden_sizes, name=name)
