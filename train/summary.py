"""The end of a run (train/run.py, train/distill.py): samples from the saved model, the files written next to it (the
model card and the run summary JSON), and the report the entry script prints (returned as text)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import torch

from ldlm_metrics import unigram_entropy
from modeling_ldlm import LDLMForDiffusionGeneration

from .model_card import render_distilled_card, render_run_card

RUN_METRICS = ("train_loss", "eval_loss", "eval_loss_diffusion", "eval_loss_hidden", "eval_loss_token",
               "eval_token_accuracy", "eval_token_decoder_accuracy", "eval_latent_variance_share")
DISTILL_METRICS = ("eval_loss", "eval_probe_token_agreement", "eval_probe_latent_mse")


def sample_texts(model: Any, tokenizer: Any, n: int, steps: int, seed: int) -> tuple[list[str], float] | None:
    """`n` unconditional samples from `model.generate` and their mean unigram entropy; None when n <= 0."""
    if n <= 0:
        return None
    out = model.generate(num_return_sequences=n, num_inference_steps=steps, return_dict_in_generate=True,
                         generator=torch.Generator().manual_seed(seed))
    special = set(tokenizer.all_special_ids)
    rows = [[i for i in row if i not in special] for row in out.completions.tolist()]
    texts = tokenizer.batch_decode(rows)
    return texts, sum(unigram_entropy(row) for row in rows) / len(rows)


# What a conditional model's report continues (its first `num_samples`): openings common in English prose.
SAMPLE_PROMPTS = ("the", "he said that", "in the morning", "it was", "there is no", "she had been", "we")


def continuations(model: Any, tokenizer: Any, prompts: list[str], steps: int, seed: int) -> list[str]:
    """`prompts` continued by a conditional model's `generate` (prompt and completion as one text)."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    ids = model.generate(**enc, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed))
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def add_samples(summary: dict[str, Any], folder: str, n: int, steps: int, seed: int, title: str) -> list[str]:
    """Draw `n` samples from the model saved in `folder` into the summary, and, from a conditional model,
    continuations of up to `n` of `SAMPLE_PROMPTS`; the report lines that show them."""
    model = LDLMForDiffusionGeneration.from_pretrained(folder).eval()
    samples = sample_texts(model, model.tokenizer, n, steps, seed)
    if samples is None:
        return []
    summary["samples"], summary["sample_entropy"] = samples
    report = ["", title, *(f"- {text}" for text in samples[0])]
    if model.config.context_conditioning:
        summary["continuations"] = continuations(model, model.tokenizer, list(SAMPLE_PROMPTS[:n]), steps, seed)
        report += ["", "=== continuations of prompts ===", *(f"- {text}" for text in summary["continuations"])]
    return report


def metrics_report(metrics: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """One line per metric of `keys` that the run measured (NaN left out)."""
    return [f"{key}: {metrics[key]:.4f}" for key in keys
            if key in metrics and not (isinstance(metrics[key], float) and math.isnan(metrics[key]))]


def warmup_report(metrics: dict[str, Any]) -> str:
    """One line on the diffusion-to-encoder warmup: where gamma started and reached 1, or that it did not."""
    start, one = metrics["gamma_start_step"], metrics["gamma_one_step"]
    if metrics.get("latent_space") == "fixed":
        return (f"fixed latent space: gamma = 0 throughout; encoder and decoders frozen from step "
                f"{metrics['autoencoder_frozen_step']}, the denoiser trained on their latents after that.")
    if start is None:
        return ("gamma warmup: never started (the training token accuracy did not reach --gamma_start_accuracy), so "
                "the encoder got almost no diffusion gradient: train longer or lower the gate.")
    if one is None:
        return f"gamma warmup: started at step {start}, did not reach 1 by the end of the run."
    return (f"gamma warmup: started at step {start}, reached 1 at step {one} "
            f"({metrics['gamma_one_fraction']:.0%} of the run trained jointly).")


def finish_run(model: Any, trainer: Any, summary: dict[str, Any], model_args: Any, data_args: Any, args: Any,
               start: float) -> str:
    """train/run.py, after the final save: samples, README.md (the model card) and ldlm_run.json in --output_dir;
    returns the report to print."""
    out, metrics = args.output_dir, summary["metrics"]
    report = add_samples(summary, out, args.num_samples, args.sample_steps, args.seed, "=== samples ===")
    if "sample_entropy" in summary:
        report.append(f"mean unigram entropy: {summary['sample_entropy']:.3f} nats")
    summary["wall_time_s"] = round(time.time() - start, 1)
    card = render_run_card(model, trainer, metrics, summary, model_args, data_args, args)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(card)
    with open(os.path.join(out, "ldlm_run.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    report += metrics_report(metrics, RUN_METRICS)
    if "gamma_start_step" in metrics:
        report.append(warmup_report(metrics))
    report.append(f"Saved to {out} in {summary['wall_time_s']} s")
    return "\n".join(report)


def finish_distillation(trainer: Any, summary: dict[str, Any], args: Any, start: float) -> str:
    """train/distill.py: save the final student as --output_dir, draw its samples, and write each stage student's
    card and distill_run.json; returns the report to print."""
    out, final = args.output_dir, args.final_steps
    trainer.save_student(out, final)
    report = add_samples(summary, out, args.num_samples, final, args.seed, f"=== samples of the {final}-step student ===")
    summary["wall_time_s"] = round(time.time() - start, 1)
    summary["students"] = {str(k): v for k, v in trainer.saved_students.items()}
    for steps, folder in trainer.saved_students.items():
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write(render_distilled_card(trainer, summary, args, steps, folder))
        with open(os.path.join(folder, "distill_run.json"), "w") as f:
            json.dump({**summary, "student_steps": steps}, f, indent=2, default=str)
    report += metrics_report(summary["metrics"], DISTILL_METRICS)
    report.append(f"Saved the {final}-step student to {out} in {summary['wall_time_s']} s "
                  f"(distillation {summary['distill_seconds']:.0f} s)")
    return "\n".join(report)


__all__ = ["finish_distillation", "finish_run", "metrics_report", "sample_texts", "warmup_report"]
