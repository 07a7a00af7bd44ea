"""How well, and at what cost, does each LDLM checkpoint continue a prompt?

    python -m benchmarks.probes.prompt_conditioning runs/quickstart-conditional runs/quickstart \
        --num_prompts 256 --prefix_tokens 6 --max_new_tokens 16 --steps 10 --output prompts.json

For held-out sentences (the last 5% of the Brown corpus, which training holds out), the first `prefix_tokens` word
pieces are the prompt. Each checkpoint continues every prompt with `generate(prompt)` (argmax tokens, one seed per
prompt), which is

- **conditional** on a checkpoint trained with context conditioning: the denoiser reads the prompt, one network
  call per step (and `--context_guidance_scales` other than 1 add classifier-free guidance, one call on twice the
  batch);
- **guided** on any other checkpoint: every step's estimate is pushed toward latents that decode to the prompt, a
  decoder forward and backward per step.

Controls under the same scorer: the **glued** unconditional sample of the checkpoint appended to the same prompt (a
prompt that steers scores lower than this), and the **real** continuation of each held-out sentence (the data's
figure, cut to the same length). Each row reports the perplexity of the continuation tokens given the prompt, pooled
over prompts, with a 95% bootstrap interval over prompts (`ldlm_metrics.bootstrap`), the continuations' mean unigram
entropy (a collapsed, repetitive continuation scores a low perplexity at a low entropy), and the batch-1 seconds per
prompt against an unconditional batch-1 sample of the same length and steps. With several `--noise_scales` (the
argmax knob: a larger scale, longer and more varied continuations) each mode and the glued control are also read at
the real continuations' mean entropy, by log-linear interpolation along the sweep, with a bootstrap interval that
resamples the prompts (`bootstrap_matched_gen_ppl`): the figure that compares modes whose continuations differ in
length and variety.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import torch

from ldlm_metrics import load_scorer, unigram_entropy
from ldlm_metrics.bootstrap import SampleScores, bootstrap_gen_ppl, bootstrap_matched_gen_ppl
from modeling_ldlm import LDLMForDiffusionGeneration

from ..continuations import continuation_scores as scores_given_prompts
from ..paths import BROWN
from .result_output import print_and_save, settings_of


def continuation_scores(scorer, prompts: list[str], continuations: list[str]) -> SampleScores:
    """Per prompt: summed NLL of the continuation's tokens given the prompt under the scorer and their count
    (`benchmarks.continuations.continuation_scores`), and their unigram entropy over the scorer's tokens."""
    nll, count = scores_given_prompts(scorer, prompts, continuations)
    tok = scorer.tokenizer
    entropy = [unigram_entropy(tok(" " + c, add_special_tokens=False).input_ids) if c.strip() else 0.0
               for c in continuations]
    return SampleScores(nll, count, entropy)


def scored_row(name: str, scorer, prompts: list[str], continuations: list[str],
               **extra) -> tuple[dict, SampleScores]:
    """A row of one set of continuations (pooled perplexity with its interval, mean entropy, examples) and their
    per-prompt scores."""
    scores = continuation_scores(scorer, prompts, continuations)
    row = {"name": name, **extra, "continuation_ppl": bootstrap_gen_ppl(scores),
           "entropy": sum(scores.entropy) / len(scores.entropy),
           "examples": [{"prompt": p, "continuation": c} for p, c in zip(prompts, continuations)][:5]}
    return row, scores


def matched_row(name: str, frontier: list[SampleScores], real_entropy: list[float], **extra) -> dict:
    """Perplexity at the real continuations' entropy along a noise-scale sweep, with its bootstrap interval."""
    return {"name": name, **extra, "matched_at_entropy": sum(real_entropy) / len(real_entropy),
            "continuation_ppl": bootstrap_matched_gen_ppl(frontier, real_entropy)}


def held_out_prompts(tokenizer, text_file: Path, num_prompts: int, prefix_tokens: int, max_new_tokens: int):
    """(prompt ids with the LM's start token, prompt texts, real continuations of max_new_tokens word pieces)."""
    with gzip.open(text_file, "rt", encoding="utf-8") as f:
        lines = [s for s in (line.strip() for line in f) if s]
    held_out = lines[int(len(lines) * 0.95):]
    rows = [tokenizer(s).input_ids for s in held_out]
    rows = [r for r in rows if len(r) >= prefix_tokens + 6][:num_prompts]
    prompt_ids = [r[: prefix_tokens + 1] for r in rows]  # [CLS] + prefix (generate drops a trailing [SEP] itself)
    prompts = [tokenizer.decode(p, skip_special_tokens=True) for p in prompt_ids]
    real = [tokenizer.decode(r[prefix_tokens + 1: prefix_tokens + 1 + max_new_tokens], skip_special_tokens=True)
            for r in rows]
    return prompt_ids, prompts, real


