"""The prompted evaluation: every arm continues the same held-out prompts, scored given the prompt.

A prompted tier (`prompted` in benchmarks/tiers.py) measures how well each arm continues text instead of how well it
writes from nothing. Its prompts are the beginnings of the tier's held-out sentences, with lengths drawn like a user's
(the sentence's first k word pieces, k ~ U{1, ..., floor(m / 2)} for a sentence of m word pieces, so that at least
half of it is left to write); each arm writes the rest of the sentence, until it ends it or the canvas is full. An
arm continues prompts through its `ContinueFn`, `continue(prompts, steps, knob, seed) -> (continuation token-id lists
without special tokens, executed network calls)`, where each prompt is a list of ids that starts with the frozen LM's
start token.

A set of continuations is scored like a set of samples (benchmarks/evaluate_arms.py), with the prompt as the
scorer's context: gen-PPL is the perplexity of the continuation's tokens given the prompt, pooled over prompts,

    gen-PPL = exp( sum_i NLL(c_i | p_i) / sum_i |c_i| ),

with a 95% bootstrap interval over prompts; entropy is the continuation's own unigram entropy; MAUVE compares
[prompt | continuation] with [prompt | real continuation]. The held-out sentences' real continuations, scored the same
way, are the control, and their entropy is the one every arm is matched at.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch

from ldlm_metrics import Scorer, unigram_entropy
from ldlm_metrics.bootstrap import SampleScores, bootstrap_gen_ppl

from .evaluate_arms import mauve_fields, token_statistics

ContinueFn = Callable[[list[list[int]], int, float, int], tuple[list[list[int]], int]]


@dataclass(frozen=True)
class Prompts:
    """Held-out prompts: `ids` (each with the start token), their texts, and the real continuations' ids and texts."""

    ids: list[list[int]]
    texts: list[str]
    real: list[list[int]]
    real_texts: list[str]


