"""LDLMTrainer: the joint objective L = c_diff L_diff + c_h L_h + c_w L_w with the paper's four-part
recipe on top of `transformers.Trainer`:

- diffusion-to-encoder warmup: `encoder_grad_scale = gamma(s)` from `train.warmup.WarmupState`;
- adaptive timestep sampling: t drawn from the model's `timestep_sampler` (persistent buffers), updated with the
  per-sample diffusion losses of every rank, so all ranks keep identical state;
- decoder-input noise and self-conditioning: `LDLMConfig.decoder_noise_std` / `self_conditioning_prob` (the model);
- an EMA of the weights (`train.ema.EMAWeights`): checkpoints keep the live weights plus `ema_weights.safetensors`;
  the final `save_model()` folder holds the EMA weights.

Each loss term, gamma and the timestep distribution are logged; each evaluation logs the token reconstruction
accuracy through z0 -> G -> T on validation text and the latent-collapse statistic, and warns on collapse.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput, get_last_checkpoint
from transformers.utils import logging

from modeling_ldlm.adaptive_timesteps import warp

from .checkpointing import STAGING_DIR, AtomicCheckpointsMixin  # noqa: F401  (STAGING_DIR: re-exported)
from .diagnostics import latent_variance_share
from .ema import EMAWeights
from .warmup import WarmupState

logger = logging.get_logger(__name__)

STATE_NAME = "ldlm_trainer_state.json"
EMA_NAME = "ema_weights.safetensors"
LOSS_TERMS = ("loss_diffusion", "loss_hidden", "loss_token")
EVAL_TERMS = ("loss", *LOSS_TERMS)


class _EMACallback(TrainerCallback):
    def __init__(self, trainer: LDLMTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, model=None, **kwargs):  # after each optimiser step
        if self.trainer.ema is not None:
            self.trainer.ema.update(self.trainer.accelerator.unwrap_model(self.trainer.model))


class _OptimizerStepGuard(TrainerCallback):
    def __init__(self, trainer: LDLMTrainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # gradients are all-reduced and clipped here
        self.trainer._guard_optimizer_step()


def fsdp_requested(args: TrainingArguments) -> bool:
    """Whether the launch asks for FSDP: accelerate's config (it sets ACCELERATE_USE_FSDP) or the Trainer's --fsdp."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" or bool(args.fsdp)


