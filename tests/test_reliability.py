"""Exact resume, safe checkpoints, interruption and non-finite values."""

import os
import signal
import subprocess
import sys
import zipfile

import numpy
import pytest

from conftest import run_cli

from nptransformer import cli
from nptransformer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nptransformer.tasks import get_task
from nptransformer.train import (
    NonFiniteError,
    Trainer,
    TrainSettings,
    default_model_config,
)

SMALL_RUN = (
    "--task",
    "reverse",
    "--num-symbols",
    "5",
    "--max-length",
    "4",
    "--d-model",
    "16",
    "--heads",
    "2",
    "--layers",
    "1",
    "--d-ff",
    "32",
    "--batch-size",
    "16",
    "--dropout",
    "0.1",
    "--eval-every",
    "5",
    "--eval-size",
    "20",
    "--heldout-size",
    "40",
    "--seed",
    "3",
    "--quiet",
)


def read_state(folder):
    arrays, meta = load_checkpoint(str(folder))
    return arrays, meta


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_is_bit_for_bit(tmp_path, dtype):
    """Stop after 7 steps, resume to 15 in a new process: equal to 15 straight steps."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    result = run_cli(
        "train", *SMALL_RUN, "--dtype", dtype, "--steps", "15", "--out", str(straight)
    )
    assert result.returncode == 0, result.stderr
    result = run_cli(
        "train", *SMALL_RUN, "--dtype", dtype, "--steps", "7", "--out", str(split)
    )
    assert result.returncode == 0, result.stderr
    result = run_cli("train", "--resume", str(split), "--steps", "15", "--quiet")
    assert result.returncode == 0, result.stderr

    expected, expected_meta = read_state(straight)
    actual, actual_meta = read_state(split)
    assert sorted(expected) == sorted(actual)
    for name in expected:
        assert expected[name].dtype == actual[name].dtype, name
        numpy.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert actual_meta["step"] == expected_meta["step"] == 15
    assert actual_meta["history"]["loss"] == expected_meta["history"]["loss"]
    assert actual_meta["train_rng"] == expected_meta["train_rng"]
    assert actual_meta["dropout_rng"] == expected_meta["dropout_rng"]


def test_same_seed_same_checkpoint(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        result = run_cli("train", *SMALL_RUN, "--steps", "6", "--out", str(folder))
        assert result.returncode == 0, result.stderr
    a, _ = read_state(first)
    b, _ = read_state(second)
    for name in a:
        numpy.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sigint_saves_and_exits_non_zero(tmp_path):
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nptransformer",
            "train",
            *SMALL_RUN,
            "--steps",
            "100000",
            "--out",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # the header line: training has started
        assert "parameters" in line
        line = process.stdout.readline()  # the first evaluation line (step 5)
        assert line.startswith("step"), line
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Resume with" in stderr
    assert f"--resume {folder}" in stderr
    _, meta = read_state(folder)
    assert 5 <= meta["step"] < 100000


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    """A failure halfway through writing leaves the previous checkpoint loadable."""
    task = get_task("copy", num_symbols=4, max_length=3)
    settings = TrainSettings(steps=2, batch_size=4, eval_every=0, heldout_size=4)
    trainer = Trainer(task, default_model_config(task), settings)
    path = tmp_path / "checkpoint.npz"
    trainer.save(str(path))
    before = path.read_bytes()

    trainer.run()
    real_savez = numpy.savez

    def crash_halfway(file, **arrays):
        real_savez(file, **dict(list(arrays.items())[:3]))
        raise OSError("simulated crash: disk full")

    monkeypatch.setattr(numpy, "savez", crash_halfway)
    with pytest.raises(OSError, match="simulated crash"):
        trainer.save(str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind
    _, meta = load_checkpoint(str(path))
    assert meta["step"] == 0


def test_truncated_checkpoint_one_line_cli_error(tmp_path):
    folder = tmp_path / "run"
    result = run_cli("train", *SMALL_RUN, "--steps", "2", "--out", str(folder))
    assert result.returncode == 0, result.stderr
    checkpoint = folder / "checkpoint.npz"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    for args in (
        ("decode", "--checkpoint", str(folder), "3 4"),
        ("train", "--resume", str(folder), "--steps", "4"),
    ):
        result = run_cli(*args)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "truncated or corrupt" in lines[0]
        assert str(checkpoint) in lines[0]


def test_foreign_npz_rejected(tmp_path):
    foreign = tmp_path / "weights.npz"
    numpy.savez(foreign, weights=numpy.ones(3))
    with pytest.raises(CheckpointError, match="not an nptransformer checkpoint"):
        load_checkpoint(str(foreign))


def test_pickled_npz_rejected(tmp_path):
    pickled = tmp_path / "pickled.npz"
    numpy.savez(
        pickled,
        meta=numpy.array([{"a": 1}], dtype=object),
        **{"adam/step": numpy.array(1)},
    )
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(str(pickled))


def test_wrong_format_version_rejected(tmp_path):
    path = tmp_path / "old.npz"
    numpy.savez(
        path,
        meta=numpy.array('{"format_version": 99}'),
        **{"adam/step": numpy.array(1)},
    )
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(str(path))


def test_checkpoint_config_mismatch_rejected(tmp_path):
    task = get_task("copy", num_symbols=4, max_length=3)
    settings = TrainSettings(steps=1, batch_size=4, eval_every=0, heldout_size=4)
    trainer = Trainer(task, default_model_config(task), settings)
    meta = trainer.meta()
    meta["config"]["d_ff"] = 128  # the saved arrays have d_ff 256
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(str(path), trainer.model, trainer.optimizer, meta)
    with pytest.raises(CheckpointError, match="cannot be loaded into its model.*ffn"):
        Trainer.from_checkpoint(str(path))
    result = run_cli("decode", "--checkpoint", str(path), "3 4")
    assert result.returncode == 1
    assert "cannot be loaded into its model" in result.stderr


def test_checkpoint_is_a_zip_of_plain_arrays(tmp_path):
    task = get_task("copy", num_symbols=4, max_length=3)
    settings = TrainSettings(steps=1, batch_size=4, eval_every=0, heldout_size=4)
    trainer = Trainer(task, default_model_config(task), settings)
    path = tmp_path / "checkpoint.npz"
    trainer.save(str(path))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "meta.npy" in names
    assert "adam/step.npy" in names
    assert "param/generator.W.npy" in names


def test_non_finite_loss_names_step(monkeypatch):
    task = get_task("copy", num_symbols=4, max_length=3)
    settings = TrainSettings(steps=3, batch_size=4, eval_every=0, heldout_size=4)
    trainer = Trainer(task, default_model_config(task), settings)
    trainer.run(until_step=1)
    trainer.model.parameters()["generator.b"][0] = numpy.nan
    with pytest.raises(NonFiniteError, match="step 2: the loss is nan"):
        trainer.run()


def test_non_finite_gradient_names_tensor(monkeypatch):
    task = get_task("copy", num_symbols=4, max_length=3)
    settings = TrainSettings(steps=3, batch_size=4, eval_every=0, heldout_size=4)
    trainer = Trainer(task, default_model_config(task), settings)
    real_backward = trainer.model.backward

    def poisoned_backward(dlogits):
        real_backward(dlogits)
        trainer.model.gradients()["decoder.layers.1.ffn.W2"][0, 0] = numpy.inf

    monkeypatch.setattr(trainer.model, "backward", poisoned_backward)
    before = trainer.model.parameters()["generator.b"].copy()
    with pytest.raises(
        NonFiniteError, match="step 1: the gradient of decoder.layers.1.ffn.W2"
    ):
        trainer.run()
    numpy.testing.assert_array_equal(trainer.model.parameters()["generator.b"], before)


def test_cli_non_finite_keeps_last_checkpoint(tmp_path, monkeypatch, capsys):
    from nptransformer import train as train_module

    real_step = train_module.train_step

    def failing_step(model, optimizer, schedule, batch, step, *args):
        if step == 5:
            raise NonFiniteError("step 5: the loss is nan")
        return real_step(model, optimizer, schedule, batch, step, *args)

    monkeypatch.setattr(train_module, "train_step", failing_step)
    folder = tmp_path / "run"
    status = cli.main(
        [
            "train",
            *SMALL_RUN,
            "--steps",
            "10",
            "--save-every",
            "2",
            "--out",
            str(folder),
        ]
    )
    assert status == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert "step 5: the loss is nan" in error[0]
    _, meta = load_checkpoint(str(folder))
    assert meta["step"] == 4


def test_resume_already_finished_run(tmp_path):
    folder = tmp_path / "run"
    assert (
        run_cli("train", *SMALL_RUN, "--steps", "2", "--out", str(folder)).returncode
        == 0
    )
    result = run_cli("train", "--resume", str(folder), "--steps", "2")
    assert result.returncode == 1
    assert "already at step 2" in result.stderr
