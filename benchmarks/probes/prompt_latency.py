"""What a prompt costs at generation: batch-1 seconds of prompted generation against an unconditional sample of the
same model, length and steps.

    python -m benchmarks.probes.prompt_latency train/configs/quickstart.yaml \
        train/configs/quickstart-conditional.yaml --steps 10 50 --output latency.json

Each source is an LDLM folder or a training config (`train/run.py`'s YAML), whose model is built with fresh weights:
latency does not depend on the weights, so the cost of a recipe is measured without training it. A prompt is

- **guided** on a model trained without context: every step's estimate is pushed toward latents that decode to the
  prompt (`guidance_scale`, a decoder forward and backward per step);
- **conditional** on a model trained with context conditioning: one frozen-LM pass on the prompt, then the
  denoiser cross-attends to it at every step; the row `conditional, full frozen LM` runs the frozen LM to its last
  layer instead of stopping at the layer it reads, to show what that early exit saves.

Rounds alternate the modes over the same held-out prompts (the first `prefix_tokens` word pieces of sentences the
training holds out), so drift in the machine's speed hits every mode alike; each row reports the median over rounds
of the mean seconds per prompt and of the ratio to the unconditional sample timed in the same round.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import torch

from modeling_ldlm import LDLMForDiffusionGeneration

from ..paths import BROWN
from .prompt_conditioning import held_out_prompts
from .result_output import print_and_save, settings_of


def load_source(source: str) -> LDLMForDiffusionGeneration:
    """An LDLM folder, or a freshly initialised model of a training config."""
    if source.endswith((".yaml", ".yml")):
        from train.command_line import parse_run_args
        from train.models import build_model

        model_args, _, _ = parse_run_args([source])
        return build_model(model_args).eval()
    return LDLMForDiffusionGeneration.from_pretrained(source).eval()


def seconds_per_prompt(model, prompt_ids: list[list[int]] | None, steps: int, max_new_tokens: int, **settings) -> float:
    """Mean batch-1 seconds per prompt (None: as many unconditional samples, one per prompt)."""
    start = time.perf_counter()
    for i, ids in enumerate(prompt_ids):
        prompt = None if ids is None else torch.tensor([ids])
        model.generate(prompt, max_new_tokens=max_new_tokens, num_inference_steps=steps,
                       generator=torch.Generator().manual_seed(i), **settings)
    return (time.perf_counter() - start) / len(prompt_ids)


def prompt_modes(model) -> dict[str, tuple[dict, bool]]:
    """The prompted modes a model supports: their generate() settings, and whether the frozen LM runs to its end."""
    if not model.config.context_conditioning:
        return {"guided": ({"guidance_scale": 1.0}, False)}
    return {"conditional": ({}, False), "conditional, full frozen LM": ({}, True)}


@contextlib.contextmanager
def frozen_lm_to_its_end(model, enabled: bool):
    """While enabled, the frozen LM runs all its layers (no early exit at the layer the model reads)."""
    reader, saved = model.frozen_layer_reader, dict(model.frozen_layer_reader.early_exit)
    if enabled:
        reader.early_exit = dict.fromkeys(saved, False)
    try:
        yield
    finally:
        reader.early_exit = saved


def timed_round(model, prompt_ids: list[list[int]], steps: int, max_new_tokens: int) -> dict[str, float]:
    """One round: the unconditional sample, then each prompted mode, over the same prompts."""
    times = {"unconditional": seconds_per_prompt(model, [None] * len(prompt_ids), steps, max_new_tokens)}
    for mode, (settings, full_frozen_lm) in prompt_modes(model).items():
        with frozen_lm_to_its_end(model, full_frozen_lm):
            times[mode] = seconds_per_prompt(model, prompt_ids, steps, max_new_tokens, **settings)
    return times


def source_rows(source: str, args) -> list[dict]:
    model = load_source(source)
    prompt_ids, _, _ = held_out_prompts(model.tokenizer, args.text_file, args.num_prompts, args.prefix_tokens,
                                        args.max_new_tokens)
    rows = []
    for steps in args.steps:
        timed_round(model, prompt_ids[:2], steps, args.max_new_tokens)  # warm-up (and the early-exit check)
        rounds = [timed_round(model, prompt_ids, steps, args.max_new_tokens) for _ in range(args.rounds)]
        for mode in rounds[0]:
            rows.append({"source": source, "steps": steps, "mode": mode,
                         "seconds_per_prompt": statistics.median(r[mode] for r in rounds),
                         "ratio_to_unconditional": statistics.median(r[mode] / r["unconditional"] for r in rounds)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="LDLM folders or training configs (fresh weights).")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--num_prompts", type=int, default=16, help="Prompts per round.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prefix_tokens", type=int, default=6)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--text_file", type=Path, default=BROWN)
    parser.add_argument("--output", type=Path, default=None, help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    rows = [row for source in args.sources for row in source_rows(source, args)]
    result = {"settings": settings_of(args),
              "threads": torch.get_num_threads(), "rows": rows}
    print_and_save(result, args.output)
    return result


if __name__ == "__main__":
    main()