def held_out_prompts(val_ids: torch.Tensor, val_mask: torch.Tensor, special: Collection[int],
                     decode: Callable[[Sequence[int]], str], num_prompts: int, seed: int = 0) -> Prompts:
    """The first `num_prompts` held-out sentences of at least 4 word pieces, each cut after k ~ U{1..floor(m/2)} of
    its m word pieces (one seeded draw per sentence)."""
    generator = torch.Generator().manual_seed(seed)
    ids, real = [], []
    for row, mask in zip(val_ids, val_mask):
        tokens = row[mask.bool()].tolist()
        start = tokens[:1] if tokens and tokens[0] in special else []
        body = [t for t in tokens if t not in special]
        if len(body) < 4:
            continue
        k = int(torch.randint(1, len(body) // 2 + 1, (1,), generator=generator))
        ids.append(start + body[:k])
        real.append(body[k:])
        if len(ids) == num_prompts:
            break
    if len(ids) < num_prompts:
        raise ValueError(f"The held-out data has {len(ids)} sentences of at least 4 word pieces; the tier asks for "
                         f"{num_prompts} prompts: lower `samples` or hold out more sentences (`val_lines`).")
    return Prompts(ids, [decode(p) for p in ids], real, [decode(r) for r in real])


def continuation_scores(scorer: Scorer, prompts: Sequence[str], continuations: Sequence[str],
                        batch_size: int = 32) -> tuple[list[float], list[int]]:
    """Per prompt: the summed NLL (nats) of the continuation's scorer tokens given the scorer's start token and the
    prompt, and their count (an empty continuation scores 0 nats over 0 tokens)."""
    tok, model = scorer.tokenizer, scorer.model
    start = next(i for i in (tok.bos_token_id, tok.eos_token_id, getattr(tok, "cls_token_id", None)) if i is not None)
    pad = tok.pad_token_id if tok.pad_token_id is not None else start
    pairs = [([start] + tok(p, add_special_tokens=False).input_ids,
              tok(" " + c, add_special_tokens=False).input_ids if c.strip() else []) for p, c in zip(prompts, continuations)]
    nll, count = [], []
    device = next(model.parameters()).device
    for lo in range(0, len(pairs), batch_size):
        batch = pairs[lo:lo + batch_size]
        width = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        scored = torch.zeros((len(batch), width), dtype=torch.bool)  # the continuation's positions
        for i, (p, c) in enumerate(batch):
            ids[i, :len(p) + len(c)] = torch.tensor(p + c)
            mask[i, :len(p) + len(c)] = 1
            scored[i, len(p):len(p) + len(c)] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float().cpu()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        nll += (losses * scored[:, 1:]).sum(1).tolist()
        count += scored.sum(1).tolist()
    return nll, count


def continuation_metrics(prompts: Prompts, token_lists: Sequence[Sequence[int]],
                         decode: Callable[[Sequence[int]], str], scorer: Scorer, mauve: bool = False,
                         seed: int = 0) -> dict:
    """One set of continuations (one per prompt, in order) through the metrics of an unconditional row: gen-PPL of
    the continuations given their prompts with its interval, per-sample and pooled entropy of the continuations,
    repetition, and (`mauve`) MAUVE of [prompt | continuation] against [prompt | real continuation]. The per-prompt
    scores are kept (`text_nll`, `text_tokens`, `text_entropy`) for the matched-entropy interval of a frontier."""
    texts = [decode(t) for t in token_lists]
    row = {**token_statistics(token_lists), "examples": [f"{p} || {c}" for p, c in zip(prompts.texts, texts)][:3]}
    nll, count = continuation_scores(scorer, prompts.texts, texts)
    scores = SampleScores(nll, count, [unigram_entropy(t) for t in token_lists])
    interval = bootstrap_gen_ppl(scores, seed=seed)
    row.update(gen_ppl=interval["value"], gen_ppl_interval=[interval["low"], interval["high"]],
               scored_tokens=sum(count), empty_texts=sum(1 for c in count if c == 0), scorer=scorer.name,
               scorer_checksum=scorer.checksum, text_nll=[round(v, 4) for v in nll], text_tokens=count,
               text_entropy=[round(v, 5) for v in scores.entropy])
    if mauve:
        full = [f"{p} {c}" for p, c in zip(prompts.texts, texts)]
        real = [f"{p} {c}" for p, c in zip(prompts.texts, prompts.real_texts)]
        row.update(mauve_fields(full, real, scorer, seed))
    return row


def continuation_rows(arm: str, continue_fn: ContinueFn, prompts: Prompts, steps_list: Sequence[int],
                      knobs: Sequence[float], decode: Callable[[Sequence[int]], str], scorer: Scorer,
                      batch_size: int = 64, seed: int = 0, mauve_at: tuple[int, float] | None = None) -> list[dict]:
    """One arm's rows over steps x knobs: every prompt continued (in batches, each batch its own seed), scored."""
    rows = []
    for steps in steps_list:
        for knob in knobs:
            tokens, calls = [], 0
            for start in range(0, len(prompts.ids), batch_size):
                out, c = continue_fn(prompts.ids[start:start + batch_size], steps, knob, seed + start)
                tokens += out
                calls = max(calls, c)
            row = {"arm": arm, "steps": steps, "knob": knob, "network_calls": calls, "seed": seed}
            row.update(continuation_metrics(prompts, tokens, decode, scorer, mauve_at == (steps, knob), seed))
            rows.append(row)
    return rows


def prompted_sampler(continue_fn: ContinueFn, prompt_ids: list[list[int]]):
    """A `SampleFn` that continues the first `batch` prompts: what the speed rows time (batch-1 latency with the
    first prompt, throughput over the first `batch`)."""
    def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        if batch > len(prompt_ids):
            raise ValueError(f"{batch} prompts asked for, {len(prompt_ids)} held out.")
        return continue_fn(prompt_ids[:batch], steps, knob, seed)

    return sample


def right_padded(prompt_ids: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of prompts of different lengths, padded on the right."""
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompt_ids):
        ids[i, :len(p)] = torch.tensor(p, dtype=torch.long)
        mask[i, :len(p)] = 1
    return ids, mask
