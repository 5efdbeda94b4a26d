import importlib.util
import os
import subprocess
import sys

import numpy
import pytest


def pytest_sessionstart(session):
    """On CI the PyTorch comparison must run, not skip: fail early if torch is missing."""
    if os.environ.get("CI") and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError(
            "CI is set but PyTorch is not installed; install the test extras with "
            "pip install -e '.[dev,oracle]'"
        )


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)


def assert_gradients_close(report, tolerance):
    """Fail with the full per-tensor table (error, index, analytic, numeric)."""
    assert report.max_error <= tolerance, (
        f"gradient check failed: max error {report.max_error:.3e} > {tolerance:g}\n{report}"
    )


def run_cli(*args, cwd=None, env=None):
    """Run `python -m nptransformer ARGS` as a user would; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "nptransformer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