class LDLMTrainer(AtomicCheckpointsMixin, Trainer):
    """`transformers.Trainer` for `LDLMForDiffusionGeneration`; `args` is a `train.arguments.LDLMTrainingArguments`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        a = self.args
        # compute_loss returns the mean over the micro-batch: the Trainer divides it by the accumulation steps.
        self.loss_is_scaled_for_ga = False
        self.model_accepts_loss_kwargs = False
        if not 0.0 < a.token_loss_fraction <= 1.0:
            raise ValueError(f"--token_loss_fraction must be in (0, 1], got {a.token_loss_fraction}.")
        if a.gamma_warmup_ratio < 0 or (a.gamma_warmup_steps is not None and a.gamma_warmup_steps < 0):
            raise ValueError("--gamma_warmup_ratio and --gamma_warmup_steps must be >= 0.")
        if a.gamma_start_accuracy is not None and not 0.0 <= a.gamma_start_accuracy <= 1.0:
            raise ValueError(f"--gamma_start_accuracy must be in [0, 1], got {a.gamma_start_accuracy}.")
        trainable = [n for n, p in self.model.named_parameters() if p.requires_grad and n.startswith("frozen_lm.")]
        if trainable:  # e.g. after from_pretrained: the optimiser must never see the frozen LM
            logger.warning(f"Freezing {len(trainable)} frozen-LM parameters that had requires_grad=True.")
            self.accelerator.unwrap_model(self.model).frozen_lm.requires_grad_(False)
        if fsdp_requested(a) and not self.is_fsdp_enabled:
            raise ValueError("An FSDP launch (ACCELERATE_USE_FSDP=true or --fsdp) where accelerate does not shard: "
                             "accelerate enables FSDP only on GPUs and other accelerators, so on the CPU this run "
                             "would train unsharded, as plain data parallel. On a CPU launch with "
                             "train/accelerate/ddp.yaml (ACCELERATE_USE_CPU=true); for FSDP, run on GPUs.")
        if self.is_fsdp_enabled and a.ema_decay > 0:
            raise ValueError("The weight EMA keeps full unsharded copies and does not support FSDP: pass --ema_decay 0.")
        self.warmup: WarmupState | None = None  # built in `train`, once the number of steps is known
        self.ema = EMAWeights(self.model, a.ema_decay) if a.ema_decay > 0 else None
        self.add_callback(_EMACallback(self))
        self._running: dict[str, torch.Tensor] = {}
        self._running_count = 0
        if a.nonfinite_loss not in ("stop", "skip"):
            raise ValueError(f"--nonfinite_loss must be 'stop' or 'skip', got {a.nonfinite_loss!r}.")
        if a.max_nonfinite_skips < 1:
            raise ValueError(f"--max_nonfinite_skips must be >= 1, got {a.max_nonfinite_skips}.")
        self._nonfinite_in_a_row = 0
        self.skipped_nonfinite_batches = 0
        self.skipped_optimizer_steps = 0
        self._finite_microbatches = 0  # in the current optimiser step, on this rank
        self.add_callback(_OptimizerStepGuard(self))

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
        total, start = self.state.global_step, self.warmup.start_step  # 0 when the warmup is off
        one = None if start is None else start + (self.warmup.warmup_steps if self.warmup.enabled else 0)
        reached = one is not None and one <= total
        return {"gamma_start_step": start, "gamma_one_step": one if reached else None,
                "gamma_one_fraction": (total - one) / total if reached and total else 0.0}

    def current_gamma(self) -> float:
        if self.warmup is None:
            self.warmup = self._build_warmup(max(self.args.max_steps, 1))
        return self.warmup.gamma(self.state.global_step)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        max_steps = self.args.max_steps
        if max_steps is None or max_steps <= 0:
            dl = self.get_train_dataloader()
            per_epoch = max(len(dl) // self.args.gradient_accumulation_steps, 1)
            max_steps = int(per_epoch * self.args.num_train_epochs)
        if max_steps <= 0:
            raise ValueError("Training would run 0 optimiser steps: raise --max_steps or --num_train_epochs, or "
                             "give more data than one batch (per_device_train_batch_size x processes).")
        self.warmup = self._build_warmup(max_steps)
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir}).")
        if resume_from_checkpoint:
            self.load_checkpoint_extras(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # ---- the loss -----------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        a = self.args
        base = self.accelerator.unwrap_model(model)
        sampler = base.timestep_sampler
        b = inputs["input_ids"].shape[0]
        training = model.training
        t = None
        if training and a.adaptive_timesteps:
            t = sampler.sample(b, uniform_mix=a.timestep_uniform_mix)
        gamma = self.current_gamma() if training else 1.0
        outputs = model(**inputs, timesteps=t, encoder_grad_scale=gamma,
                        token_loss_fraction=a.token_loss_fraction if training else 1.0)
        loss = outputs.loss
        if training:
            if bool(torch.isfinite(loss)):
                self._finite_microbatches += 1
                self._after_step(sampler, outputs, gamma)
            else:  # never feed NaN to the timestep sampler, the warmup or the logs
                loss = self._nonfinite(model, outputs)
        return (loss, outputs) if return_outputs else loss

    def _nonfinite(self, model, outputs) -> torch.Tensor:
        """A NaN/Inf loss: raise naming the term and the step, or (--nonfinite_loss skip) return a zero loss, so the
        backward pass still runs (DDP stays in step) and this micro-batch adds nothing to the gradient."""
        step = self.state.global_step + 1
        terms = ", ".join(f"{k}={float(getattr(outputs, k).detach()):.4g}" for k in LOSS_TERMS)
        bad = [k for k in LOSS_TERMS if not bool(torch.isfinite(getattr(outputs, k)))]
        self._skip_or_stop(f"non-finite {', '.join(bad) or 'loss'} at optimiser step {step} ({terms})")
        return sum((p * 0.0).sum() for p in model.parameters() if p.requires_grad)

    def _skip_or_stop(self, where: str) -> None:
        a = self.args
        self._nonfinite_in_a_row += 1
        self.skipped_nonfinite_batches += 1
        if a.nonfinite_loss == "stop" or self._nonfinite_in_a_row > a.max_nonfinite_skips:
            streak = f" after {self._nonfinite_in_a_row} skipped batches in a row" if a.nonfinite_loss == "skip" else ""
            raise FloatingPointError(
                f"Training stopped{streak}: {where}. Lower --learning_rate or --max_grad_norm, train in fp32 or bf16 "
                "rather than fp16, check the data, or pass --nonfinite_loss skip to drop such batches; resume from "
                "the last checkpoint with --resume_from_checkpoint.")
        logger.warning(f"Skipping the batch: {where} (--nonfinite_loss skip).")

    @torch.no_grad()
    def _guard_optimizer_step(self) -> None:
        """Just before each optimiser step. A NaN/Inf gradient (from a finite loss) is handled like a NaN/Inf loss.
        The step is skipped, by dropping every gradient so that AdamW leaves the weights and its moments as they
        are, when the gradient is non-finite or when no micro-batch on any rank had a finite loss (a zero gradient
        would still move the weights through AdamW's momentum and weight decay). The decision is the same on every
        rank: the gradients are already all-reduced and the finite-batch count is summed. Under fp16 loss scaling
        the GradScaler already skips steps with inf/NaN gradients, and needs gradients to check, so it is left to it.
        """
        finite_batches = self._finite_microbatches
        self._finite_microbatches = 0
        if self.accelerator.num_processes > 1:
            count = torch.tensor(float(finite_batches), device=self.args.device)
            finite_batches = float(self.accelerator.reduce(count, reduction="sum"))
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if self.accelerator.scaler is not None or not grads:
            grads_finite = True
        else:
            grads_finite = bool(torch.nn.utils.get_total_norm(grads).isfinite())  # fused: ~3 ms for 18M values on CPU
        if not grads_finite:
            self._skip_or_stop(f"non-finite gradient at optimiser step {self.state.global_step + 1} from a finite loss")
        elif finite_batches > 0:
            self._nonfinite_in_a_row = 0  # a step that goes ahead ends a streak of skipped batches
            return
        if self.accelerator.scaler is not None:
            return
        for p in self.model.parameters():
            p.grad = None
        self.skipped_optimizer_steps += 1

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
        terms = {"loss_diffusion": outputs.loss_diffusion, "loss_hidden": outputs.loss_hidden,
                 "loss_token": outputs.loss_token, "token_accuracy": accuracy}
        for k, v in terms.items():
            self._running[k] = self._running.get(k, 0.0) + v.detach().float()
        self._running["gamma"] = self._running.get("gamma", 0.0) + torch.tensor(gamma)
        self._running_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._running_count > 0:
            device = self.args.device
            stacked = torch.stack([torch.as_tensor(v, device=device).float() for v in self._running.values()])
            stacked = self.accelerator.reduce(stacked / self._running_count, reduction="mean")
            logs.update({k: round(float(v), 5) for k, v in zip(self._running, stacked)})
            self._running, self._running_count = {}, 0
            sampler = self.accelerator.unwrap_model(self.model).timestep_sampler
            q = warp(torch.tensor([0.1, 0.5, 0.9], device=sampler.loss_ema.device), sampler.probabilities(0.0))
            logs.update({"t_q10": round(float(q[0]), 4), "t_q50": round(float(q[1]), 4), "t_q90": round(float(q[2]), 4)})
            if self.warmup is not None and self.warmup.accuracy_threshold is not None:
                logs["gamma_started"] = float(self.warmup.start_step is not None)
        super().log(logs, start_time)

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
        """Per-term sums (weighted by samples), correct tokens, tokens and samples over the validation batches."""
        a, cfg = self.args, model.config
        gen = torch.Generator(device="cpu").manual_seed(a.seed)
        sums = torch.zeros(len(EVAL_TERMS) + 3, dtype=torch.float64)
        latents = []
        for step, batch in enumerate(dataloader):
            if a.max_eval_batches is not None and step >= a.max_eval_batches:
                break
            batch = {k: v.to(a.device) for k, v in batch.items()}
            b = batch["input_ids"].shape[0]
            t = ((torch.arange(b, dtype=torch.float32) + 0.5) / b).to(a.device)  # fixed grid: comparable losses
            noise = torch.randn(b, cfg.num_latents, cfg.latent_dim, generator=gen).to(a.device)
            out = model(**batch, timesteps=t, noise=noise, self_conditioning=False, encoder_grad_scale=1.0)
            tokens = float(batch["attention_mask"].sum())
            for i, k in enumerate(EVAL_TERMS):
                sums[i] += float(getattr(out, k)) * b
            sums[len(EVAL_TERMS)] += float(out.token_accuracy) * tokens  # eval: every position, no decoder noise
            sums[len(EVAL_TERMS) + 1] += tokens
            sums[len(EVAL_TERMS) + 2] += b
            latents.append(out.latents.float().cpu())
        if not latents:
            raise ValueError("The evaluation set gave no batches: check --validation_file / --max_eval_samples, and "
                             "that it holds at least --per_device_eval_batch_size examples when "
                             "--dataloader_drop_last is on.")
        return sums, latents

    def _evaluation_metrics(self, sums: torch.Tensor, latents: list[torch.Tensor], prefix: str) -> dict[str, float]:
        """Sums reduced over ranks -> means; warns on latent collapse."""
        share = latent_variance_share(torch.cat(latents)) if sum(len(z) for z in latents) > 1 else float("nan")
        totals = torch.cat([sums, torch.tensor([share], dtype=torch.float64)]).to(self.args.device)
        totals = self.accelerator.reduce(totals, reduction="sum").cpu()
        n, terms = float(totals[len(EVAL_TERMS) + 2]), len(EVAL_TERMS)
        metrics = {f"{prefix}_{k}": float(totals[i]) / n for i, k in enumerate(EVAL_TERMS)}
        metrics[f"{prefix}_token_accuracy"] = float(totals[terms] / totals[terms + 1])
        metrics[f"{prefix}_latent_variance_share"] = share = float(totals[-1]) / self.accelerator.num_processes
        metrics[f"{prefix}_gamma"] = gamma = self.current_gamma()
        if share < self.args.collapse_threshold:
            logger.warning(
                f"LATENT COLLAPSE at step {self.state.global_step}: only {share:.1%} of the latent energy differs "
                f"between validation texts (gamma={gamma:.4f}, reconstruction accuracy "
                f"{metrics[f'{prefix}_token_accuracy']:.1%}). Make the warmup wait longer "
                "(--gamma_start_accuracy, --gamma_warmup_ratio) or lower --gamma_min.")
        return metrics

    # ---- saving and resuming: the extra state of a checkpoint ---------------------------------------------------
    def checkpoint_extras(self, folder: str) -> None:
        """The warmup state and the EMA weights, next to the Trainer's own files."""
        with open(os.path.join(folder, STATE_NAME), "w") as f:
            json.dump({"warmup": self.warmup.state_dict() if self.warmup is not None else None}, f)
        if self.ema is not None:
            save_file(self.ema.state_dict(), os.path.join(folder, EMA_NAME))

    def final_weights(self):
        """Every save outside a checkpoint (the final folder, push_to_hub) holds the EMA weights."""
        return None if self.ema is None else self.ema.applied(self.accelerator.unwrap_model(self.model))

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
        ema_path = os.path.join(checkpoint, EMA_NAME)
        if self.ema is not None:
            if os.path.isfile(ema_path):
                self.ema.load_state_dict(load_file(ema_path))
            else:
                logger.warning(f"{ema_path} is missing: the EMA restarts from the current weights.")

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """The model card is rendered by `train.model_card` (run.py), not by the Trainer's generic one."""
        return None

