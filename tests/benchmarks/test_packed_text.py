"""Packing consecutive sentences into benchmark windows (benchmarks/packed_text.py)."""

import pytest

from benchmarks.packed_text import pack_consecutive


def test_windows_keep_corpus_order_and_never_split_a_sentence():
    sentences = ["a b", "c d e", "f", "g h i j", "k"]
    lengths = [2, 3, 1, 4, 1]
    assert pack_consecutive(sentences, lengths, 6) == ["a b c d e f", "g h i j k"]


def test_a_sentence_longer_than_a_window_is_left_out_and_closes_the_window_before_it():
    sentences = ["a", "b", "too long to fit", "c", "d"]
    lengths = [1, 1, 9, 1, 1]
    # "a b" and "c d" are not joined across the dropped sentence: a window is always consecutive text
    assert pack_consecutive(sentences, lengths, 3) == ["a b", "c d"]


def test_every_window_fits_the_budget():
    lengths = [3, 5, 2, 7, 1, 1, 4, 6, 2]
    sentences = [" ".join(["w"] * n) for n in lengths]
    windows = pack_consecutive(sentences, lengths, 8)
    assert all(len(w.split()) <= 8 for w in windows)
    assert sum(len(w.split()) for w in windows) == sum(lengths)  # nothing fits-but-lost


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="2 sentences but 1 lengths"):
        pack_consecutive(["a", "b"], [1], 4)
    with pytest.raises(ValueError, match="max_tokens must be positive"):
        pack_consecutive(["a"], [1], 0)
