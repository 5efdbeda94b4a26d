import math

import numpy
import pytest

from nptransformer import Adam, NoamSchedule, clip_grad_norm


def test_adam_first_step_moves_by_lr():
    # With bias correction the first update is lr * g / (|g| + eps) = lr * sign(g).
    param = numpy.array([1.0, -2.0, 3.0])
    optimizer = Adam({"p": param}, lr=0.1, eps=0.0)
    optimizer.step({"p": numpy.array([0.5, -4.0, 1e-3])})
    numpy.testing.assert_allclose(param, [0.9, -1.9, 2.9])
    assert optimizer.step_count == 1


def test_adam_two_steps_hand_computed():
    param = numpy.array([0.0])
    optimizer = Adam({"p": param}, lr=1.0, betas=(0.5, 0.5), eps=0.0)
    optimizer.step({"p": numpy.array([1.0])})  # m = 0.5, v = 0.5 -> step 1
    optimizer.step({"p": numpy.array([3.0])})  # m = 1.75, v = 4.75
    m_hat = 1.75 / (1 - 0.25)
    v_hat = 4.75 / (1 - 0.25)
    numpy.testing.assert_allclose(param, [-1.0 - m_hat / math.sqrt(v_hat)])


def test_adam_weight_decay_is_coupled():
    param = numpy.array([2.0])
    optimizer = Adam({"p": param}, lr=0.1, eps=1e-8, weight_decay=0.5)
    optimizer.step({"p": numpy.array([-1.0])})  # effective gradient -1 + 0.5 * 2 = 0
    numpy.testing.assert_allclose(param, [2.0])


def test_adam_lr_override_and_in_place():
    param = numpy.ones(2)
    optimizer = Adam({"p": param}, lr=1.0)
    used = optimizer.step({"p": numpy.ones(2)}, lr=0.01)
    assert used == 0.01
    assert optimizer.params["p"] is param
    numpy.testing.assert_allclose(param, 0.99)


def test_adam_missing_gradient_raises():
    with pytest.raises(ValueError, match="p"):
        Adam({"p": numpy.ones(2)}).step({})


def test_noam_paper_values():
    schedule = NoamSchedule(512, warmup_steps=4000)
    assert schedule.lr(4000) == pytest.approx(6.9877e-4, rel=1e-4)
    assert schedule.lr(1) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert schedule.lr(16384) == pytest.approx(512**-0.5 / 128)
    assert schedule.lr(3999) < schedule.lr(4000) > schedule.lr(4001)


def test_noam_factor_scales():
    assert NoamSchedule(64, 200, factor=0.5).lr(50) == pytest.approx(
        0.5 * NoamSchedule(64, 200).lr(50)
    )


def test_noam_step_zero_raises():
    with pytest.raises(ValueError, match="step must be at least 1"):
        NoamSchedule(512).lr(0)


def test_clip_grad_norm_scales_in_place():
    grads = {"a": numpy.array([3.0]), "b": numpy.array([4.0])}
    a = grads["a"]
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert grads["a"] is a
    total = math.sqrt(float(grads["a"][0] ** 2 + grads["b"][0] ** 2))
    assert total == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients():
    grads = {"a": numpy.array([0.3, 0.4])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5)
    numpy.testing.assert_array_equal(grads["a"], [0.3, 0.4])
