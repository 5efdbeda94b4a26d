import numpy
import pytest

from nptransformer.tasks import BOS, EOS, PAD, data_streams, get_task, heldout_set


def test_reverse_batch_format():
    task = get_task("reverse", num_symbols=10, max_length=5)
    batch = task.make_batch([numpy.array([3, 4, 5]), numpy.array([7])])
    numpy.testing.assert_array_equal(batch.src, [[3, 4, 5, EOS], [7, EOS, PAD, PAD]])
    numpy.testing.assert_array_equal(batch.tgt_in, [[BOS, 5, 4, 3], [BOS, 7, PAD, PAD]])
    numpy.testing.assert_array_equal(batch.tgt_out, [[5, 4, 3, EOS], [7, EOS, PAD, PAD]])
    assert batch.num_target_tokens() == 6


def test_copy_answer():
    task = get_task("copy")
    numpy.testing.assert_array_equal(task.answer(numpy.array([3, 9, 4])), [3, 9, 4])


def test_samples_cover_lengths_and_symbols():
    task = get_task("reverse", num_symbols=10, max_length=10)
    batch = task.sample_batch(numpy.random.default_rng(0), 2000)
    lengths = (batch.src != PAD).sum(axis=1) - 1
    assert lengths.min() == 1 and lengths.max() == 10
    symbols = batch.src[(batch.src != PAD) & (batch.src != EOS)]
    assert symbols.min() == 3 and symbols.max() == 12
    assert task.vocab_size == 13


def test_same_seed_same_batches():
    task = get_task("copy")
    a, _ = data_streams(5)
    b, _ = data_streams(5)
    numpy.testing.assert_array_equal(task.sample_batch(a, 8).src, task.sample_batch(b, 8).src)


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
