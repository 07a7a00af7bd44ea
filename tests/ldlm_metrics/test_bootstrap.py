"""Bootstrap intervals: known values, coverage of a known truth, and the matched-entropy interpolation."""

import math

import numpy as np
import pytest

from ldlm_metrics import generative_perplexity, pooled_unigram_entropy
from ldlm_metrics.bootstrap import (
    SampleScores,
    bootstrap_gen_ppl,
    bootstrap_matched_gen_ppl,
    bootstrap_mauve,
    distinguishable,
    interpolate_at_entropy,
    percentile_interval,
)
from tests.ldlm_metrics.test_metrics import scorer


def scores(nll, tokens, entropy=None):
    return SampleScores(list(nll), list(tokens), list(entropy if entropy is not None else [1.0] * len(nll)))


def test_percentile_interval_of_a_known_sample():
    low, high = percentile_interval(list(range(101)))
    assert (low, high) == pytest.approx((2.5, 97.5))
    assert all(math.isnan(v) for v in percentile_interval([math.nan, math.inf]))
    with pytest.raises(ValueError):
        percentile_interval([1.0], level=1.0)


def test_identical_samples_have_a_zero_width_interval():
    out = bootstrap_gen_ppl(scores([20.0] * 50, [10] * 50), num_resamples=200)
    assert out["value"] == pytest.approx(math.exp(2.0))
    assert out["low"] == pytest.approx(out["high"]) == pytest.approx(math.exp(2.0))


def test_interval_covers_the_truth_and_shrinks_with_more_samples():
    """Texts of 10 tokens with per-token NLL ~ N(3, 1): the true pooled gen-PPL is e^3. The 95% interval must cover it
    in most of 60 independent draws, and quadrupling the samples must roughly halve its width."""
    rng = np.random.default_rng(0)
    covered, widths = 0, {64: [], 256: []}
    for trial in range(60):
        for n in (64, 256):
            nll = rng.normal(3.0, 1.0, size=(n, 10)).sum(1)
            out = bootstrap_gen_ppl(scores(nll, [10] * n), num_resamples=300, seed=trial)
            widths[n].append(out["high"] - out["low"])
            covered += n == 256 and out["low"] <= math.exp(3.0) <= out["high"]
    assert covered >= 52  # about 57 of 60 expected; a biased or too narrow interval fails
    ratio = np.median(widths[64]) / np.median(widths[256])
    assert 1.6 < ratio < 2.5


def test_matched_gen_ppl_interpolates_log_linearly_and_reports_unbracketed_targets():
    assert interpolate_at_entropy([(1.0, math.e), (3.0, math.e ** 3)], 2.0) == pytest.approx(math.e ** 2)
    assert math.isnan(interpolate_at_entropy([(1.0, 5.0), (3.0, 9.0)], 3.5))
    assert interpolate_at_entropy([(3.0, 9.0), (1.0, 5.0)], 2.5, log=False) == pytest.approx(8.0)  # linear
    assert interpolate_at_entropy([(1.0, 0.0), (3.0, 2.0)], 2.0, log=False) == pytest.approx(1.0)  # zero allowed
    low = scores([10.0] * 40, [10] * 40, [1.0] * 40)    # gen-PPL e^1 at entropy 1
    high = scores([30.0] * 40, [10] * 40, [3.0] * 40)   # gen-PPL e^3 at entropy 3
    out = bootstrap_matched_gen_ppl([high, low], 2.0, num_resamples=100)
    assert out["value"] == pytest.approx(math.e ** 2) and out["matched_share"] == 1.0
    out = bootstrap_matched_gen_ppl([high, low], [4.0, 4.2], num_resamples=100)
    assert math.isnan(out["value"]) and out["matched_share"] == 0.0


def test_matched_interval_widens_with_noisier_references():
    rng = np.random.default_rng(1)
    frontier = [scores(rng.normal(10 * m, 3, 64), [10] * 64, rng.normal(m, 0.3, 64)) for m in (1.0, 2.0, 3.0)]
    tight = bootstrap_matched_gen_ppl(frontier, [2.0] * 64, num_resamples=300)
    loose = bootstrap_matched_gen_ppl(frontier, list(rng.normal(2.0, 1.5, 64)), num_resamples=300)
    assert tight["low"] < tight["value"] < tight["high"]
    assert loose["high"] - loose["low"] > tight["high"] - tight["low"]


def test_mauve_interval_resamples_both_sides():
    calls = []

    def fake_mauve(p, q):
        calls.append((len(p), len(q)))
        return float(np.mean(p) - np.mean(q))

    p, q = np.arange(20.0)[:, None], np.zeros((30, 1))
    out = bootstrap_mauve(p, q, fake_mauve, num_resamples=50)
    assert out["value"] == pytest.approx(9.5) and out["low"] < 9.5 < out["high"]
    assert calls[1:] == [(20, 30)] * 50


def test_distinguishable():
    assert distinguishable({"low": 1, "high": 2}, {"low": 3, "high": 4})
    assert not distinguishable({"low": 1, "high": 3}, {"low": 2, "high": 4})
    assert not distinguishable({"low": math.nan, "high": 2}, {"low": 3, "high": 4})


def test_sample_scores_reject_bad_input():
    with pytest.raises(ValueError):
        SampleScores([1.0], [1, 2], [0.5])
    with pytest.raises(ValueError, match="rerun its evaluation"):
        SampleScores.from_row({"gen_ppl": 3.0})


def test_per_text_scores_add_up_to_the_pooled_gen_ppl():
    texts = ["a b c d", "", "a c a c a"]
    out = generative_perplexity(texts, scorer(2.0), per_text=True)
    assert len(out["text_nll"]) == 3 and out["text_tokens"][1] == 0 and out["text_nll"][1] == 0.0
    assert math.exp(sum(out["text_nll"]) / sum(out["text_tokens"])) == pytest.approx(out["gen_ppl"])
    assert sum(out["text_tokens"]) == out["scored_tokens"]


def test_pooled_entropy_sees_repetition_across_samples():
    assert pooled_unigram_entropy([[1, 2], [1, 2]]) == pytest.approx(math.log(2))
    assert pooled_unigram_entropy([[1, 2], [3, 4]]) == pytest.approx(math.log(4))