def continue_prompts(model, prompt_ids: list[list[int]], args, seed: int, **settings) -> tuple[list[str], float]:
    """Each prompt continued at batch 1 (argmax); the texts and the mean seconds per prompt."""
    tok, texts = model.tokenizer, []
    start = time.perf_counter()
    for i, ids in enumerate(prompt_ids):
        out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens, num_inference_steps=args.steps,
                             generator=torch.Generator().manual_seed(seed + i), return_dict_in_generate=True,
                             **settings)
        texts.append(tok.decode(out.completions[0].tolist(), skip_special_tokens=True))
    return texts, (time.perf_counter() - start) / len(prompt_ids)


def unconditional_seconds(model, args, repeats: int) -> float:
    """Batch-1 seconds of an unconditional sample of max_new_tokens at the same steps."""
    start = time.perf_counter()
    for i in range(repeats):
        model.generate(max_new_tokens=args.max_new_tokens, num_inference_steps=args.steps,
                       generator=torch.Generator().manual_seed(i))
    return (time.perf_counter() - start) / repeats


def checkpoint_rows(model, folder: str, prompt_ids: list[list[int]], prompts: list[str], scorer, args,
                    real_entropy: list[float]) -> list[dict]:
    """The rows of one checkpoint: its continuations in its own mode (each guidance weight), then its glued control,
    each at every noise scale, and at the real continuations' entropy where several noise scales were swept."""
    conditional = model.config.context_conditioning
    uncond_s = unconditional_seconds(model, args, min(len(prompt_ids), args.latency_repeats))
    mode = "conditional" if conditional else "guided"
    sweeps = ([{"context_guidance_scale": w} for w in args.context_guidance_scales] if conditional
              else [{"guidance_scale": args.guidance_scale}])
    rows = []
    for settings in sweeps:
        frontier = []
        for knob in args.noise_scales:
            texts, seconds = continue_prompts(model, prompt_ids, args, args.seed, noise_scale=knob, **settings)
            row, scores = scored_row(mode, scorer, prompts, texts, checkpoint=folder, **settings, noise_scale=knob,
                                     seconds_per_prompt=seconds, unconditional_seconds=uncond_s,
                                     latency_ratio=seconds / uncond_s)
            rows.append(row)
            frontier.append(scores)
        if len(frontier) > 1:
            rows.append(matched_row(mode, frontier, real_entropy, checkpoint=folder, **settings))
    return rows + glued_rows(model, folder, prompts, scorer, args, real_entropy)


def glued_rows(model, folder: str, prompts: list[str], scorer, args, real_entropy: list[float]) -> list[dict]:
    """The control: the checkpoint's unconditional samples appended to the prompts, at every noise scale."""
    rows, frontier = [], []
    for knob in args.noise_scales:
        samples = model.generate(num_return_sequences=len(prompts), num_inference_steps=args.steps,
                                 max_new_tokens=args.max_new_tokens + 1, noise_scale=knob,
                                 generator=[torch.Generator().manual_seed(args.seed + i) for i in range(len(prompts))])
        glued = [model.tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in samples]  # [CLS] + new tokens
        row, scores = scored_row("glued", scorer, prompts, glued, checkpoint=folder, noise_scale=knob)
        rows.append(row)
        frontier.append(scores)
    if len(frontier) > 1:
        rows.append(matched_row("glued", frontier, real_entropy, checkpoint=folder))
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="LDLM folders; all must share the frozen LM's tokenizer.")
    parser.add_argument("--num_prompts", type=int, default=256)
    parser.add_argument("--prefix_tokens", type=int, default=6)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance_scale", type=float, default=1.0, help="Gradient guidance of guided checkpoints.")
    parser.add_argument("--context_guidance_scales", type=float, nargs="+", default=[1.0],
                        help="Classifier-free guidance weights tried on conditional checkpoints (1: none).")
    parser.add_argument("--noise_scales", type=float, nargs="+", default=[1.0],
                        help="Noise scales swept (argmax tokens); with several, each mode is also read at the real "
                             "continuations' entropy.")
    parser.add_argument("--latency_repeats", type=int, default=32, help="Unconditional batch-1 samples timed.")
    parser.add_argument("--scorer", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text_file", type=Path, default=BROWN)
    parser.add_argument("--output", type=Path, default=None, help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    scorer = load_scorer(args.scorer)
    rows = []
    for folder in args.checkpoints:
        model = LDLMForDiffusionGeneration.from_pretrained(folder).eval()
        if not rows:  # the prompts, from the first checkpoint's tokenizer (all share the frozen LM's)
            prompt_ids, prompts, real = held_out_prompts(model.tokenizer, args.text_file, args.num_prompts,
                                                         args.prefix_tokens, args.max_new_tokens)
            real_row, real_scores = scored_row("real", scorer, prompts, real)
            rows.append(real_row)
        rows += checkpoint_rows(model, folder, prompt_ids, prompts, scorer, args, real_scores.entropy)
    result = {"settings": settings_of(args),
              "num_prompts": len(prompts), "scorer": scorer.name, "scorer_checksum": scorer.checksum, "rows": rows}
    print_and_save(result, args.output)
    return result


if __name__ == "__main__":
    main()
