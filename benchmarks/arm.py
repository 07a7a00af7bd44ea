"""The record of one benchmark arm, and what its functions are given.

An arm is one way of generating text that the harness trains, samples, scores and times like every other: its
record says how its model trains and loads, how it samples, what its sampling knob means, which step counts a tier
measures it at and how its curves are drawn. Two arms may sample one trained model in two ways (LDLM with argmax
tokens and with sampled tokens share the `ldlm` run): `model` names the trained model, its folder in the work dir,
and the harness trains and loads each model once. The arms themselves are listed in benchmarks/arms.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .continuations import ContinueFn
from .evaluate_arms import SampleFn


@dataclass(frozen=True)
class Bench:
    """What every stage and every arm's functions read: the tier (its name and settings), the work dir, the frozen
    LM, the tokenizer and token data all arms share, the ids no sample keeps, the seed, and `budget`, LDLM's
    measured training seconds, which every baseline trains for (0 until LDLM has trained)."""

    tier_name: str
    tier: dict
    work: Path
    frozen_lm: str
    tokenizer: Any
    data: dict[str, torch.Tensor]
    special: frozenset[int]
    seed: int
    budget: float = 0.0


@dataclass(frozen=True)
class Ablation:
    """An LDLM run with one recipe part off: the train/run.py arguments that turn it off, and the paper's claim."""

    name: str
    switch: tuple[str, ...]
    claim: str


@dataclass(frozen=True)
class Arm:
    """One arm. `train(bench, arm)` trains `model` into `bench.work / model` unless it is there and returns what
    the result records of that training; `load(bench, arm)` loads it; `sampler(loaded, special)` returns the
    arm's `SampleFn` (and `continuer(loaded, special)` its `ContinueFn`, for arms that continue prompts);
    `parameters(loaded)` counts what generation runs. `knob` is what the knob means, as the
    result names it; `steps(tier)` the step counts a tier measures (`[0]`: the arm has none)."""

    name: str
    model: str
    train: TrainFn
    load: LoadFn
    sampler: SamplerFn
    parameters: Callable[[Any], int]
    knob: str
    steps: Callable[[dict], list[int]]
    colour: str  # its curves' matplotlib colour, one hue per arm (paler = fewer steps)
    dashed: bool = False  # drawn dashed: argmax decoding, whose knob is the initial noise scale
    distilled: bool = False  # students distilled from the LDLM arm, one per step count (the distil stage)
    baseline: bool = False  # trains for LDLM's measured seconds; its rows can be reused (--baselines_from)
    ablation: Ablation | None = None  # an LDLM arm on a run with one recipe part off
    continuer: ContinuerFn | None = None  # (loaded, special) -> its ContinueFn: the arm continues prompts
    conditional: bool = False  # trained to read a prompt: measured in prompted tiers only

    def knob_values(self, tier: dict) -> list[float]:
        """The knob values its quality sweep measures: the tier's `knobs`, unless `arm_knobs` names the arm."""
        return tier.get("arm_knobs", {}).get(self.name, tier["knobs"])

    def ablated(self, ablation: Ablation) -> Arm:
        """This arm on the LDLM run with `ablation`'s part off: rows `<name>-<ablation>`, run `ablation-<name>`."""
        return replace(self, name=f"{self.name}-{ablation.name}", model=f"ablation-{ablation.name}", ablation=ablation)


TrainFn = Callable[[Bench, Arm], dict]
LoadFn = Callable[[Bench, Arm], Any]
SamplerFn = Callable[[Any, frozenset[int]], SampleFn]
ContinuerFn = Callable[[Any, frozenset[int]], ContinueFn]


def unique_models(arms: list[Arm]) -> list[Arm]:
    """The first arm of each trained model, in order: what trains or loads each model once."""
    first: dict[str, Arm] = {}
    for arm in arms:
        first.setdefault(arm.model, arm)
    return list(first.values())


class ArmModels:
    """Each trained model, loaded from the work dir once: by `load`, or when one of its arms first samples."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.loaded: dict[str, Any] = {}

    def load(self, arm: Arm) -> Any:
        if arm.model not in self.loaded:
            self.loaded[arm.model] = arm.load(self.bench, arm)
        return self.loaded[arm.model]

    def sampler(self, arm: Arm) -> SampleFn:
        """`arm`'s sample function; its model is loaded at the first call, so a fully cached sweep loads nothing."""
        def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
            return arm.sampler(self.load(arm), self.bench.special)(batch, steps, knob, seed)

        return sample

    def continuer(self, arm: Arm) -> ContinueFn:
        """`arm`'s continue function, its model loaded at the first call."""
        if arm.continuer is None:
            raise ValueError(f"The {arm.name} arm does not continue prompts: a prompted tier measures only arms "
                             "with a `continuer`.")

        def continue_prompts(prompts: list[list[int]], steps: int, knob: float, seed: int):
            return arm.continuer(self.load(arm), self.bench.special)(prompts, steps, knob, seed)

        return continue_prompts
