"""Render the model card (README.md) of a trained LDLM folder from the MODEL_CARD.md template and a run's settings
(`render_run_card`, which train/run.py calls).

Placeholders are `{{name}}`; unknown ones are left empty. The template is the repository's MODEL_CARD.md when present,
else `DEFAULT_TEMPLATE`. Names filled: model_name, model_id, repo_id, frozen_lm, frozen_lm_layer, dataset, data_mode,
max_sequence_length, num_latents, latent_dim, noise_schedule, decoder_noise_std, trainable_parameters,
total_parameters, frozen_parameters, global_step, train_runtime, recipe, metrics, training_mode (how the latent space
was trained, from the run's warmup milestones), prompting (how the model follows a prompt), samples, sample_entropy,
training_summary, results, command, license.
A distilled student's card (`render_distilled_card`, `DISTILLED_TEMPLATE`) fills model_id, teacher, steps, cost,
stages, command, metrics and samples.
"""

from __future__ import annotations

import os
import re
from typing import Any

DEFAULT_TEMPLATE = """---
library_name: transformers
license: {{license}}
tags:
- latent-diffusion
- text-generation
- ldlm
pipeline_tag: text-generation
---

# {{model_id}}

A Latent Diffusion Language Model (LDLM, Meshchaninov et al. 2026, arXiv 2605.07933) with a learned latent space on
top of the frozen LM `{{frozen_lm}}` (hidden layer {{frozen_lm_layer}}), on `{{dataset}}`
({{data_mode}} mode, {{max_sequence_length}} tokens per sequence), with N={{num_latents}} latents of width
D={{latent_dim}}. {{training_mode}} {{prompting}} Trainable parameters: {{trainable_parameters}} (total with the frozen LM:
{{total_parameters}}). The weights are an exponential moving average of the training weights.

## Usage

```python
import torch
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{{model_id}}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{{model_id}}", trust_remote_code=True)
ids = model.generate(num_return_sequences=4, generator=torch.Generator().manual_seed(0))  # its saved settings
print(tokenizer.batch_decode(ids, skip_special_tokens=True))
```

Hub inference widgets do not run custom-code models; use the snippet above, an Inference Endpoints `handler.py`,
or a Space.

## Training

{{global_step}} optimiser steps in {{train_runtime}} s. Recipe:

{{recipe}}

Command:

```bash
{{command}}
```

## Results (validation)

{{metrics}}

## Samples

Mean unigram entropy: {{sample_entropy}}.

{{samples}}
"""


