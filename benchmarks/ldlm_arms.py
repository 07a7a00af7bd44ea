"""The LDLM arms' functions: training with train/run.py and progressive distillation with train/distill.py (each a
subprocess on the work dir's sentences, skipped when its run has finished), loading the checkpoints, and sampling
them with argmax tokens (the knob scales the initial noise) or sampled tokens (the knob is a token temperature)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from modeling_ldlm import LDLMForDiffusionGeneration, LDLMGenerationConfig

from .arm import Arm, Bench
from .baselines import row_generators
from .continuations import ContinueFn, right_padded
from .evaluate_arms import SampleFn, without_special
from .log import log
from .paths import ROOT

DISTILL_CONFIG = "train/configs/distill-cpu.yaml"  # progressive distillation of the tier's LDLM arm
TEACHER = "ldlm"  # the run the students are distilled from


def train_ldlm(bench: Bench, arm: Arm, args: tuple[str, ...] = ()) -> dict:
    """Run train/run.py once for the arm's run: the tier's LDLM recipe, then `args` (an arm's own train/run.py
    arguments, e.g. `partial(train_ldlm, args=(...))` in its record), then its ablation's switch. Returns the run's
    final metrics."""
    out, tier = bench.work / arm.model, bench.tier
    if not (out / "ldlm_run.json").exists():
        ablation = [*tier["ablation_args"], *arm.ablation.switch] if arm.ablation else []
        cmd = [sys.executable, str(ROOT / "train" / "run.py"), str(ROOT / tier["ldlm_config"]), "--output_dir",
               str(out), "--frozen_lm", str(bench.frozen_lm), "--train_file", str(bench.work / "train.txt"),
               "--validation_file", str(bench.work / "validation.txt"), "--max_sequence_length",
               str(tier["max_length"]), "--hidden_states_cache_dir", str(bench.work / "hidden_states"),
               "--num_samples", "0", *tier["ldlm_args"], *args, *ablation, *every_sentence(bench)]
        run_logged(f"train {arm.model}", cmd)
    return json.loads((out / "ldlm_run.json").read_text())["metrics"]


def distill_ldlm(bench: Bench, arm: Arm) -> dict:
    """Progressive distillation of the `ldlm` run with train/distill.py, on the same sentences (skipped when it
    exists); its folder holds the last student and `student-<N>-steps` for each stage. Returns the record."""
    out = bench.work / arm.model
    if not (out / "distill_run.json").exists():
        cmd = [sys.executable, str(ROOT / "train" / "distill.py"), str(ROOT / DISTILL_CONFIG), "--teacher",
               str(bench.work / TEACHER), "--output_dir", str(out), "--train_file", str(bench.work / "train.txt"),
               "--validation_file", str(bench.work / "validation.txt"), "--hidden_states_cache_dir",
               str(bench.work / "hidden_states"), "--num_samples", "0", *bench.tier["distill"]["args"],
               *every_sentence(bench)]
        run_logged("distil ldlm", cmd)
    run = json.loads((out / "distill_run.json").read_text())
    return {"distill_seconds": run["distill_seconds"], "teacher_train_seconds": bench.budget,
            "stages": run["stages"], "command": run["command"],
            "metrics": {k: v for k, v in run["metrics"].items() if k.startswith("eval_")}}


def every_sentence(bench: Bench) -> list[str]:
    """With `drop_long_lines`: train on every training sentence, as the baselines do (the preset may cap them)."""
    if not bench.tier.get("drop_long_lines"):
        return []
    train_lines = (bench.work / "train.txt").read_text().count("\n")
    return ["--max_train_samples", str(train_lines), "--long_lines", "drop"]


def run_logged(what: str, cmd: list[str]) -> None:
    log(f"{what}: {' '.join(cmd)}")
    subprocess.run(cmd, check=True, cwd=ROOT)


def load_ldlm(bench: Bench, arm: Arm) -> LDLMForDiffusionGeneration:
    return LDLMForDiffusionGeneration.from_pretrained(bench.work / arm.model).eval()


def load_students(bench: Bench, arm: Arm) -> dict[int, LDLMForDiffusionGeneration]:
    """The student distilled for each of the arm's step counts."""
    return {steps: LDLMForDiffusionGeneration.from_pretrained(student_folder(bench.work / arm.model, steps)).eval()
            for steps in arm.steps(bench.tier)}


