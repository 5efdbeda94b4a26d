import numpy
import pytest


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)


def assert_gradients_close(report, tolerance):
    """Fail with the full per-tensor table (error, index, analytic, numeric)."""
    assert report.max_error <= tolerance, (
        f"gradient check failed: max error {report.max_error:.3e} > {tolerance:g}\n{report}"
    )