def markdown_table(values: dict[str, Any]) -> str:
    rows = ["| setting | value |", "|---|---|"]
    for key, value in values.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def render_model_card(context: dict[str, Any], template: str | None = None, repo_root: str | None = None) -> str:
    """Fill `{{name}}` placeholders of the template with `context` (dicts become markdown tables)."""
    if template is None:
        path = os.path.join(repo_root or os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MODEL_CARD.md")
        template = open(path).read() if os.path.isfile(path) else DEFAULT_TEMPLATE

    def fill(match: re.Match) -> str:
        value = context.get(match.group(1).strip(), "")
        if isinstance(value, dict):
            return markdown_table(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", fill, template)


def training_mode(metrics: dict[str, Any], args: Any) -> str:
    """One sentence on how the latent space was actually trained, from the run's warmup milestones: whether and when
    gamma started and reached 1, and jointly only when it reached 1 (the card must not claim joint training for a run
    whose encoder never got the full diffusion gradient)."""
    if getattr(args, "latent_space", "joint") == "fixed":
        return ("The latent space was trained first and then frozen (the two-stage alternative to joint training), so "
                "it was **not trained jointly**: the encoder never received the diffusion gradient, and encoder and "
                f"decoders were frozen from step {metrics.get('autoencoder_frozen_step')} while the denoiser trained "
                "on their latents.")
    start, one = metrics.get("gamma_start_step"), metrics.get("gamma_one_step")
    if not getattr(args, "gamma_warmup", True):
        return "Encoder, denoiser and decoders were trained **jointly** from the first step (no warmup, gamma = 1)."
    if start is None:
        return ("The diffusion-to-encoder warmup never started (gamma stayed at gamma_min), so the encoder received "
                "almost no diffusion gradient: the latent space was **not trained jointly** (an autoencoder with a "
                "denoiser on its latents).")
    if one is None:
        return (f"The diffusion-to-encoder warmup started at step {start} but gamma did not reach 1 by the end of the "
                "run, so the latent space was **not trained jointly** (the encoder received only part of the "
                "diffusion gradient).")
    return (f"Encoder, denoiser and decoders were trained **jointly**: the diffusion-to-encoder warmup started at step "
            f"{start} and gamma reached 1 at step {one}, so {metrics.get('gamma_one_fraction', 0.0):.0%} of the run "
            "trained at gamma = 1.")


def prompting(config: Any) -> str:
    """One sentence on how the model follows a prompt: in its denoiser (context conditioning) or through guidance."""
    if config.context_conditioning:
        return ("The model was trained to continue text: its denoiser reads the prompt (the frozen LM's states of the "
                f"prompt alone; {config.context_dropout:.0%} of the training rows had none, so it also samples "
                "without one), so a prompt costs one frozen-LM pass and no extra denoiser calls; "
                "`context_guidance_scale` > 1 adds classifier-free guidance.")
    return ("Generation is unconditional by design; prompts steer the sample through guidance on the decoded prompt "
            "positions (a decoder forward and backward per step).")


def training_recipe(model: Any, trainer: Any, args: Any) -> dict[str, Any]:
    """The recipe settings of a finished run, as the card's table shows them."""
    cfg, a = model.config, args
    start_rule = f"at accuracy >= {a.gamma_start_accuracy}" if a.gamma_start_accuracy else "at step 0"
    warmup = (f"normalised sigmoid k={a.gamma_k} c={a.gamma_c} gamma_min={a.gamma_min}, S_wu="
              f"{trainer.warmup.warmup_steps} steps, start {start_rule} (started at step {trainer.warmup.start_step})")
    return {
        "decoder loss": cfg.decoder_loss, "sigma_dec": cfg.decoder_noise_std,
        "self-conditioning p": cfg.self_conditioning_prob,
        "prompt conditioning": (f"prefix context, dropout {cfg.context_dropout}" if cfg.context_conditioning
                                else "none (guidance)"),
        "gamma warmup": warmup if a.gamma_warmup else "off (gamma=1)",
        "adaptive timesteps": a.adaptive_timesteps, "EMA decay": a.ema_decay,
        "token loss fraction": a.token_loss_fraction, "learning rate": a.learning_rate,
        "batch size": a.per_device_train_batch_size * a.world_size * a.gradient_accumulation_steps,
    }


def render_run_card(model: Any, trainer: Any, metrics: dict[str, Any], summary: dict[str, Any], model_args: Any,
                    data_args: Any, args: Any) -> str:
    """The README.md of a folder written by train/run.py: sizes, recipe, validation metrics, samples, command."""
    cfg = model.config
    recipe = training_recipe(model, trainer, args)
    n_total = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    name = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
    evals = {k: v for k, v in metrics.items() if k.startswith("eval_")}
    samples_md = "\n".join(f"- {s}" for s in summary.get("samples", [])) or "(no samples drawn)"
    entropy = f"{summary['sample_entropy']:.3f} nats" if "sample_entropy" in summary else "n/a"
    dataset = data_args.dataset_name or data_args.train_file
    runtime = metrics.get("train_runtime", 0.0)
    context = {
        "model_name": name, "model_id": name, "repo_id": args.hub_model_id or args.output_dir,
        "frozen_lm": model_args.frozen_lm or cfg.frozen_lm_config.model_type,
        "frozen_lm_layer": cfg.frozen_lm_layer, "dataset": dataset, "data_mode": data_args.data_mode,
        "max_sequence_length": cfg.max_sequence_length, "num_latents": cfg.num_latents,
        "latent_dim": cfg.latent_dim, "noise_schedule": f"{cfg.noise_schedule} (d={cfg.noise_schedule_d})",
        "decoder_noise_std": cfg.decoder_noise_std,
        "trainable_parameters": f"{n_train / 1e6:.1f}M", "total_parameters": f"{n_total / 1e6:.1f}M",
        "frozen_parameters": f"{(n_total - n_train) / 1e6:.1f}M",
        "global_step": trainer.state.global_step, "train_runtime": round(runtime),
        "recipe": recipe, "metrics": evals, "training_mode": training_mode(metrics, args),
        "prompting": prompting(cfg), "samples": samples_md,
        "sample_entropy": entropy,
        "training_summary": (f"{trainer.state.global_step} optimiser steps on {dataset} ({data_args.data_mode} mode) "
                             f"in {runtime:.0f} s on {args.world_size} process(es); the saved weights are the EMA.\n\n"
                             + markdown_table(recipe)),
        "results": (markdown_table(evals) + f"\n\nSamples ({args.sample_steps} steps, mean unigram entropy "
                    f"{entropy}):\n\n" + samples_md),
        "command": summary["command"], "license": "apache-2.0",
    }
    return render_model_card(context)


DISTILLED_TEMPLATE = """---
library_name: transformers
license: apache-2.0
tags:
- latent-diffusion
- text-generation
- ldlm
- distillation
pipeline_tag: text-generation
---

# {{model_id}}

A **distilled** Latent Diffusion Language Model (LDLM, Meshchaninov et al. 2026, arXiv 2605.07933): the denoiser of
the teacher `{{teacher}}` distilled by progressive distillation (Salimans & Ho 2022) to **{{steps}} denoiser
call(s)** per sample. The encoder, decoders and frozen LM are the teacher's, unchanged. Its generation_config.json
defaults to the distilled sampler: DDIM (`solver="euler"`) on the trailing grid, {{steps}} step(s), no
self-conditioning.

## Usage

```python
import torch
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{{model_id}}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{{model_id}}", trust_remote_code=True)
ids = model.generate(num_return_sequences=4, generator=torch.Generator().manual_seed(0))  # {{steps}} call(s)
print(tokenizer.batch_decode(ids, skip_special_tokens=True))
```

## Cost

{{cost}}

Stages (student steps): {{stages}}. Command:

```bash
{{command}}
```

## Results (validation, end of distillation)

{{metrics}}

## Samples ({{steps}} step(s))

{{samples}}
"""


def render_distilled_card(trainer: Any, summary: dict[str, Any], args: Any, steps: int, folder: str) -> str:
    """The README.md of a distilled student folder: teacher, cost, stages, probe metrics, samples."""
    teacher_s = summary.get("teacher_train_seconds")
    cost = (f"Distillation: {summary['distill_seconds']:.0f} s ({args.steps_per_stage} optimiser steps per stage, batch "
            f"{args.per_device_train_batch_size * args.world_size}) on {args.world_size} process(es)")
    cost += f"; the teacher trained for {teacher_s:.0f} s." if teacher_s else "."
    evals = {k: v for k, v in summary["metrics"].items() if k.startswith("eval_")}
    samples = "\n".join(f"- {s}" for s in summary.get("samples", [])) if steps == args.final_steps else ""
    context = {"model_id": args.hub_model_id or os.path.basename(os.path.abspath(folder)), "teacher": summary["teacher"],
               "steps": steps, "cost": cost, "stages": " -> ".join(str(s) for s in summary["stages"]),
               "command": summary["command"], "metrics": evals,
               "samples": samples or "(drawn for the final student only)"}
    return render_model_card(context, DISTILLED_TEMPLATE)
