"""Training on a file of tab-separated pairs, and its bad input."""

import numpy
import pytest

from conftest import run_cli

from nptransformer.data import PairsTask, read_pairs
from nptransformer.tasks import EOS, get_task


def write(tmp_path, text, name="pairs.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def reversal_pairs(words):
    """Return a pairs file body mapping each word to its reversal."""
    return "".join(f"{word}\t{word[::-1]}\n" for word in words)


def train_on_file(data, run, steps=2, batch_size=4):
    """Train a data-file run from the command line; fail the test if it fails."""
    result = run_cli("train", "--data", str(data), "--steps", str(steps),
                     "--batch-size", str(batch_size), "--eval-every", "0", "--quiet",
                     "--out", str(run))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def test_read_pairs_chars_and_words(tmp_path):
    path = write(tmp_path, "ab c\tx\nd\ty z\n")
    assert read_pairs(path) == [(["a", "b", " ", "c"], ["x"]), (["d"], ["y", " ", "z"])]
    assert read_pairs(path, "words") == [(["ab", "c"], ["x"]), (["d"], ["y", "z"])]


def test_missing_tab_names_line(tmp_path):
    path = write(tmp_path, "a\tb\nno tab here\n")
    with pytest.raises(ValueError, match="line 2 has 0 tabs"):
        read_pairs(path)


def test_empty_line_names_line(tmp_path):
    path = write(tmp_path, "a\tb\n\nc\td\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        read_pairs(path)


def test_empty_side_names_line(tmp_path):
    path = write(tmp_path, "a\tb\nc\t\n")
    with pytest.raises(ValueError, match="line 2 has an empty target"):
        read_pairs(path)


def test_too_few_pairs(tmp_path):
    path = write(tmp_path, "a\tb\n")
    with pytest.raises(ValueError, match="1 usable pair"):
        read_pairs(path)


def test_split_vocabulary_and_batches(tmp_path):
    lines = "".join(f"{i}\t{i * 2}\n" for i in range(20))
    task = PairsTask(write(tmp_path, lines), heldout_fraction=0.25, split_seed=1)
    assert len(task.heldout_pairs) == 5
    assert len(task.train_pairs) == 15
    assert task.vocabulary == sorted(set("0123456789"))
    batch = task.sample_batch(numpy.random.default_rng(0), 4)
    for row in range(4):
        source = int(task.format_ids(batch.src[row]))
        assert task.format_ids(batch.tgt_out[row]) == str(source * 2)
    assert task.vocab_size == 13


def test_parse_source_unknown_character(tmp_path):
    task = PairsTask(write(tmp_path, "abc\tx\ncab\ty\n"))
    assert task.parse_source("ba") == [4, 3]
    with pytest.raises(ValueError, match="character 'z' at position 1"):
        task.parse_source("az")


def test_changed_file_detected(tmp_path):
    path = write(tmp_path, "a\tb\nc\td\n")
    settings = PairsTask(path).settings()
    path.write_text("a\tb\nc\te\n", encoding="utf-8")
    settings.pop("name")
    with pytest.raises(ValueError, match="changed since the run was saved"):
        get_task("data", **settings)


def test_train_and_decode_text_from_cli(tmp_path):
    words = ["ab", "ba", "abc", "cab", "bca", "cc", "a", "b"] * 4
    path = write(tmp_path, reversal_pairs(words))
    run = tmp_path / "run"
    result = train_on_file(path, run, steps=30, batch_size=16)
    assert "task data" in result.stdout

    path.unlink()  # decoding needs only the checkpoint
    result = run_cli("decode", "--checkpoint", str(run), "abc")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.strip()) <= set("abc")
    result = run_cli("decode", "--checkpoint", str(run), "abz")
    assert result.returncode == 1
    assert "character 'z' at position 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_data_file_one_line(tmp_path):
    path = write(tmp_path, "a\tb\nbroken line\n")
    result = run_cli(
        "train", "--data", str(path), "--steps", "2", "--out", str(tmp_path / "run")
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 2 has 0 tabs" in result.stderr


def test_data_and_task_flags_conflict(tmp_path):
    path = write(tmp_path, "a\tb\nc\td\n")
    result = run_cli(
        "train", "--data", str(path), "--task", "copy", "--out", str(tmp_path / "run")
    )
    assert result.returncode == 1
    assert "--data replaces the generated task" in result.stderr


def test_shipped_dates_file_matches_its_script(tmp_path):
    import importlib.util
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "make_dates", root / "examples" / "make_dates.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = "".join(f"{s}\t{t}\n" for s, t in module.make_pairs(4000, 0))
    assert (root / "examples" / "dates.tsv").read_text(encoding="utf-8") == expected
    assert len(read_pairs(root / "examples" / "dates.tsv")) == 4000
    assert EOS == 2


def test_vocabulary_mismatch_is_value_error(tmp_path):
    path = write(tmp_path, "ab\tb\nb\ta\n")
    with pytest.raises(ValueError, match="token 'b' .* not in the saved vocabulary"):
        PairsTask(path, vocabulary=["a"])


def test_task_without_file_explains(tmp_path):
    task = PairsTask(tmp_path / "gone.tsv", vocabulary=["a", "b"], load_pairs=False)
    assert task.parse_source("ab") == [3, 4]
    assert task.format_ids([3, 1, 99, 4]) == "a<bos><id 99>b"
    with pytest.raises(ValueError, match="loaded without"):
        task.max_source_length


def test_non_utf8_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"ab\tc\nd\xff\te\n")
    with pytest.raises(ValueError, match="line 2 is not valid UTF-8"):
        read_pairs(path)


def test_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "windows.tsv"
    path.write_bytes("\ufeffab\tc\r\nd\te\r\n".encode("utf-8"))
    assert read_pairs(path) == [(["a", "b"], ["c"]), (["d"], ["e"])]


def test_data_run_resumes_from_elsewhere(tmp_path, monkeypatch):
    data = write(tmp_path, reversal_pairs(["ab", "ba", "abc", "cab"] * 3))
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    result = run_cli(
        "train",
        "--data",
        "pairs.tsv",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--eval-every",
        "0",
        "--quiet",
        "--out",
        str(run),
    )
    assert result.returncode == 0, result.stderr
    monkeypatch.chdir("/")
    result = run_cli(
        "train", "--resume", str(run), "--steps", "3", "--data", str(data), "--quiet"
    )
    assert result.returncode == 0, result.stderr


def test_data_run_resumes_after_file_moves(tmp_path):
    data = write(tmp_path, reversal_pairs(["ab", "ba", "abc", "cab"] * 3))
    run = tmp_path / "run"
    train_on_file(data, run)

    moved = tmp_path / "moved.tsv"
    data.rename(moved)
    result = run_cli("train", "--resume", str(run), "--steps", "3", "--quiet")
    assert result.returncode == 1
    assert "file not found" in result.stderr
    result = run_cli("train", "--resume", str(run), "--steps", "3", "--data", str(moved),
                     "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_data_decode_warns_on_long_input(tmp_path):
    data = write(tmp_path, reversal_pairs(["ab", "ba", "abc", "cab"] * 3))
    run = tmp_path / "run"
    train_on_file(data, run)

    result = run_cli("decode", "--checkpoint", str(run), "abcabc")
    assert result.returncode == 0
    assert "length 6, but training saw at most 3" in result.stderr
