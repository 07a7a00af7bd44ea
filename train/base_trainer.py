"""TrainerBase: what LDLM's two trainers share on top of `transformers.Trainer` (`LDLMTrainer` for joint training,
`DistillationTrainer` for progressive distillation); `args` is a `train.arguments.TrainerArguments`.

- an EMA of the trainable weights (`train.ema.EMAWeights`), updated after each optimiser step: checkpoints keep the
  live weights plus `ema_weights.safetensors`, and every save outside a checkpoint holds the EMA weights;
- the non-finite guard: a NaN/Inf loss or gradient stops training naming the step, or (`--nonfinite_loss skip`)
  skips that batch or optimiser step, up to `--max_nonfinite_skips` in a row;
- running means of the per-batch training terms, reduced over ranks into each training log line;
- checkpoint extras (`checkpoint_extras` / `load_checkpoint_extras`) written atomically with each checkpoint
  (train.checkpointing), and the resume rule: "true", "last" or "latest" resume from the newest complete checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from .checkpointing import AtomicCheckpointsMixin
from .ema import EMAWeights

logger = logging.get_logger(__name__)

EMA_NAME = "ema_weights.safetensors"
RESUME_LAST = ("true", "last", "latest")  # --resume_from_checkpoint values that mean the newest checkpoint


class _EMACallback(TrainerCallback):
    def __init__(self, trainer: TrainerBase):
        self.trainer = trainer

    def on_step_end(self, args, state, control, model=None, **kwargs):  # after each optimiser step
        if self.trainer.ema is not None:
            self.trainer.ema.update(self.trainer.accelerator.unwrap_model(self.trainer.model))


class _OptimizerStepGuard(TrainerCallback):
    def __init__(self, trainer: TrainerBase):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # gradients are all-reduced and clipped here
        self.trainer._guard_optimizer_step()


def fsdp_requested(args: TrainingArguments) -> bool:
    """Whether the launch asks for FSDP: accelerate's config (it sets ACCELERATE_USE_FSDP) or the Trainer's --fsdp."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" or bool(args.fsdp)


def zero_loss(model: torch.nn.Module) -> torch.Tensor:
    """A zero that depends on every trainable parameter: its backward pass runs (DDP stays in step) and adds
    nothing to the gradient."""
    return sum((p * 0.0).sum() for p in model.parameters() if p.requires_grad)


