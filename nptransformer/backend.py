"""The array-module shim: NumPy by default, CuPy on request.

This is the only file that decides which array library runs. Ops call
`array_module(*arrays)` to get the module of their inputs, so NumPy arrays in give
NumPy arrays out and CuPy arrays in give CuPy arrays out. Layers and the model call
`get_backend()` to decide where new parameters, masks and random generators live.
"""

import importlib
import os

import numpy

_BACKEND_ENV = "NPTRANSFORMER_BACKEND"
_active = (
    None  # chosen on first use, so a bad NPTRANSFORMER_BACKEND cannot break import
)


def _load_cupy():
    """Import CuPy and check that it finds a GPU, or raise a RuntimeError with the fix."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as error:
        raise RuntimeError(
            "backend 'cupy' requested but CuPy is not installed "
            f"({error}); install it with `pip install 'nptransformer[gpu]'` "
            "(the prebuilt cupy-cuda12x wheel) or use the numpy backend"
        ) from None
    try:
        device_count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDA error types here.
        raise RuntimeError(
            f"backend 'cupy' requested but CuPy cannot reach a GPU ({error}); "
            "run on a machine with an NVIDIA GPU or use the numpy backend"
        ) from None
    if device_count == 0:
        raise RuntimeError(
            "backend 'cupy' requested but no GPU is visible; "
            "run on a machine with an NVIDIA GPU or use the numpy backend"
        )
    return cupy


def set_backend(backend):
    """Select the array module for new parameters, masks and random generators.

    `backend` is "numpy", "cupy", or a module object that mimics NumPy and has an
    `ndarray` type and an `asnumpy` function (the tests use such a stand-in).
    Returns the selected module. Models built before the call keep their arrays.
    """
    global _active
    if isinstance(backend, str):
        name = backend.strip().lower()
        if name == "numpy":
            _active = numpy
        elif name == "cupy":
            _active = _load_cupy()
        else:
            raise ValueError(f"unknown backend {backend!r}; expected 'numpy' or 'cupy'")
    elif hasattr(backend, "ndarray") and hasattr(backend, "asnumpy"):
        _active = backend
    else:
        raise TypeError(
            f"backend must be 'numpy', 'cupy' or an array module, got {backend!r}"
        )
    return _active


def get_backend():
    """Return the active array module.

    On first use this applies NPTRANSFORMER_BACKEND ("numpy" or "cupy") when it is set,
    so a bad value raises here, where callers can report it, rather than on import.
    Otherwise NumPy, unless `set_backend` chose another.
    """
    global _active
    if _active is None:
        name = os.environ.get(_BACKEND_ENV, "").strip()
        if name:
            try:
                set_backend(name)
            except ValueError as error:
                raise ValueError(
                    f"environment variable {_BACKEND_ENV}: {error}"
                ) from None
        else:
            _active = numpy
    return _active


def array_module(*arrays):
    """Return the array module that owns `arrays`: the active backend's or NumPy."""
    active = get_backend()
    if active is not numpy:
        for array in arrays:
            if isinstance(array, active.ndarray):
                return active
    return numpy


def to_numpy(array):
    """Copy a backend array to a NumPy array (for saving, plotting and printing)."""
    if isinstance(array, numpy.ndarray) and type(array) is numpy.ndarray:
        return array
    module = array_module(array)
    if module is numpy:
        return numpy.asarray(array)
    return module.asnumpy(array)


def scatter_add(target, indices, values):
    """Add `values[i]` into `target[indices[i]]` in place, summing repeated indices.

    target (V, D), indices int (N,), values (N, D). Plain `target[indices] += values`
    would keep only one of each repeated index, so embedding gradients need this.
    """
    module = array_module(target)
    if module.__name__ == "cupy":
        cupyx = importlib.import_module("cupyx")
        cupyx.scatter_add(target, indices, values)
    else:
        module.add.at(target, indices, values)
    return target
