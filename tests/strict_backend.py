"""A stand-in for CuPy that runs on the CPU but, like CuPy, refuses to mix with NumPy.

Its arrays (`DeviceArray`, a NumPy subclass) raise TypeError when converted
implicitly to NumPy (`__array__`) or combined with a plain NumPy array in a ufunc or
NumPy function, and reductions return 0-d arrays rather than NumPy scalars, as CuPy's
do. Code that creates arrays with `numpy.` on the compute path therefore fails here
the way it would fail on a GPU. Only `asarray` (and `array`) accept NumPy input,
like `cupy.asarray`, and `asnumpy` is the one way back.
"""

import types

import numpy


class HostDeviceMixError(TypeError):
    """A NumPy array met a device array, which CuPy does not allow."""


def _is_host(value):
    return type(value) is numpy.ndarray


def _reject_host(values):
    for value in values:
        if _is_host(value):
            raise HostDeviceMixError(
                f"a NumPy array of shape {value.shape} was mixed with a device array"
            )
        if isinstance(value, (list, tuple)):
            _reject_host(value)


def _unwrap(value):
    if isinstance(value, DeviceArray):
        return value.view(numpy.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item) for item in value)
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    return value


def _wrap(value):
    if type(value) is numpy.ndarray:
        return value.view(DeviceArray)
    if isinstance(value, numpy.generic) and not isinstance(value, numpy.dtype):
        return numpy.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


class DeviceArray(numpy.ndarray):
    """An array that behaves like a CuPy array where mixing with NumPy is concerned."""

    def __array__(self, dtype=None, copy=None):
        raise HostDeviceMixError(
            "implicit conversion of a device array to NumPy is not allowed; use asnumpy()"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _reject_host(inputs)
        if out is not None:
            _reject_host(out)
            kwargs["out"] = tuple(_unwrap(item) for item in out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        _reject_host(args)
        _reject_host(tuple(kwargs.values()))
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getitem__(self, index):
        _reject_host(index if isinstance(index, tuple) else (index,))
        return _wrap(super().__getitem__(_unwrap(index)))

    def __setitem__(self, index, value):
        _reject_host(index if isinstance(index, tuple) else (index,))
        _reject_host((value,))
        super().__setitem__(_unwrap(index), _unwrap(value))


class _Generator:
    """Like cupy.random.Generator: draws land on the device."""

    def __init__(self, seed):
        self._generator = numpy.random.default_rng(seed)

    def random(self, size=None, dtype=numpy.float64):
        return _wrap(self._generator.random(size, dtype=dtype))


def _function(name):
    numpy_function = getattr(numpy, name)
    accepts_host = name in ("asarray", "array")

    def device_function(*args, **kwargs):
        if not accepts_host:
            _reject_host(args)
            _reject_host(tuple(kwargs.values()))
        result = numpy_function(*_unwrap(args), **_unwrap(kwargs))
        if accepts_host and type(result) is numpy.ndarray:
            result = result.copy() if result.base is not None else result
        return _wrap(result)

    device_function.__name__ = name
    return device_function


class StrictDeviceModule(types.ModuleType):
    """The array module: NumPy's names, with every function returning DeviceArrays."""

    ndarray = DeviceArray

    def __init__(self):
        super().__init__("strict_device")
        self.random = types.SimpleNamespace(default_rng=_Generator)

    def __getattr__(self, name):
        attribute = getattr(numpy, name)
        if isinstance(attribute, (type, numpy.ufunc)) or not callable(attribute):
            return attribute
        return _function(name)

    @staticmethod
    def asnumpy(array):
        return numpy.array(array.view(numpy.ndarray), copy=True)


strict_device = StrictDeviceModule()
