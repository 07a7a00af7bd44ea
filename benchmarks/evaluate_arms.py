"""Score one generator ("arm") the same way as every other: samples -> metrics, and speed.

An arm samples through a function `sample(batch, steps, knob, seed) -> (list of token-id lists without special
tokens, executed network calls)`, its `SampleFn`. Quality rows sweep the sampling knob (the frontier); speed rows
time batch-1 latency and batch-64 throughput (median of warm runs), peak memory and FLOPs per generated sequence at
each step count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from functools import partial

from ldlm_metrics import (
    Scorer,
    distinct_n,
    generative_perplexity,
    mauve_from_features,
    mean_repetition_rate,
    mean_unigram_entropy,
    pooled_unigram_entropy,
    scorer_features,
    unigram_entropy,
)
from ldlm_metrics.bootstrap import SampleScores, bootstrap_gen_ppl, bootstrap_mauve, interpolate_at_entropy

from .speed import count_flops, median_time, peak_memory

SampleFn = Callable[[int, int, float, int], tuple[list[list[int]], int]]
MAUVE_RESAMPLES = 100  # each resample refits MAUVE's clusters: ~0.1-1 s on a CPU


def without_special(rows: list[list[int]], special: Collection[int]) -> list[list[int]]:
    """Each row's token ids without the special tokens (what an arm's `sample` returns)."""
    return [[t for t in row if t not in special] for row in rows]


def text_metrics(token_lists: Sequence[Sequence[int]], decode: Callable[[Sequence[int]], str], scorer: Scorer,
                 references: Sequence[str] | None = None, seed: int = 0) -> dict:
    """gen-PPL (with its 95% bootstrap interval), per-sample and corpus-pooled entropy, repetition and (with
    references) MAUVE with its interval, of one set of samples. The per-sample scores (`text_nll`, `text_tokens`,
    `text_entropy`) are kept, so that the matched-entropy interval of a frontier can be computed later."""
    texts = [decode(t) for t in token_lists]
    row = {**token_statistics(token_lists), "examples": texts[:3], **scored_texts(texts, token_lists, scorer, seed)}
    if references is not None:
        row.update(mauve_fields(texts, references, scorer, seed))
    return row


def token_statistics(token_lists: Sequence[Sequence[int]]) -> dict:
    """Count, mean length, per-sample and corpus-pooled unigram entropy, repetition and distinct-n of token lists."""
    row = {"num_samples": len(token_lists),
           "mean_length": sum(len(t) for t in token_lists) / max(len(token_lists), 1),
           "entropy": mean_unigram_entropy(token_lists), "pooled_entropy": pooled_unigram_entropy(token_lists)}
    row.update({f"rep_{n}": mean_repetition_rate(token_lists, n) for n in (2, 3, 4)})
    row.update({f"distinct_{n}": distinct_n(token_lists, n) for n in (1, 2)})
    return row


def mauve_fields(texts: Sequence[str], references: Sequence[str], scorer: Scorer, seed: int) -> dict:
    """MAUVE of `texts` against `references` on scorer features, with its bootstrap interval."""
    p, q = (scorer_features(t, scorer).numpy() for t in (texts, references))
    mauve = bootstrap_mauve(p, q, partial(mauve_from_features, seed=seed), MAUVE_RESAMPLES, seed)
    return {"mauve": mauve["value"], "mauve_interval": [mauve["low"], mauve["high"]]}


def scored_texts(texts: list[str], token_lists: Sequence[Sequence[int]], scorer: Scorer, seed: int) -> dict:
    """Pooled gen-PPL, its interval, and the per-sample scores behind both (rounded: they are kept in results)."""
    if not any(t.strip() for t in texts):
        return {"gen_ppl": math.inf, "scorer": scorer.name, "scorer_checksum": scorer.checksum}
    scored = generative_perplexity(texts, scorer, per_text=True)
    scored["text_nll"] = [round(v, 4) for v in scored["text_nll"]]
    scored["text_entropy"] = [round(unigram_entropy(t), 5) for t in token_lists]
    interval = bootstrap_gen_ppl(SampleScores(scored["text_nll"], scored["text_tokens"], scored["text_entropy"]),
                                 seed=seed)
    return {**scored, "gen_ppl_interval": [interval["low"], interval["high"]]}


def quality_rows(arm: str, sample: SampleFn, steps_list: Sequence[int], knobs: Sequence[float], num_samples: int,
                 decode: Callable[[Sequence[int]], str], scorer: Scorer, batch_size: int = 64, seed: int = 0,
                 references: Sequence[str] | None = None, mauve_at: tuple[int, float] | None = None) -> list[dict]:
    rows = []
    for steps in steps_list:
        for knob in knobs:
            tokens, calls = [], 0
            for start in range(0, num_samples, batch_size):
                batch = min(batch_size, num_samples - start)
                out, c = sample(batch, steps, knob, seed + start)
                tokens += out
                calls = max(calls, c)
            refs = references if mauve_at == (steps, knob) else None
            row = {"arm": arm, "steps": steps, "knob": knob, "network_calls": calls, "seed": seed}
            row.update(text_metrics(tokens, decode, scorer, refs, seed))
            rows.append(row)
    return rows


def speed_rows(arm: str, sample: SampleFn, steps_list: Sequence[int], knob: float, throughput_batch: int = 64,
               repeats: int = 3) -> list[dict]:
    """Per step count: batch-1 latency and batch-`throughput_batch` throughput (median of `repeats` warm runs).
    The untimed warm-up run at the throughput batch also measures peak memory and counts the FLOPs per generated
    sequence, so neither costs a run of its own (a 512-step MDLM run at batch 64 takes minutes on a CPU)."""
    rows = []
    for steps in steps_list:
        def run(batch: int, steps: int = steps) -> int:
            return sample(batch, steps, knob, 0)[1]

        latency = median_time(lambda: run(1), warmup=1, repeats=repeats)
        work: dict[str, int] = {}

        def counted_warmup(run=run, work=work) -> None:
            work["flops"] = count_flops(lambda: run(throughput_batch))

        memory = peak_memory(counted_warmup)
        throughput = median_time(lambda: run(throughput_batch), warmup=0, repeats=repeats)
        rows.append({"arm": arm, "steps": steps, "knob": knob, "network_calls": run(1),
                     "latency_batch1_s": latency["median_s"], "latency_runs_s": latency["runs_s"],
                     f"throughput_batch{throughput_batch}_seq_per_s": throughput_batch / throughput["median_s"],
                     "throughput_runs_s": throughput["runs_s"], "peak_memory_mib": memory["peak_mib"],
                     "memory_kind": memory["kind"], "gflop_per_sequence": work["flops"] / throughput_batch / 1e9})
    return rows


def gen_ppl_at_entropy(rows: Sequence[dict], entropy: float) -> dict:
    """Interpolate log gen-PPL linearly in entropy along one arm's frontier (rows of one step count;
    `ldlm_metrics.bootstrap.interpolate_at_entropy`).

    Returns the value and whether it was interpolated (inside the swept range) or the nearest point's value."""
    points = sorted((r["entropy"], r["gen_ppl"]) for r in rows if math.isfinite(r["gen_ppl"]))
    if not points:
        return {"gen_ppl": math.inf, "matched": False}
    value = interpolate_at_entropy(points, entropy) if len(points) > 1 else math.nan
    if math.isfinite(value):
        return {"gen_ppl": value, "matched": True}
    nearest = min(points, key=lambda p: abs(p[0] - entropy))
    return {"gen_ppl": nearest[1], "matched": False, "nearest_entropy": nearest[0]}
