"""Sinusoidal positional encoding of Vaswani et al. (2017), section 3.5.

Derivation: docs/derivations/positional.md.
"""

import numpy


def positional_encoding(length, d_model):
    """Return the (length, d_model) float64 NumPy table of sines and cosines.

    PE[pos, 2i] = sin(pos / 10000^(2i / d_model)) and
    PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model)). Columns 2i and 2i + 1 share a
    frequency; with an odd d_model the last column is a sine. The table has no
    parameters, so there is no backward pass. Callers move it to their backend and
    dtype once and slice it per batch.
    """
    if int(length) != length or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if int(d_model) != d_model or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    positions = numpy.arange(length, dtype=numpy.float64)[:, None]
    pair_index = numpy.arange(d_model) // 2
    frequencies = 1.0 / 10000.0 ** (2.0 * pair_index / d_model)
    angles = positions * frequencies  # (length, d_model)
    table = numpy.empty((length, d_model), dtype=numpy.float64)
    table[:, 0::2] = numpy.sin(angles[:, 0::2])
    table[:, 1::2] = numpy.cos(angles[:, 1::2])
    return table
