"""95% bootstrap intervals for sample-quality figures, so that a difference can be told from the noise of the samples.

A figure (gen-PPL, MAUVE, gen-PPL at matched entropy) is a statistic of a finite set of samples. Resampling the samples
with replacement R times and recomputing the statistic approximates its sampling distribution; the 2.5th and 97.5th
percentiles of the R values are the 95% percentile interval (Efron & Tibshirani 1993, ch. 13).

- pooled gen-PPL: exp(sum_i nll_i / sum_i n_i) over the resampled texts i (nll_i: summed negative log-likelihood of
  text i under the scorer, n_i its scored tokens);
- gen-PPL at matched entropy: each point of a frontier (one sampling-knob value) is its own set of samples, so every
  replicate resamples each point independently, recomputes each point's (mean per-sample entropy, pooled gen-PPL),
  and interpolates log gen-PPL linearly in entropy at the target entropy (the data's mean per-sample entropy, itself
  resampled from the reference texts when they are given). A replicate whose frontier does not bracket the target
  has no matched value; the share of replicates that do is reported, and the interval is taken over those.
- MAUVE: samples and references resampled (their scorer features, computed once).

Two figures are "not distinguishable" when their intervals overlap (`distinguishable`), a conservative reading:
non-overlap at 95% implies a significant difference, overlap does not prove equality.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class SampleScores:
    """Per-sample scores of one set of generated texts (one frontier point): summed NLL under the scorer, scored
    tokens, and per-sample unigram entropy (nats). Empty texts score 0 nats over 0 tokens."""

    nll: Sequence[float]
    tokens: Sequence[int]
    entropy: Sequence[float]

    def __post_init__(self) -> None:
        if not len(self.nll) == len(self.tokens) == len(self.entropy) or len(self.nll) == 0:
            raise ValueError(f"SampleScores needs equally long, non-empty nll, tokens and entropy lists; got "
                             f"{len(self.nll)}, {len(self.tokens)} and {len(self.entropy)}.")

    @classmethod
    def from_row(cls, row: dict) -> SampleScores:
        """From a quality row that stored its per-sample scores (`text_nll`, `text_tokens`, `text_entropy`)."""
        missing = [k for k in ("text_nll", "text_tokens", "text_entropy") if k not in row]
        if missing:
            raise ValueError(f"This quality row has no per-sample scores ({', '.join(missing)}): it was written "
                             "before intervals were recorded; rerun its evaluation stage.")
        return cls(row["text_nll"], row["text_tokens"], row["text_entropy"])


def percentile_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def pooled_gen_ppl(nll: np.ndarray, tokens: np.ndarray) -> float:
    count = float(np.sum(tokens))
    return math.exp(float(np.sum(nll)) / count) if count > 0 else math.inf


def interpolate_at_entropy(points: Sequence[tuple[float, float]], target: float, log: bool = True) -> float:
    """Log-linear interpolation of gen-PPL at `target` entropy along (entropy, gen-PPL) points (`log=False`: linear,
    for a figure such as the pooled entropy); NaN outside their range (the frontier does not bracket the target, so
    there is no matched value)."""
    forward, back = (math.log, math.exp) if log else (float, float)
    ordered = sorted((e, forward(p)) for e, p in points if math.isfinite(p) and (p > 0 or not log))
    for (e0, p0), (e1, p1) in zip(ordered, ordered[1:]):
        if e0 <= target <= e1:
            w = 0.0 if e1 == e0 else (target - e0) / (e1 - e0)
            return back(p0 + w * (p1 - p0))
    if len(ordered) == 1 and ordered[0][0] == target:
        return back(ordered[0][1])
    return math.nan


def _arrays(scores: SampleScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(scores.nll, dtype=float), np.asarray(scores.tokens, dtype=float),
            np.asarray(scores.entropy, dtype=float))


def _summary(value: float, replicates: Sequence[float], level: float) -> dict:
    low, high = percentile_interval(replicates, level)
    return {"value": value, "low": low, "high": high, "level": level}


def bootstrap_gen_ppl(scores: SampleScores, num_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Pooled gen-PPL of one set of samples with its percentile interval: {value, low, high, level}."""
    nll, tokens, _ = _arrays(scores)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nll), size=(num_resamples, len(nll)))
    replicates = [pooled_gen_ppl(nll[p], tokens[p]) for p in picks]
    return _summary(pooled_gen_ppl(nll, tokens), replicates, level)


def bootstrap_matched_gen_ppl(frontier: Sequence[SampleScores], target_entropy: float | Sequence[float],
                              num_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict:
    """gen-PPL at matched entropy along one frontier, with its interval and the share of replicates whose frontier
    brackets the target. `target_entropy` is a number, or the reference texts' per-sample entropies (then the target
    is their mean, resampled in every replicate too)."""
    if not frontier:
        raise ValueError("bootstrap_matched_gen_ppl needs at least one frontier point.")
    arrays = [_arrays(s) for s in frontier]
    reference = np.atleast_1d(np.asarray(target_entropy, dtype=float))
    rng = np.random.default_rng(seed)

    def matched(pick: Callable[[int], np.ndarray], target: float) -> float:
        points = []
        for nll, tokens, entropy in arrays:
            rows = pick(len(nll))
            points.append((float(np.mean(entropy[rows])), pooled_gen_ppl(nll[rows], tokens[rows])))
        return interpolate_at_entropy(points, target)

    value = matched(np.arange, float(reference.mean()))
    replicates = []
    for _ in range(num_resamples):
        target = float(reference[rng.integers(0, len(reference), len(reference))].mean())
        replicates.append(matched(lambda n: rng.integers(0, n, n), target))
    result = _summary(value, replicates, level)
    result["matched_share"] = sum(math.isfinite(r) for r in replicates) / num_resamples
    return result


def bootstrap_mauve(sample_features: np.ndarray, reference_features: np.ndarray,
                    mauve_fn: Callable[[np.ndarray, np.ndarray], float], num_resamples: int = 100, seed: int = 0,
                    level: float = 0.95) -> dict:
    """MAUVE with its interval, resampling the rows of both feature matrices (the scorer runs once, outside)."""
    rng = np.random.default_rng(seed)
    p, q = np.asarray(sample_features), np.asarray(reference_features)
    replicates = [mauve_fn(p[rng.integers(0, len(p), len(p))], q[rng.integers(0, len(q), len(q))])
                  for _ in range(num_resamples)]
    return _summary(mauve_fn(p, q), replicates, level)


def distinguishable(a: dict, b: dict) -> bool:
    """Whether two figures' intervals ({low, high}) do not overlap; False when either interval is unknown."""
    bounds = (a.get("low"), a.get("high"), b.get("low"), b.get("high"))
    if any(v is None or not math.isfinite(v) for v in bounds):
        return False
    return a["high"] < b["low"] or b["high"] < a["low"]
