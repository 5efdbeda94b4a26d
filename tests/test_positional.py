import numpy
import pytest

from nptransformer.ops import positional_encoding


def test_positional_encoding_formula():
    table = positional_encoding(50, 16)
    pos, i = 7, 3
    angle = pos / 10000 ** (2 * i / 16)
    assert table[pos, 2 * i] == pytest.approx(numpy.sin(angle))
    assert table[pos, 2 * i + 1] == pytest.approx(numpy.cos(angle))


def test_positional_encoding_first_row():
    table = positional_encoding(3, 6)
    numpy.testing.assert_array_equal(table[0, 0::2], 0.0)
    numpy.testing.assert_array_equal(table[0, 1::2], 1.0)


def test_positional_encoding_odd_width():
    table = positional_encoding(10, 7)
    assert table.shape == (10, 7)
    angle = 4 / 10000 ** (6 / 7)
    assert table[4, 6] == pytest.approx(numpy.sin(angle))
    assert numpy.all(numpy.abs(table) <= 1.0)


@pytest.mark.parametrize("length, d_model", [(-1, 4), (3, 0), (2.5, 4)])
def test_positional_encoding_rejects_bad_sizes(length, d_model):
    with pytest.raises(ValueError):
        positional_encoding(length, d_model)
