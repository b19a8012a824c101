"""Image augmentation of sampled states inside the traced update (DrQ).

  none             states as sampled
  shift            DrQ's random shift (Kostrikov et al., 2020): pad each side by 4
                   pixels, replicating the edge, and crop 84x84 back at a random offset;
                   one offset per state (its H frames move together), drawn anew for
                   every state of every batch, s_tm1 and s_t independently
  shift_intensity  the shift, then Dopamine's intensity noise: the [0, 1]-scaled
                   state times 1 + 0.05 clip(N(0, 1), -2, 2), one draw per state
                   (`drq_image_augmentation` in google/dopamine@5873f54:
                   dopamine/labs/atari_100k/atari_100k_rainbow_agent.py, which DrQ_eps.gin
                   turns on with Atari100kRainbowAgent.data_augmentation = True)

Padding by replicating the edge and cropping at offset c in [0, 2 pad] is a gather
of rows (and columns) clip(i + c - pad, 0, 83): `shift` does that with no padded
copy, on the network's own float images (`split`). The draws come from a `tf.random.Generator` the learner checkpoints, so
a resumed run draws what an uninterrupted one would.
"""

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import keras
import tensorflow as tf

AUGMENTATIONS = ("none", "shift", "shift_intensity")
SHIFT_PAD = 4  # pixels (DrQ)
INTENSITY_SCALE = 0.05  # Dopamine's _intensity_aug


def shift(images: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
    """Shifts each image by its (row, column) offset, replicating the edge.

    Args:
      images: [B, R, C, ...] (channels last, any dtype).
      offsets: [B, 2] int32 row and column offsets; out[b, i, j] =
        images[b, clip(i + offsets[b, 0], 0, R - 1), clip(j + offsets[b, 1], 0, C - 1)].

    Returns:
      [B, R, C, ...], the dtype of `images`.
    """
    size = tf.shape(images)
    rows = tf.clip_by_value(tf.range(size[1])[None, :] + offsets[:, 0:1], 0, size[1] - 1)
    cols = tf.clip_by_value(tf.range(size[2])[None, :] + offsets[:, 1:2], 0, size[2] - 1)
    shifted = tf.gather(images, rows, axis=1, batch_dims=1)  # [B, R, C, ...]
    return tf.gather(shifted, cols, axis=2, batch_dims=1)


def random_shift(images: tf.Tensor, generator: tf.random.Generator,
                 pad: int = SHIFT_PAD) -> tf.Tensor:
    """`shift` by offsets drawn uniformly from {-pad, ..., pad}, per image and axis."""
    offsets = generator.uniform([tf.shape(images)[0], 2], minval=-pad, maxval=pad + 1,
                                dtype=tf.int32)
    return shift(images, offsets)


def random_intensity(images: tf.Tensor, generator: tf.random.Generator,
                     scale: float = INTENSITY_SCALE) -> tf.Tensor:
    """[B, ...] float32 images in [0, 1] times 1 + scale clip(N(0, 1), -2, 2), per image."""
    noise = tf.clip_by_value(generator.normal([tf.shape(images)[0]]), -2.0, 2.0)
    factor = 1.0 + scale * noise
    return images * tf.reshape(factor, [-1] + [1] * (images.shape.rank - 1))


PREPROCESSED = "history_last"  # networks.q_network's last preprocessing layer


def split(network: keras.Model) -> tuple:
    """An image network as (preprocess, body), two Keras models over its own layers:
    preprocess takes [B, H, 84, 84] uint8 states to [B, 84, 84, H] float32 images in
    [0, 1] (no variables), body takes those images to the network's outputs (the
    network's variables). The update augments the images between the two: gathers of
    whole pixels there cost less than of bytes in the uint8 layout, and intensity
    noise needs floats anyway."""
    images = network.get_layer(PREPROCESSED).output
    return (keras.Model(network.input, images, name=f"{network.name}_preprocess"),
            keras.Model(images, network.output, name=f"{network.name}_body"))


def augment_images(images: tf.Tensor, augment: str,
                   generator: tf.random.Generator) -> tf.Tensor:
    """[B, 84, 84, H] float32 images in [0, 1] -> augmented, with fresh draws at each call."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {AUGMENTATIONS}")
    if augment == "none":
        return images
    shifted = random_shift(images, generator)
    return random_intensity(shifted, generator) if augment == "shift_intensity" else shifted
