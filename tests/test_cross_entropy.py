import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer.op_checks import check_cross_entropy
from nptransformer.ops import cross_entropy_backward, cross_entropy_forward


def test_cross_entropy_hand_computed():
    logits = numpy.array([[0.0, numpy.log(3.0)]])  # probabilities 0.25, 0.75
    loss, _ = cross_entropy_forward(logits, numpy.array([1]))
    assert float(loss) == pytest.approx(-numpy.log(0.75))


def test_cross_entropy_label_smoothing_hand_computed():
    logits = numpy.array([[0.0, numpy.log(3.0)]])
    eps = 0.2
    loss, _ = cross_entropy_forward(logits, numpy.array([1]), label_smoothing=eps)
    # target distribution: (1 - eps) onehot + eps / V over both classes
    expected = -((1 - eps + eps / 2) * numpy.log(0.75) + (eps / 2) * numpy.log(0.25))
    assert float(loss) == pytest.approx(expected)


def test_cross_entropy_ignored_positions_excluded(rng):
    logits = rng.standard_normal((2, 3, 5))
    targets = numpy.array([[1, 0, 0], [4, 2, 0]])
    loss, cache = cross_entropy_forward(logits, targets, ignore_index=0)
    kept, _ = cross_entropy_forward(
        numpy.stack([logits[0, 0], logits[1, 0], logits[1, 1]]), numpy.array([1, 4, 2])
    )
    assert float(loss) == pytest.approx(float(kept))
    dlogits = cross_entropy_backward(cache)
    assert dlogits.shape == logits.shape
    numpy.testing.assert_array_equal(dlogits[targets == 0], 0.0)


def test_cross_entropy_all_ignored_gives_zero():
    logits = numpy.ones((2, 3))
    loss, cache = cross_entropy_forward(logits, numpy.array([0, 0]), ignore_index=0)
    assert float(loss) == 0.0
    numpy.testing.assert_array_equal(cross_entropy_backward(cache), 0.0)


def test_cross_entropy_huge_logits_finite():
    loss, cache = cross_entropy_forward(numpy.array([[1e4, -1e4]]), numpy.array([1]))
    assert float(loss) == pytest.approx(2e4)
    assert numpy.isfinite(cross_entropy_backward(cache)).all()


def test_cross_entropy_keeps_float32():
    loss, cache = cross_entropy_forward(
        numpy.zeros((3, 4), numpy.float32), numpy.array([0, 1, 2])
    )
    assert loss.dtype == numpy.float32
    assert cross_entropy_backward(cache).dtype == numpy.float32


def test_cross_entropy_rejects_target_outside_classes():
    with pytest.raises(ValueError, match="target id 7"):
        cross_entropy_forward(numpy.zeros((2, 4)), numpy.array([1, 7]))


def test_cross_entropy_rejects_float_targets():
    with pytest.raises(TypeError, match="float64"):
        cross_entropy_forward(numpy.zeros((2, 4)), numpy.array([1.0, 2.0]))


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        cross_entropy_forward(numpy.zeros((2, 4)), numpy.array([1, 2, 3]))


def test_cross_entropy_gradients(rng):
    # Expected error ~1e-10, with label smoothing and ignored positions.
    assert_gradients_close(check_cross_entropy(rng), 1e-7)
