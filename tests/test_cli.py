"""The command line, run as a subprocess the way a user runs it."""

import json
import os

import numpy
import pytest

from conftest import run_cli

from nptransformer.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli(
        "train",
        "--task",
        "reverse",
        "--num-symbols",
        "6",
        "--max-length",
        "5",
        "--steps",
        "400",
        "--warmup",
        "100",
        "--eval-every",
        "200",
        "--heldout-size",
        "200",
        "--seed",
        "1",
        "--quiet",
        "--out",
        str(folder),
    )
    assert result.returncode == 0, result.stderr
    return folder, result


def test_train_writes_run_folder(trained_run):
    folder, result = trained_run
    for name in (
        "checkpoint.npz",
        "metrics.json",
        "training_curves.png",
        "attention.png",
    ):
        assert (folder / name).exists(), name
    assert "parameters" in result.stdout
    assert "held-out exact-sequence accuracy" in result.stdout
    assert "step    200 |" in result.stdout


def test_train_metrics_keys(trained_run):
    folder, _ = trained_run
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["step"] == 400
    assert 0.95 <= metrics["eval_accuracy"] <= 1.0
    assert {"history", "config", "task", "num_parameters", "final_loss"} <= set(metrics)


def test_checkpoint_layout(trained_run):
    folder, _ = trained_run
    arrays, meta = load_checkpoint(str(folder / "checkpoint.npz"))
    assert int(arrays["adam/step"]) == 400
    assert "param/generator.W" in arrays
    assert "adam/m/generator.W" in arrays
    assert "adam/v/generator.W" in arrays
    assert meta["config"]["d_model"] == 64
    assert meta["task"]["name"] == "reverse"
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_decode_reverses(trained_run):
    folder, _ = trained_run
    result = run_cli("decode", "--checkpoint", str(folder), "3 5 7 4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 7 5 3"


def test_decode_rejects_symbol_outside_task(trained_run):
    folder, _ = trained_run
    result = run_cli("decode", "--checkpoint", str(folder), "3 99")
    assert result.returncode == 1
    assert "symbol 99" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_refuses_non_empty_folder(trained_run):
    folder, _ = trained_run
    result = run_cli("train", "--steps", "1", "--out", str(folder))
    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_continues_to_total_steps(trained_run, tmp_path):
    folder, _ = trained_run
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((folder / "checkpoint.npz").read_bytes())
    result = run_cli("train", "--resume", str(copy), "--steps", "410", "--quiet")
    assert result.returncode == 0, result.stderr
    arrays, meta = load_checkpoint(str(copy / "checkpoint.npz"))
    assert meta["step"] == 410
    assert int(arrays["adam/step"]) == 410


def test_resume_rejects_contradicting_flag(trained_run):
    folder, _ = trained_run
    result = run_cli(
        "train", "--resume", str(folder), "--steps", "500", "--batch-size", "7"
    )
    assert result.returncode == 1
    assert "--batch-size 7" in result.stderr
    assert "64" in result.stderr


def test_decode_corrupt_checkpoint_one_line_error(tmp_path):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"not a zip file at all")
    result = run_cli("decode", "--checkpoint", str(bad), "3 4")
    assert result.returncode == 1
    assert "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_decode_missing_checkpoint(tmp_path):
    result = run_cli("decode", "--checkpoint", str(tmp_path / "nothing"), "3 4")
    assert result.returncode == 1
    assert "not found" in result.stderr


def test_gradcheck_prints_every_op():
    result = run_cli("gradcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    for op in (
        "linear",
        "softmax",
        "layernorm",
        "multi_head_attention",
        "cross_entropy",
    ):
        assert op in result.stdout
    assert "FAILED" not in result.stdout


def test_unknown_task_is_usage_error():
    result = run_cli("train", "--task", "sorting")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_console_script_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("nptransformer ")


def test_zero_steps_rejected():
    result = run_cli("train", "--steps", "0")
    assert result.returncode == 2
    assert "got 0" in result.stderr
    numpy.testing.assert_equal("Traceback" in result.stderr, False)