class TrainerBase(AtomicCheckpointsMixin, Trainer):
    """The shared part of LDLM's trainers. A subclass computes its loss in `compute_loss`, passing a training loss
    through `guard_loss`, adds its own log entries in `training_logs`, and its own checkpoint state in
    `checkpoint_extras` / `load_checkpoint_extras` (calling the base's)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # compute_loss returns the mean over the micro-batch: the Trainer divides it by the accumulation steps.
        self.loss_is_scaled_for_ga = False
        self.model_accepts_loss_kwargs = False
        self._check_sharding()
        self.ema = EMAWeights(self.model, self.args.ema_decay) if self.args.ema_decay > 0 else None
        self.add_callback(_EMACallback(self))
        self._running: dict[str, torch.Tensor] = {}
        self._running_count = 0
        self._nonfinite_in_a_row = 0
        self.skipped_nonfinite_batches = 0
        self.skipped_optimizer_steps = 0
        self._finite_microbatches = 0  # in the current optimiser step, on this rank
        self.add_callback(_OptimizerStepGuard(self))

    def _check_sharding(self) -> None:
        if fsdp_requested(self.args) and not self.is_fsdp_enabled:
            raise ValueError("An FSDP launch (ACCELERATE_USE_FSDP=true or --fsdp) where accelerate does not shard: "
                             "accelerate enables FSDP only on GPUs and other accelerators, so on the CPU this run "
                             "would train unsharded, as plain data parallel. On a CPU launch with "
                             "train/accelerate/ddp.yaml (ACCELERATE_USE_CPU=true); for FSDP, run on GPUs.")
        if self.is_fsdp_enabled and self.args.ema_decay > 0:
            raise ValueError("The weight EMA keeps full unsharded copies and does not support FSDP: pass --ema_decay 0.")

    # ---- resuming -----------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """`Trainer.train`, first restoring this trainer's extra state when resuming; `resume_from_checkpoint`
        True, "true", "last" or "latest" means the newest complete checkpoint-* in --output_dir."""
        checkpoint = self.checkpoint_to_resume(resume_from_checkpoint)
        if checkpoint:
            self.load_checkpoint_extras(checkpoint)
        return super().train(checkpoint, *args, **kwargs)

    def checkpoint_to_resume(self, resume_from_checkpoint: str | bool | None) -> str | bool | None:
        """The checkpoint folder a resume starts from (the newest one for True or `RESUME_LAST`), or the value as given
        when it names no checkpoint."""
        if isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in RESUME_LAST:
            resume_from_checkpoint = True
        if resume_from_checkpoint is not True:
            return resume_from_checkpoint
        last = get_last_checkpoint(self.args.output_dir)
        if last is None:
            raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir}).")
        return last

    # ---- the non-finite guard ------------------------------------------------------------------------------------
    def guard_loss(self, model: torch.nn.Module, loss: torch.Tensor, on_finite: Callable[[], None],
                   describe: Callable[[int], str]) -> torch.Tensor:
        """A training micro-batch's loss: when finite, count it for the optimiser-step guard, call `on_finite` (e.g.
        record the running means) and return it; when not, raise naming `describe(step)`, or (--nonfinite_loss
        skip) return `zero_loss(model)`, so this micro-batch adds nothing to the gradient and NaN reaches nothing."""
        if bool(torch.isfinite(loss)):
            self._finite_microbatches += 1
            on_finite()
            return loss
        self._skip_or_stop(describe(self.state.global_step + 1))
        return zero_loss(model)

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

    # ---- running means of the training terms ----------------------------------------------------------------------
    def accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one training micro-batch's terms (scalars) to the running sums of the next log line."""
        for k, v in terms.items():
            self._running[k] = self._running.get(k, 0.0) + v.detach().float()
        self._running_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """A training log line (it has "loss") gets `training_logs` of the running means since the last one."""
        if "loss" in logs and self._running_count > 0:
            logs.update(self.training_logs(self._pop_running_means()))
        super().log(logs, start_time)

    def training_logs(self, means: dict[str, float]) -> dict[str, float]:
        """The entries a training log line adds, from the running means of the accumulated terms."""
        return means

    def _pop_running_means(self) -> dict[str, float]:
        """The running means, averaged over ranks; the sums start again."""
        device = self.args.device
        stacked = torch.stack([torch.as_tensor(v, device=device).float() for v in self._running.values()])
        stacked = self.accelerator.reduce(stacked / self._running_count, reduction="mean")
        means = {k: float(v) for k, v in zip(self._running, stacked)}
        self._running, self._running_count = {}, 0
        return means

    # ---- evaluation ----------------------------------------------------------------------------------------------
    def evaluation_batches(self, dataloader: Any) -> Iterator[dict[str, torch.Tensor]]:
        """The validation batches on the training device, at most --max_eval_batches of them; ValueError when there
        are none."""
        a, count = self.args, 0
        for batch in dataloader:
            if a.max_eval_batches is not None and count >= a.max_eval_batches:
                break
            count += 1
            yield {k: v.to(a.device) for k, v in batch.items()}
        if count == 0:
            raise ValueError("The evaluation set gave no batches: check --validation_file / --max_eval_samples, and "
                             "that it holds at least --per_device_eval_batch_size examples when "
                             "--dataloader_drop_last is on.")

    # ---- checkpoints: the extra state, and the final weights ------------------------------------------------------
    def checkpoint_extras(self, folder: str) -> None:
        """The EMA weights, next to the Trainer's own files."""
        if self.ema is not None:
            save_file(self.ema.state_dict(), os.path.join(folder, EMA_NAME))

    def load_checkpoint_extras(self, checkpoint: str) -> None:
        """Restore the EMA weights written by `checkpoint_extras`."""
        ema_path = os.path.join(checkpoint, EMA_NAME)
        if self.ema is not None:
            if os.path.isfile(ema_path):
                self.ema.load_state_dict(load_file(ema_path))
            else:
                logger.warning(f"{ema_path} is missing: the EMA restarts from the current weights.")

    def final_weights(self) -> Any:
        """Every save outside a checkpoint (the final folder, push_to_hub) holds the EMA weights."""
        return None if self.ema is None else self.ema.applied(self.accelerator.unwrap_model(self.model))

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """The model card is rendered by `train.model_card` (the entry scripts), not by the Trainer's generic one."""
        return None


__all__ = ["EMA_NAME", "RESUME_LAST", "TrainerBase", "fsdp_requested", "zero_loss"]
