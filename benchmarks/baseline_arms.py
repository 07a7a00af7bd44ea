"""The token-level baseline arms' functions (AR, MDLM and CDCD): each trains for LDLM's measured seconds on the same
token data (benchmarks/train_baselines.py; a killed run resumes, a finished one is skipped), loads from its folder
in the work dir and samples at a token temperature (MDLM over its step count, AR one token per network call).

`train_baseline` and `load_baseline` take the model's class: a baseline whose constructor takes (vocab_size,
max_length, width, layers, heads, bos, eos, pad) and which has `loss(ids, mask)` needs no function of its own."""

from __future__ import annotations

from safetensors.torch import load_file
from torch import nn

from modeling_ldlm.token_ids import end_of_sequence_id, start_of_sequence_id

from .arm import Arm, Bench
from .baselines import ARBaseline
from .continuations import ContinueFn
from .evaluate_arms import SampleFn, without_special
from .log import log
from .train_baselines import train_for_budget


def build(bench: Bench, model_class: type[nn.Module]) -> nn.Module:
    """An untrained baseline, sized by the tier, on the frozen LM's vocabulary and special tokens."""
    tokenizer = bench.tokenizer
    eos = end_of_sequence_id(tokenizer)  # the same rule as LDLM's: [SEP] for BERT-like, <|endoftext|> for GPT-2
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return model_class(len(tokenizer), bench.tier["max_length"], bos=start_of_sequence_id(tokenizer), eos=eos,
                       pad=pad, **bench.tier["baseline"])


def train_baseline(bench: Bench, arm: Arm, model_class: type[nn.Module]) -> dict:
    """Train for `bench.budget` seconds (resumes or skips a finished run); returns steps, seconds and the loss."""
    log(f"{arm.model}: {bench.budget:.0f} s of training (LDLM's training time; resumes or skips a finished run)")
    ids, mask = bench.data["train_ids"], bench.data["train_mask"]
    return train_for_budget(build(bench, model_class), ids, mask, bench.work / arm.model, budget_s=bench.budget,
                            batch_size=min(64, len(ids)), seed=bench.seed)


def load_baseline(bench: Bench, arm: Arm, model_class: type[nn.Module]) -> nn.Module:
    model = build(bench, model_class)
    model.load_state_dict(load_file(bench.work / arm.model / "model.safetensors"))
    return model.eval()


def ar_sampler(model: ARBaseline, special: frozenset[int]) -> SampleFn:
    def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        seq, calls = model.generate(batch, temperature=knob, seed=seed)
        return without_special(seq.tolist(), special), calls

    return sample


def stepped_sampler(model: nn.Module, special: frozenset[int]) -> SampleFn:
    """MDLM's sampler, and that of any baseline whose `generate(batch, steps=, temperature=, seed=)` takes a step
    count."""
    def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        seq, calls = model.generate(batch, steps=steps, temperature=knob, seed=seed)
        return without_special(seq.tolist(), special), calls

    return sample


def ar_continuer(model: ARBaseline, special: frozenset[int]) -> ContinueFn:
    """AR continues each prompt natively (the prompt read, then one token per call)."""
    def continue_prompts(prompts: list[list[int]], steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        seq, calls = model.generate(len(prompts), temperature=knob, seed=seed, prompts=prompts)
        return continuations(seq, prompts, special), calls

    return continue_prompts


def stepped_continuer(model: nn.Module, special: frozenset[int]) -> ContinueFn:
    """MDLM with each prompt fixed at the start of its canvas (the rest masked), over its step count."""
    def continue_prompts(prompts: list[list[int]], steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        seq, calls = model.generate(len(prompts), steps=steps, temperature=knob, seed=seed, prompts=prompts)
        return continuations(seq, prompts, special), calls

    return continue_prompts


def continuations(seq, prompts: list[list[int]], special: frozenset[int]) -> list[list[int]]:
    """Each row's ids after its prompt, without special tokens."""
    return without_special([row[len(p):] for row, p in zip(seq.tolist(), prompts)], special)


def all_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mdlm_steps(tier: dict) -> list[int]:
    return tier["mdlm_steps"]


def cdcd_steps(tier: dict) -> list[int]:
    return tier["cdcd_steps"]


def no_steps(tier: dict) -> list[int]:
    """AR has no step count: one network call per token (its rows say steps 0)."""
    return [0]
