"""LDLMTrainer: the joint objective L = c_diff L_diff + c_h L_h + c_w L_w with the paper's four-part recipe, on the
shared `train.base_trainer.TrainerBase` (weight EMA, non-finite guard, running-mean logs, atomic checkpoints):

- diffusion-to-encoder warmup: `encoder_grad_scale = gamma(s)` from `train.warmup.WarmupState`;
- adaptive timestep sampling: t drawn from the model's `timestep_sampler` (persistent buffers), updated with the
  per-sample diffusion losses of every rank, so all ranks keep identical state;
- decoder-input noise and self-conditioning: `LDLMConfig.decoder_noise_std` / `self_conditioning_prob` (the model);
- `--latent_space fixed`, the two-stage alternative (a latent space trained first, then frozen, as in LD4LG and
  Cosmos): gamma = 0 throughout, and from `fixed_autoencoder_ratio` of the run on, the encoder and both decoders are
  frozen while the denoiser trains on their fixed latents;
- an EMA of the weights: checkpoints keep the live weights plus `ema_weights.safetensors` and the warmup state
  (`ldlm_trainer_state.json`); the final `save_model()` folder holds the EMA weights.

Each loss term, gamma and the timestep distribution are logged; each evaluation logs the token reconstruction
accuracy through z0 -> G -> T on validation text and the latent-collapse statistic, and warns on collapse.
"""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

import torch
from transformers import EvalPrediction
from transformers.trainer_utils import EvalLoopOutput
from transformers.utils import logging

from modeling_ldlm.adaptive_timesteps import warp

from .base_trainer import EMA_NAME, TrainerBase  # noqa: F401  (EMA_NAME: re-exported)
from .checkpointing import STAGING_DIR  # noqa: F401  (re-exported)
from .diagnostics import latent_variance_share
from .warmup import WarmupState

logger = logging.get_logger(__name__)

STATE_NAME = "ldlm_trainer_state.json"
LOSS_TERMS = ("loss_diffusion", "loss_hidden", "loss_token")
EVAL_TERMS = ("loss", *LOSS_TERMS)
EVAL_COUNTS = 4  # correct tokens from the latents, correct tokens from the frozen states, tokens, samples


def freeze_frozen_lm(model: Any) -> None:
    """The optimiser must never see the frozen LM (e.g. after from_pretrained it may have requires_grad=True)."""
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("frozen_lm.")]
    if trainable:
        logger.warning(f"Freezing {len(trainable)} frozen-LM parameters that had requires_grad=True.")
        model.frozen_lm.requires_grad_(False)


def describe_nonfinite(outputs: Any, step: int) -> str:
    """Which loss terms are NaN/Inf at an optimiser step, with every term's value."""
    terms = ", ".join(f"{k}={float(getattr(outputs, k).detach()):.4g}" for k in LOSS_TERMS)
    bad = [k for k in LOSS_TERMS if not bool(torch.isfinite(getattr(outputs, k)))]
    return f"non-finite {', '.join(bad) or 'loss'} at optimiser step {step} ({terms})"



