"""Tests for dqn_tf.networks: architecture, dtypes, in-model scaling."""

import sys

import keras
import numpy as np
import pytest

from dqn_tf import networks


def test_nature_cnn_architecture():
    model = networks.nature_cnn(6)
    assert model.input.dtype == "uint8"
    assert model.output_shape == (None, 6)
    convs = [layer for layer in model.layers if "conv" in layer.name]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    # conv 8*8*4*32+32 + conv 4*4*32*64+64 + conv 3*3*64*64+64 + dense 3136*512+512
    # + dense 512*6+6 = 8,224 + 32,832 + 36,928 + 1,606,144 + 3,078.
    assert model.count_params() == 1_687_206


def test_cnn_scales_uint8_inside_the_model():
    model = networks.nature_cnn(3)
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    from_uint8 = model(x).numpy()
    # Bypass the Rescaling and Permute layers: feed channels-last x/255 to the rest.
    assert [type(layer).__name__ for layer in model.layers[1:3]] == ["Rescaling", "Permute"]
    rest = model.layers[3:]
    y = x.transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    for layer in rest:
        y = layer(y)
    np.testing.assert_allclose(from_uint8, np.asarray(y), rtol=1e-5, atol=1e-6)


def test_mlp_hidden_sizes():
    model = networks.mlp(2, (4,), (32, 16))
    assert [layer.units for layer in model.layers[1:]] == [32, 16, 2]
    assert networks.q_network(2, (4,), mlp_hidden_sizes=(8,)).output_shape == (None, 2)
    assert networks.q_network(5, (4, 84, 84)).output_shape == (None, 5)


@pytest.mark.parametrize("state_shape", [(4, 84, 84), (6,)])
@pytest.mark.parametrize("num_quantiles", [0, 5])
def test_dueling_aggregation_against_numpy(state_shape, num_quantiles):
    model = networks.q_network(3, state_shape, dueling=True, num_quantiles=num_quantiles,
                               mlp_hidden_sizes=(8,))
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (4,) + state_shape, dtype=np.uint8) if len(state_shape) == 3
         else rng.normal(size=(4,) + state_shape).astype(np.float32))
    features = keras.Model(model.input, model.get_layer("value").input)(x).numpy()
    value = features @ model.get_layer("value").kernel.numpy() + model.get_layer(
        "value").bias.numpy()
    advantage = features @ model.get_layer("advantage").kernel.numpy() + model.get_layer(
        "advantage").bias.numpy()
    n = max(num_quantiles, 1)
    value, advantage = value.reshape(4, 1, n), advantage.reshape(4, 3, n)
    expected = value + advantage - advantage.mean(axis=1, keepdims=True)  # Wang et al.
    got = model(x).numpy()
    assert got.shape == ((4, 3, n) if num_quantiles else (4, 3))
    np.testing.assert_allclose(got.reshape(4, 3, n), expected, rtol=1e-5, atol=1e-5)


def test_quantile_head_and_its_q_values():
    model = networks.q_network(6, (4, 84, 84), num_quantiles=200)
    assert model.output_shape == (None, 6, 200)
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    out = model(x)
    np.testing.assert_allclose(networks.q_values(out).numpy(), out.numpy().mean(axis=2),
                               rtol=1e-5, atol=1e-6)


def test_impala_encoder_architecture():
    model = networks.q_network(6, (4, 84, 84), encoder="impala")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (16, (3, 3), (1, 1))] * 5 + [(32, (3, 3), (1, 1))] * 10
    flat = [layer for layer in model.layers if isinstance(layer, keras.layers.Flatten)][0]
    assert flat.output.shape[-1] == 11 * 11 * 32  # 84 -> 42 -> 21 -> 11 (SAME pooling)
    # Per stack: conv in->c, then 4 residual convs c->c (3x3, with bias).
    convs_params = sum(9 * cin * c + c + 4 * (9 * c * c + c)
                       for cin, c in [(4, 16), (16, 32), (32, 32)])
    assert model.count_params() == convs_params + 3872 * 512 + 512 + 512 * 6 + 6


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
