import numpy

from conftest import assert_gradients_close
from nptransformer.op_checks import check_relu
from nptransformer.ops import relu_backward, relu_forward


def test_relu_forward_values():
    out, _ = relu_forward(numpy.array([-2.0, 0.0, 3.0]))
    numpy.testing.assert_array_equal(out, [0.0, 0.0, 3.0])


def test_relu_backward_blocks_negative_and_zero():
    _, cache = relu_forward(numpy.array([-2.0, 0.0, 3.0]))
    dx = relu_backward(numpy.array([5.0, 5.0, 5.0]), cache)
    numpy.testing.assert_array_equal(dx, [0.0, 0.0, 5.0])


def test_relu_gradients(rng):
    # Expected error ~1e-11; inputs are kept at least 0.1 from the kink.
    assert_gradients_close(check_relu(rng), 1e-7)