@torch.no_grad()
def token_decoder_correct(model: Any, batch: dict[str, torch.Tensor]) -> float:
    """How many real tokens the token decoder gets right from the frozen LM's own normalised states (not from the
    latents): the ceiling of reconstruction accuracy. Far below 1, the token decoder limits reconstruction; close to
    the reconstruction accuracy, the latents do."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    raw = batch.get("hidden_states")
    raw = model.frozen_hidden_states(ids, mask) if raw is None else raw
    decoder = model.token_decoder
    logits = decoder(model.normalize_hidden(raw).to(next(decoder.parameters()).dtype))
    return float(((logits.argmax(-1) == ids) & mask.bool()).sum())

class LDLMTrainer(TrainerBase):
    """`transformers.Trainer` for `LDLMForDiffusionGeneration`; `args` is a `train.arguments.LDLMTrainingArguments`."""

    def __init__(self, model: Any = None, *args: Any, **kwargs: Any):
        freeze_frozen_lm(model)  # before the EMA copies the trainable weights
        super().__init__(model, *args, **kwargs)
        if self.args.latent_space == "fixed" and self.args.world_size > 1 and not self.args.ddp_find_unused_parameters:
            raise ValueError("--latent_space fixed freezes the encoder and decoders mid-run, which DDP only allows "
                             "with --ddp_find_unused_parameters true: add it.")
        self.warmup: WarmupState | None = None  # built in `train`, once the number of steps is known

    # ---- warmup state -------------------------------------------------------------------------------------------
    def _build_warmup(self, max_steps: int) -> WarmupState:
        a = self.args
        steps = a.gamma_warmup_steps if a.gamma_warmup_steps is not None else int(round(a.gamma_warmup_ratio * max_steps))
        return WarmupState(warmup_steps=steps, k=a.gamma_k, c=a.gamma_c, gamma_min=a.gamma_min,
                           accuracy_threshold=a.gamma_start_accuracy, enabled=a.gamma_warmup)

    def warmup_milestones(self) -> dict[str, float | None]:
        """Where the diffusion-to-encoder warmup started and where gamma reached 1 (optimiser steps), and the share
        of the run trained at gamma = 1, i.e. jointly; a step is None when it was not reached."""
        if self.warmup is None:
            return {}
        if self.args.latent_space == "fixed":
            return {"latent_space": "fixed", "gamma_start_step": None, "gamma_one_step": None,
                    "gamma_one_fraction": 0.0, "autoencoder_frozen_step": self.autoencoder_freeze_step()}
        total, start = self.state.global_step, self.warmup.start_step  # 0 when the warmup is off
        one = None if start is None else start + (self.warmup.warmup_steps if self.warmup.enabled else 0)
        reached = one is not None and one <= total
        return {"gamma_start_step": start, "gamma_one_step": one if reached else None,
                "gamma_one_fraction": (total - one) / total if reached and total else 0.0}

    def current_gamma(self) -> float:
        """The weight of the diffusion gradient into the encoder at this step: 0 throughout with a fixed latent
        space, else the warmup's gamma."""
        if self.args.latent_space == "fixed":
            return 0.0
        if self.warmup is None:
            self.warmup = self._build_warmup(max(self.args.max_steps, 1))
        return self.warmup.gamma(self.state.global_step)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """`TrainerBase.train` with the warmup built for the run's number of optimiser steps."""
        self.warmup = self._build_warmup(self._planned_steps())
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _planned_steps(self) -> int:
        max_steps = self.args.max_steps
        if max_steps is None or max_steps <= 0:
            per_epoch = max(len(self.get_train_dataloader()) // self.args.gradient_accumulation_steps, 1)
            max_steps = int(per_epoch * self.args.num_train_epochs)
        if max_steps <= 0:
            raise ValueError("Training would run 0 optimiser steps: raise --max_steps or --num_train_epochs, or "
                             "give more data than one batch (per_device_train_batch_size x processes).")
        return max_steps

    # ---- the loss -----------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        a = self.args
        sampler = self.accelerator.unwrap_model(model).timestep_sampler
        training = model.training
        t = None
        if training and a.adaptive_timesteps:
            t = sampler.sample(inputs["input_ids"].shape[0], uniform_mix=a.timestep_uniform_mix)
        if training and a.latent_space == "fixed":
            self._freeze_autoencoder_when_due(model)
        gamma = self.current_gamma() if training else 1.0
        outputs = model(**inputs, timesteps=t, encoder_grad_scale=gamma,
                        token_loss_fraction=a.token_loss_fraction if training else 1.0)
        loss = outputs.loss
        if training:  # never feed NaN to the timestep sampler, the warmup or the logs
            loss = self.guard_loss(model, loss, on_finite=partial(self._after_step, sampler, outputs, gamma),
                                   describe=partial(describe_nonfinite, outputs))
        return (loss, outputs) if return_outputs else loss

    def autoencoder_freeze_step(self) -> int:
        """`--latent_space fixed`: the optimiser step from which the encoder and decoders no longer train."""
        return int(round(self.args.fixed_autoencoder_ratio * self._planned_steps()))

    def _freeze_autoencoder_when_due(self, model) -> None:
        """Parameters without gradients are skipped by the optimiser, so freezing needs no new optimiser; checked at
        every step, so a resumed run freezes again."""
        unwrapped = self.accelerator.unwrap_model(model)
        trainable = any(p.requires_grad for p in unwrapped.encoder.parameters())
        if self.state.global_step < self.autoencoder_freeze_step() or not trainable:
            return
        for part in (unwrapped.encoder, unwrapped.latent_decoder, unwrapped.token_decoder):
            part.requires_grad_(False)
        logger.info(f"Fixed latent space: encoder and decoders frozen at step {self.state.global_step}.")

    @torch.no_grad()
    def _after_step(self, sampler, outputs, gamma: float) -> None:
        a = self.args
        if a.adaptive_timesteps:  # identical update on every rank: the buffers stay in sync under DDP
            t = self.accelerator.gather(outputs.timesteps.detach())
            losses = self.accelerator.gather(outputs.loss_diffusion_per_sample.detach())
            sampler.update(t, losses, decay=a.timestep_ema_decay)
        accuracy = outputs.token_accuracy.detach()
        if self.warmup is not None and self.warmup.start_step is None:
            mean_acc = float(self.accelerator.reduce(accuracy.clone(), reduction="mean"))
            self.warmup.observe(self.state.global_step, mean_acc)
        self.accumulate({"loss_diffusion": outputs.loss_diffusion, "loss_hidden": outputs.loss_hidden,
                         "loss_token": outputs.loss_token, "token_accuracy": accuracy, "gamma": torch.tensor(gamma)})

    def training_logs(self, means: dict[str, float]) -> dict[str, float]:
        """Each term's running mean, gamma, the timestep distribution's quantiles, and whether gamma started."""
        logs = {k: round(v, 5) for k, v in means.items()}
        sampler = self.accelerator.unwrap_model(self.model).timestep_sampler
        q = warp(torch.tensor([0.1, 0.5, 0.9], device=sampler.loss_ema.device), sampler.probabilities(0.0))
        logs.update({"t_q10": round(float(q[0]), 4), "t_q50": round(float(q[1]), 4), "t_q90": round(float(q[2]), 4)})
        if self.warmup is not None and self.warmup.accuracy_threshold is not None:
            logs["gamma_started"] = float(self.warmup.start_step is not None)
        return logs

    # ---- evaluation: losses, reconstruction accuracy, collapse ---------------------------------------------------
    @torch.no_grad()
    def evaluation_loop(self, dataloader, description: str, prediction_loss_only: bool | None = None,
                        ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> EvalLoopOutput:
        """The loop behind `Trainer.evaluate` (which adds the speed metrics, logs, and calls the callbacks): every
        loss term at a fixed grid of t and seeded noise, the reconstruction accuracy z0 -> G -> T at every position,
        and the latent-collapse statistic; with `compute_metrics`, its results on `EvalPrediction(predictions=<the
        validation latents z0 (n, N, D)>, label_ids=None)` are added under the prefix."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            sums, latents = self._evaluation_sums(dataloader, model)
        finally:
            model.train(was_training)
        metrics = self._evaluation_metrics(sums, latents, metric_key_prefix)
        if self.compute_metrics is not None:
            extra = self.compute_metrics(EvalPrediction(predictions=torch.cat(latents).numpy(), label_ids=None))
            metrics.update({f"{metric_key_prefix}_{k}": v for k, v in extra.items()})
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=int(sums[-1]))

    def _evaluation_sums(self, dataloader, model) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-term sums (weighted by samples), correct tokens (from the clean latents and, the reconstruction's
        ceiling, from the frozen LM's own states), tokens and samples over the validation batches."""
        a, cfg = self.args, model.config
        gen = torch.Generator(device="cpu").manual_seed(a.seed)
        sums = torch.zeros(len(EVAL_TERMS) + EVAL_COUNTS, dtype=torch.float64)
        latents = []
        for batch in self.evaluation_batches(dataloader):
            b = batch["input_ids"].shape[0]
            t = ((torch.arange(b, dtype=torch.float32) + 0.5) / b).to(a.device)  # fixed grid: comparable losses
            noise = torch.randn(b, cfg.num_latents, cfg.latent_dim, generator=gen).to(a.device)
            out = model(**batch, timesteps=t, noise=noise, self_conditioning=False, encoder_grad_scale=1.0)
            tokens = float(batch["attention_mask"].sum())
            for i, k in enumerate(EVAL_TERMS):
                sums[i] += float(getattr(out, k)) * b
            counts = (float(out.token_accuracy) * tokens, token_decoder_correct(model, batch), tokens, b)
            sums[len(EVAL_TERMS):] += torch.tensor(counts, dtype=torch.float64)  # eval: every position, no noise
            latents.append(out.latents.float().cpu())
        return sums, latents

    def _evaluation_metrics(self, sums: torch.Tensor, latents: list[torch.Tensor], prefix: str) -> dict[str, float]:
        """Sums reduced over ranks -> means; warns on latent collapse."""
        share = latent_variance_share(torch.cat(latents)) if sum(len(z) for z in latents) > 1 else float("nan")
        totals = torch.cat([sums, torch.tensor([share], dtype=torch.float64)]).to(self.args.device)
        totals = self.accelerator.reduce(totals, reduction="sum").cpu()
        terms = len(EVAL_TERMS)
        correct, decoder_correct, tokens, n = (float(v) for v in totals[terms:terms + EVAL_COUNTS])
        metrics = {f"{prefix}_{k}": float(totals[i]) / n for i, k in enumerate(EVAL_TERMS)}
        metrics[f"{prefix}_token_accuracy"] = correct / tokens
        metrics[f"{prefix}_token_decoder_accuracy"] = decoder_correct / tokens
        metrics[f"{prefix}_latent_variance_share"] = share = float(totals[-1]) / self.accelerator.num_processes
        metrics[f"{prefix}_gamma"] = gamma = self.current_gamma()
        if share < self.args.collapse_threshold:
            logger.warning(
                f"LATENT COLLAPSE at step {self.state.global_step}: only {share:.1%} of the latent energy differs "
                f"between validation texts (gamma={gamma:.4f}, reconstruction accuracy "
                f"{metrics[f'{prefix}_token_accuracy']:.1%}). Make the warmup wait longer "
                "(--gamma_start_accuracy, --gamma_warmup_ratio) or lower --gamma_min.")
        return metrics

    # ---- saving and resuming: the warmup state, next to the base's EMA weights --------------------------------------
    def checkpoint_extras(self, folder: str) -> None:
        """The warmup state and (the base's) EMA weights, next to the Trainer's own files."""
        with open(os.path.join(folder, STATE_NAME), "w") as f:
            json.dump({"warmup": self.warmup.state_dict() if self.warmup is not None else None}, f)
        super().checkpoint_extras(folder)

    def load_checkpoint_extras(self, checkpoint: str) -> None:
        """Restore the warmup state and the EMA weights written by `checkpoint_extras`."""
        path = os.path.join(checkpoint, STATE_NAME)
        if os.path.isfile(path):
            with open(path) as f:
                state = json.load(f)
            if state.get("warmup") is not None and self.warmup is not None:
                self.warmup.load_state_dict(state["warmup"])
        else:
            logger.warning(f"{path} is missing: the gamma warmup restarts from its initial state.")
        super().load_checkpoint_extras(checkpoint)


__all__ = ["LDLMTrainer", "STATE_NAME"]
