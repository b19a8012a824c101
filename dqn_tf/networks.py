"""Q-networks: an encoder, then a head, as Keras models.

  image states [B, H, 84, 84] uint8 -> /255, H moved last -> encoder -> dense 512 ReLU
  vector states [B, D] float32      -> the MLP's hidden layers
  -> head: Q-values [B, A], or quantiles [B, A, N] (QR-DQN, Dabney et al., 2018)

Encoders:
  nature   conv 32x8x8/4, 64x4x4/2, 64x3x3/1 (Mnih et al., 2015)
  impala   three stacks of conv 3x3 (16, 32, 32 channels), max-pool 3x3/2 and two
           residual blocks each (Espeholt et al., 2018), as Dopamine's ImpalaEncoder
           (dopamine/jax/networks.py): 11x11x32 features

Heads (`q_values` turns either into [B, A] Q-values):
  plain    dense |A| (x N quantiles)
  dueling  value (x N) and advantage (|A| x N) streams from the shared 512 features,
           Q = V + A - mean_a A (Wang et al., 2016); one shared hidden layer as
           Dopamine's FullRainbowNetwork, where Wang et al. gave each stream its own

The CNN takes uint8 pixels and scales them inside the model, so replay memory and
the SavedModel stay uint8 (4x smaller than float32).
"""

from typing import Sequence

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import keras
import tensorflow as tf

NATURE_DQN_STACK_SIZE = 4
ENCODERS = ("nature", "impala")


def q_values(outputs: tf.Tensor) -> tf.Tensor:
    """[B, A] Q-values from a network's outputs: themselves, or the mean of quantiles."""
    return tf.reduce_mean(outputs, axis=-1) if outputs.shape.rank == 3 else outputs


class DuelingAggregation(keras.layers.Layer):
    """Q = V + A - mean_a A, per quantile: value [B, 1, N], advantage [B, A, N]."""

    def call(self, value, advantage):
        return value + advantage - keras.ops.mean(advantage, axis=1, keepdims=True)


def _nature_encoder(x):
    x = keras.layers.Conv2D(32, 8, strides=4, activation="relu")(x)
    x = keras.layers.Conv2D(64, 4, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=1, activation="relu")(x)
    return keras.layers.Flatten()(x)


def _impala_encoder(x):
    for channels in (16, 32, 32):
        x = keras.layers.Conv2D(channels, 3, padding="same")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
        for _ in range(2):  # Residual blocks: x + conv(relu(conv(relu(x)))).
            y = keras.layers.ReLU()(x)
            y = keras.layers.Conv2D(channels, 3, padding="same")(y)
            y = keras.layers.ReLU()(y)
            y = keras.layers.Conv2D(channels, 3, padding="same")(y)
            x = keras.layers.Add()([x, y])
    x = keras.layers.ReLU()(x)
    return keras.layers.Flatten()(x)


def _head(features, num_actions: int, num_quantiles: int, dueling: bool):
    n = max(num_quantiles, 1)
    if dueling:
        value = keras.layers.Dense(n, name="value")(features)
        advantage = keras.layers.Dense(num_actions * n, name="advantage")(features)
        outputs = DuelingAggregation(name="dueling")(
            keras.layers.Reshape((1, n))(value),
            keras.layers.Reshape((num_actions, n))(advantage))
        return outputs if num_quantiles else keras.layers.Reshape((num_actions,))(outputs)
    if not num_quantiles:
        return keras.layers.Dense(num_actions, name="q_values")(features)
    outputs = keras.layers.Dense(num_actions * n, name="quantiles")(features)
    return keras.layers.Reshape((num_actions, n))(outputs)


def q_network(num_actions: int, state_shape: tuple, *, encoder: str = "nature",
              num_quantiles: int = 0, dueling: bool = False,
              mlp_hidden_sizes: Sequence[int] = (64, 64),
              name: str = "q_network") -> keras.Model:
    """The Q-network for states of `state_shape`.

    Args:
      num_actions: |A|.
      state_shape: (H, 84, 84) uint8 stacked frames, oldest first (see
        `history.stack_shape`), or (D,) float32 vectors.
      encoder: one of `ENCODERS`, for image states.
      num_quantiles: 0 for a Q-value head [B, A], else N quantiles [B, A, N].
      dueling: value and advantage streams.
      mlp_hidden_sizes: hidden widths for vector states.
      name: the model's name.
    """
    image = len(state_shape) == 3
    inputs = keras.Input(shape=state_shape, dtype="uint8" if image else "float32",
                         name="stacked_frames" if image else "observations")
    if image:
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODERS}")
        # Scale to float before moving H last: a uint8 transpose makes oneDNN log an
        # error line ("supports DT_UINT8 only on platforms with AVX-512") and fall back.
        x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
        x = keras.layers.Permute((2, 3, 1), name="history_last")(x)
        x = _nature_encoder(x) if encoder == "nature" else _impala_encoder(x)
        x = keras.layers.Dense(512, activation="relu")(x)
    else:
        x = inputs
        for width in mlp_hidden_sizes:
            x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, _head(x, num_actions, num_quantiles, dueling), name=name)


def from_run_config(run_config: dict, num_actions: int, state_shape: tuple,
                    name: str) -> keras.Model:
    """The network a run's config describes (`dataclasses.asdict(Config)` or the
    run's config.json): its encoder, head and MLP widths. A run made before a field
    existed gets the field's default (the network it had then)."""
    head = run_config.get("head", "plain")
    return q_network(
        num_actions, state_shape, encoder=run_config.get("encoder", "nature"),
        dueling=run_config.get("dueling", False),
        num_quantiles=run_config["num_quantiles"] if head == "quantile" else 0,
        mlp_hidden_sizes=run_config["mlp_hidden_sizes"], name=name)


def nature_cnn(num_actions: int, input_shape: tuple = (NATURE_DQN_STACK_SIZE, 84, 84),
               name: str = "nature_cnn") -> keras.Model:
    """Mnih et al. (2015): the Nature encoder, dense 512, dense |A|; ReLU."""
    return q_network(num_actions, input_shape, name=name)


def mlp(num_actions: int, input_shape: tuple, hidden_sizes: Sequence[int] = (64, 64),
        name: str = "mlp") -> keras.Model:
    """Fully connected ReLU layers of `hidden_sizes`, then a linear |A| output."""
    return q_network(num_actions, input_shape, mlp_hidden_sizes=hidden_sizes, name=name)
