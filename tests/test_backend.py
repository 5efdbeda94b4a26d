"""The backend shim, and every op and a training step on a CuPy-like stand-in."""

import numpy
import pytest

from conftest import assert_gradients_close
from nptransformer import backend, check_gradients, set_backend
from nptransformer.op_checks import OP_CHECKS
from nptransformer.tasks import get_task
from nptransformer.train import Trainer, TrainSettings, default_model_config
from strict_backend import DeviceArray, HostDeviceMixError, strict_device


@pytest.fixture
def device_backend():
    set_backend(strict_device)
    yield strict_device
    set_backend("numpy")


def test_stand_in_rejects_mixing():
    device = strict_device.ones(3)
    with pytest.raises(HostDeviceMixError):
        device + numpy.ones(3)
    with pytest.raises(HostDeviceMixError):
        numpy.asarray(device) + device
    with pytest.raises(HostDeviceMixError):
        strict_device.where(device > 0, numpy.zeros(3), device)


def test_numpy_is_default():
    assert backend.get_backend() is numpy
    assert backend.array_module(numpy.ones(2)) is numpy


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="'tpu'"):
        set_backend("tpu")


def test_cupy_backend_missing_gives_clear_error(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def fake_import(name, *args):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args)

    monkeypatch.setattr(backend.importlib, "import_module", fake_import)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        set_backend("cupy")
    assert backend.get_backend() is numpy


def test_scatter_add_sums_repeats():
    target = numpy.zeros((3, 2))
    backend.scatter_add(target, numpy.array([0, 2, 0]), numpy.ones((3, 2)))
    numpy.testing.assert_array_equal(target[:, 0], [2.0, 0.0, 1.0])


def test_to_numpy_returns_host_copy(device_backend):
    device = strict_device.arange(4.0)
    host = backend.to_numpy(device)
    assert type(host) is numpy.ndarray
    numpy.testing.assert_array_equal(host, [0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize("op", sorted(OP_CHECKS))
def test_op_runs_on_device_arrays(device_backend, op, monkeypatch):
    """Every op's gradient check, run with its arrays on the stand-in device."""
    from nptransformer import op_checks

    def check_on_device(forward, backward, inputs, **kwargs):
        assert all(isinstance(value, DeviceArray) for value in inputs.values())

        def device_forward(arrays):
            out, cache = forward(arrays)
            assert isinstance(out, DeviceArray), f"{op} forward returned {type(out)}"
            return out, cache

        def device_backward(dout, cache):
            grads = backward(dout, cache)
            for name, grad in grads.items():
                assert grad is None or isinstance(grad, DeviceArray), (
                    f"{op} gradient {name} is {type(grad)}"
                )
            return grads

        return check_gradients(device_forward, device_backward, inputs, **kwargs)

    monkeypatch.setattr(op_checks, "check_gradients", check_on_device)
    report = OP_CHECKS[op](numpy.random.default_rng(0))
    assert_gradients_close(report, 1e-7)


def test_training_step_on_device_matches_numpy(device_backend):
    task = get_task("reverse", num_symbols=5, max_length=4)
    config = default_model_config(task, dtype="float64")
    config.dropout = 0.1
    settings = TrainSettings(steps=3, batch_size=8, eval_every=0, heldout_size=8)

    device_trainer = Trainer(task, config, settings)
    device_trainer.run()
    assert all(
        isinstance(p, DeviceArray) for p in device_trainer.model.parameters().values()
    )
    assert isinstance(device_trainer.optimizer.m["generator.b"], DeviceArray)
    device_accuracy = device_trainer.evaluate()

    set_backend("numpy")
    host_trainer = Trainer(task, config, settings)
    host_trainer.run()
    numpy.testing.assert_allclose(
        device_trainer.history["loss"], host_trainer.history["loss"], rtol=1e-12
    )
    assert device_accuracy == host_trainer.evaluate()
