"""Tests for dqn_tf.networks: architecture, dtypes, in-model scaling."""

import sys

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
    assert networks.q_network(2, (4,), (8,)).output_shape == (None, 2)
    assert networks.q_network(5, (4, 84, 84)).output_shape == (None, 5)


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider"]))
