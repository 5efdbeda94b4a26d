import numpy
import pytest

from nptransformer.tasks import BOS, EOS, PAD, data_streams, get_task, heldout_set


def test_reverse_batch_format():
    task = get_task("reverse", num_symbols=10, max_length=5)
    batch = task.make_batch([numpy.array([3, 4, 5]), numpy.array([7])])
    numpy.testing.assert_array_equal(batch.src, [[3, 4, 5, EOS], [7, EOS, PAD, PAD]])
    numpy.testing.assert_array_equal(batch.tgt_in, [[BOS, 5, 4, 3], [BOS, 7, PAD, PAD]])
    numpy.testing.assert_array_equal(
        batch.tgt_out, [[5, 4, 3, EOS], [7, EOS, PAD, PAD]]
    )
    assert batch.num_target_tokens() == 6


def test_copy_answer():
    task = get_task("copy")
    numpy.testing.assert_array_equal(task.answer(numpy.array([3, 9, 4])), [3, 9, 4])


def test_samples_cover_lengths_and_symbols():
    task = get_task("reverse", num_symbols=10, max_length=10)
    batch = task.sample_batch(numpy.random.default_rng(0), 2000)
    lengths = (batch.src != PAD).sum(axis=1) - 1
    assert lengths.min() == 1
    assert lengths.max() == 10
    symbols = batch.src[(batch.src != PAD) & (batch.src != EOS)]
    assert symbols.min() == 3
    assert symbols.max() == 12
    assert task.vocab_size == 13


def test_same_seed_same_batches():
    task = get_task("copy")
    a, _ = data_streams(5)
    b, _ = data_streams(5)
    numpy.testing.assert_array_equal(
        task.sample_batch(a, 8).src, task.sample_batch(b, 8).src
    )


def test_heldout_independent_of_training_stream():
    task = get_task("reverse")
    train_rng, _ = data_streams(0)
    first_train = task.sample_batch(train_rng, 50)
    heldout = heldout_set(task, 0, 50)
    assert not numpy.array_equal(first_train.src, heldout.src)
    numpy.testing.assert_array_equal(heldout.src, heldout_set(task, 0, 50).src)


def test_unknown_task_names_choices():
    with pytest.raises(ValueError, match="copy, reverse"):
        get_task("sorting")


@pytest.mark.parametrize("num_symbols, max_length", [(1, 5), (10, 0), (2.5, 3)])
def test_bad_task_sizes(num_symbols, max_length):
    with pytest.raises(ValueError):
        get_task("copy", num_symbols=num_symbols, max_length=max_length)


def test_sort_answer_keeps_repeats():
    task = get_task("sort")
    numpy.testing.assert_array_equal(
        task.answer(numpy.array([7, 3, 7, 4])), [3, 4, 7, 7]
    )


def test_addition_examples_add_up():
    task = get_task("addition", max_length=4)
    batch = task.sample_batch(numpy.random.default_rng(0), 200)
    for row in range(len(batch)):
        text = task.format_ids(batch.src[row])
        a, b = (int(part) for part in text.split("+"))
        assert task.format_ids(batch.tgt_out[row]) == str(a + b)
    assert batch.src.shape[1] <= task.max_source_length
    assert batch.tgt_out.shape[1] <= task.max_target_length


def test_addition_parse_source_forms():
    task = get_task("addition")
    assert task.parse_source("12+345") == [4, 5, 13, 6, 7, 8]
    assert task.parse_source("4 5 13 6") == [4, 5, 13, 6]
    with pytest.raises(ValueError, match="two numbers"):
        task.parse_source("4 5 6")


def test_addition_needs_ten_digits():
    with pytest.raises(ValueError, match="num_symbols must be 10, got 5"):
        get_task("addition", num_symbols=5)


def test_inputs_of_exact_length():
    task = get_task("reverse", max_length=5)
    inputs = task.inputs_of_length(numpy.random.default_rng(0), 4, 12)
    assert all(len(x) == 12 for x in inputs)
    addition = get_task("addition", max_length=2)
    for x in addition.inputs_of_length(numpy.random.default_rng(0), 20, 4):
        a, b = addition.format_ids(numpy.append(x, EOS)).split("+")
        assert len(a) == len(b) == 4


def test_symbol_task_parse_errors():
    task = get_task("copy")
    assert task.parse_source(" 3 12 ") == [3, 12]
    with pytest.raises(ValueError, match="symbol 13 is outside"):
        task.parse_source("3 13")
    with pytest.raises(ValueError, match="'x'"):
        task.parse_source("3 x")
    with pytest.raises(ValueError, match="no symbols"):
        task.parse_source("   ")


def test_addition_format_shows_stray_bos():
    task = get_task("addition")
    assert task.format_ids([4, BOS, 5, EOS, 7]) == "1<bos>2"