def test_decode_with_beam(trained_run):
    folder, _ = trained_run
    result = run_cli("decode", "--checkpoint", str(folder), "--beam", "4", "3 5 7 4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 7 5 3"


def test_eval_max_length_reports_each_length(tmp_path):
    folder = tmp_path / "run"
    result = run_cli(
        "train", "--task", "copy", "--num-symbols", "4", "--max-length", "3",
        "--steps", "5", "--batch-size", "8", "--eval-every", "0",
        "--heldout-size", "20", "--eval-max-length", "6", "--quiet",
        "--out", str(folder),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    assert sorted(metrics["accuracy_by_length"], key=int) == [
        str(n) for n in range(1, 7)
    ]
    assert metrics["train_max_length"] == 3
    assert (folder / "accuracy_by_length.png").exists()
    assert "length   6:" in result.stdout


def test_addition_decode_takes_plus_form(tmp_path):
    folder = tmp_path / "run"
    result = run_cli(
        "train", "--task", "addition", "--max-length", "2", "--steps", "3",
        "--batch-size", "8", "--eval-every", "0", "--heldout-size", "10",
        "--quiet", "--out", str(folder),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = run_cli("decode", "--checkpoint", str(folder), "12+34")
    assert result.returncode == 0, result.stderr
    # Three steps teach nothing, so only the format is checked: digits, or "<bos>"
    # where the untrained model emits BOS.
    assert set(result.stdout.strip().replace("<bos>", "")) <= set("0123456789")
    result = run_cli("decode", "--checkpoint", str(folder), "12+")
    assert result.returncode == 1
    assert "12+" in result.stderr


def test_zero_batch_size_rejected():
    result = run_cli("train", "--batch-size", "0")
    assert result.returncode == 2
    assert "got 0" in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (("train", "--batch-size", "1000000000"), "--batch-size"),
        (("train", "--max-length", "100000"), "--max-length"),
        (("train", "--seed", "-1"), "--seed"),
        (("train", "--lr-factor", "inf"), "finite"),
        (("train", "--steps", "1.5"), "'1.5'"),
        (("decode", "--checkpoint", "x", "--beam", "100000000", "3"), "--beam"),
    ],
)
def test_usage_errors_are_one_line(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_bad_backend_variable_reported_not_raised(tmp_path):
    import os

    env = dict(os.environ, NPTRANSFORMER_BACKEND="bogus")
    result = run_cli("gradcheck", env=env)
    assert result.returncode == 1
    assert "NPTRANSFORMER_BACKEND" in result.stderr
    assert "'bogus'" in result.stderr
    assert "Traceback" not in result.stderr
    help_result = run_cli("--help", env=env)
    assert help_result.returncode == 0


def test_bad_settings_fail_before_training(tmp_path):
    folder = tmp_path / "run"
    result = run_cli("train", "--task", "addition", "--eval-max-length", "19",
                     "--out", str(folder))  # fmt: skip
    assert result.returncode == 1
    assert "at most 18 digits" in result.stderr
    assert not folder.exists()
    result = run_cli("train", "--heads", "3", "--out", str(folder))
    assert result.returncode == 1
    assert "not divisible by num_heads 3" in result.stderr
    assert not folder.exists()


def test_out_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    result = run_cli("train", "--out", str(path))
    assert result.returncode == 1
    assert "is a file, not a folder" in result.stderr


def test_resume_accepts_checkpoint_file(trained_run, tmp_path):
    folder, _ = trained_run
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((folder / "checkpoint.npz").read_bytes())
    result = run_cli("train", "--resume", str(copy / "checkpoint.npz"), "--steps", "402",
                     "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(str(copy))[1]["step"] == 402


def test_decode_warns_on_longer_input(trained_run):
    folder, _ = trained_run
    result = run_cli("decode", "--checkpoint", str(folder), "3 4 5 6 7 8 3 4")
    assert result.returncode == 0
    assert "training saw at most 5" in result.stderr


def test_npy_file_as_checkpoint(tmp_path):
    path = tmp_path / "array.npy"
    numpy.save(path, numpy.ones(3))
    result = run_cli("decode", "--checkpoint", str(path), "3")
    assert result.returncode == 1
    assert "single .npy array" in result.stderr
    assert "truncated" not in result.stderr


def test_non_finite_checkpoint_rejected(trained_run, tmp_path):
    arrays, meta = load_checkpoint(str(trained_run[0]))
    arrays["param/generator.b"][0] = numpy.nan
    path = tmp_path / "checkpoint.npz"
    numpy.savez(path, meta=numpy.array(json.dumps(meta)), **arrays)
    result = run_cli("decode", "--checkpoint", str(path), "3 4")
    assert result.returncode == 1
    assert "generator.b holds NaN" in result.stderr


def test_missing_training_state_rejected(trained_run, tmp_path):
    arrays, meta = load_checkpoint(str(trained_run[0]))
    del meta["train_rng"]
    folder = tmp_path / "run"
    folder.mkdir()
    numpy.savez(folder / "checkpoint.npz", meta=numpy.array(json.dumps(meta)), **arrays)
    result = run_cli("train", "--resume", str(folder), "--steps", "500")
    assert result.returncode == 1
    assert "train_rng" in result.stderr
    assert "Traceback" not in result.stderr


def test_memory_estimate_refuses_huge_run(tmp_path):
    folder = tmp_path / "run"
    result = run_cli("train", "--heldout-size", "1000000", "--max-length", "1000",
                     "--batch-size", "100000", "--out", str(folder))  # fmt: skip
    assert result.returncode == 1
    assert "GiB of memory" in result.stderr
    assert not folder.exists()


def test_resume_rejects_other_checkpoint_file(trained_run, tmp_path):
    other = tmp_path / "old.npz"
    other.write_bytes((trained_run[0] / "checkpoint.npz").read_bytes())
    result = run_cli("train", "--resume", str(other), "--steps", "500")
    assert result.returncode == 1
    assert "run folder or its checkpoint.npz" in result.stderr


def test_addition_decode_warns_on_long_operand(tmp_path):
    folder = tmp_path / "run"
    result = run_cli(
        "train", "--task", "addition", "--max-length", "2", "--steps", "2",
        "--batch-size", "8", "--eval-every", "0", "--heldout-size", "10",
        "--quiet", "--out", str(folder),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = run_cli("decode", "--checkpoint", str(folder), "123+4")
    assert result.returncode == 0
    assert "length 3, but training saw at most 2" in result.stderr


def test_leading_minus_input_hint():
    result = run_cli("decode", "--checkpoint", "x", "-1+2")
    assert result.returncode == 2
    assert "goes after --" in result.stderr
