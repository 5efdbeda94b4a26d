import numpy

from conftest import assert_gradients_close
from nptransformer.op_checks import check_embedding
from nptransformer.ops import embedding_backward, embedding_forward


def test_embedding_looks_up_rows():
    W = numpy.arange(12.0).reshape(4, 3)
    out, _ = embedding_forward(numpy.array([[3, 0]]), W)
    numpy.testing.assert_array_equal(out, [[[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]])


def test_embedding_repeated_ids_are_summed():
    W = numpy.zeros((4, 2))
    ids = numpy.array([[1, 1, 2], [1, 3, 3]])
    _, cache = embedding_forward(ids, W)
    dout = numpy.ones((2, 3, 2))
    dW = embedding_backward(dout, cache)
    numpy.testing.assert_array_equal(dW[:, 0], [0.0, 3.0, 1.0, 2.0])


def test_embedding_gradients(rng):
    # Expected error ~1e-11.
    assert_gradients_close(check_embedding(rng), 1e-7)