def student_folder(distilled: Path, steps: int) -> Path:
    folder = distilled / f"student-{steps}-steps"
    if not (folder / "model.safetensors").exists():
        raise ValueError(f"{distilled} has no {steps}-step student: distil down to at least {steps} steps.")
    return folder


def knob_settings(knob_name: str, knob: float) -> dict:
    """The generate() settings of an LDLM arm's knob: the initial noise scale with argmax tokens, or a token
    temperature with noise scale 1."""
    return {"noise_scale": knob} if knob_name == "noise_scale" else {"do_sample": True, "temperature": knob}


def ldlm_sampler(model: LDLMForDiffusionGeneration, special: frozenset[int], knob_name: str) -> SampleFn:
    """knob_name "noise_scale": argmax tokens, the knob scales the initial noise; "temperature": tokens sampled from
    the decoder at that temperature with noise_scale 1 (the same kind of knob as the baselines')."""
    def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        out = model.generate(num_return_sequences=batch, num_inference_steps=steps, **knob_settings(knob_name, knob),
                             generator=torch.Generator().manual_seed(seed), return_dict_in_generate=True)
        return without_special(out.completions.tolist(), special), out.num_network_calls

    return sample


def ldlm_continuer(model: LDLMForDiffusionGeneration, special: frozenset[int], knob_name: str,
                   **settings: float) -> ContinueFn:
    """`generate(prompt)` on a batch of right-padded prompts, one generator per row: a checkpoint trained with
    context conditioning reads the prompt in its denoiser, any other follows it by guidance on the prompt's
    positions (the checkpoint's own `guidance_scale`). Knobs as in `ldlm_sampler`; `settings` are more generate()
    settings (e.g. `context_guidance_scale`)."""
    def continue_prompts(prompts: list[list[int]], steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        ids, mask = right_padded(prompts, model.config.pad_token_id or 0)
        out = model.generate(ids, attention_mask=mask, num_inference_steps=steps, **knob_settings(knob_name, knob),
                             **settings, generator=row_generators(len(prompts), seed), return_dict_in_generate=True)
        return without_special(out.completions.tolist(), special), out.num_network_calls

    return continue_prompts


def distilled_sampler(students: dict[int, LDLMForDiffusionGeneration], special: frozenset[int],
                      knob_name: str) -> SampleFn:
    """Like `ldlm_sampler`, with the student distilled for each step count, run at its own defaults."""
    samplers = {steps: ldlm_sampler(model, special, knob_name) for steps, model in students.items()}

    def sample(batch: int, steps: int, knob: float, seed: int) -> tuple[list[list[int]], int]:
        return samplers[steps](batch, steps, knob, seed)

    return sample


def ldlm_parameters(model: LDLMForDiffusionGeneration) -> int:
    """The parameters generation runs: denoiser, latent decoder and token decoder (not the frozen LM or encoder)."""
    return sum(p.numel() for m in (model.denoiser, model.latent_decoder, model.token_decoder) for p in m.parameters())


def ldlm_steps(tier: dict) -> list[int]:
    return tier["ldlm_steps"]


def student_steps(tier: dict) -> list[int]:
    return tier["distill"]["steps"]


def default_ldlm_steps(tier: dict) -> int:
    """LDLM's own default step count when the tier measures it, else the tier's middle one: the step count of the
    summary's headline and of the ablations."""
    default = LDLMGenerationConfig().num_inference_steps
    return default if default in tier["ldlm_steps"] else tier["ldlm_steps"][len(tier["ldlm_steps"]) // 2]
