"""DistillationTrainer: progressive distillation (train/progressive.py) of an LDLM's denoiser, on the shared
`train.base_trainer.TrainerBase` (weight EMA, non-finite guard, running-mean logs, atomic checkpoints).

The Trainer's model is the student's denoiser alone (the only part that trains; it is the same module as
`student.denoiser`, so DDP wraps and all-reduces exactly it). The encoder, decoders and frozen LM are the
teacher's, unchanged: they turn text into training latents z0 and, for the quality probe, latents into tokens.
Stages follow the global step: stage k (steps_per_stage optimiser steps) trains the student of
`stage_steps(start, final)[k]` steps against a frozen teacher denoiser, the original teacher for stage 0 and the
previous stage's student (its EMA or live weights) after that. Checkpoints hold the live student, its EMA and the
current teacher, so a resumed run continues exactly. Each evaluation logs the distillation loss on validation text
and the probe: how closely the student's few-step samples follow the teacher's own `generate()` samples from the
same initial noise (token agreement over the teacher's tokens, latent MSE).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from functools import partial
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from transformers.trainer_utils import EvalLoopOutput
from transformers.utils import logging

from modeling_ldlm.noise_schedules import add_noise

from .base_trainer import TrainerBase
from .progressive import distillation_loss, progressive_target, student_transitions

logger = logging.get_logger(__name__)

TEACHER_NAME = "distill_teacher.safetensors"
DISTILL_STATE_NAME = "distill_state.json"


class _StageCallback(TrainerCallback):
    def __init__(self, trainer: DistillationTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):  # after the EMA update of the same step
        self.trainer.after_optimizer_step()


class DistillationTrainer(TrainerBase):
    """`Trainer(model=student.denoiser)`; `student` and `teacher` are `LDLMForDiffusionGeneration` models, `args` a
    `train.arguments.DistillationArguments`."""

    def __init__(self, *args: Any, student: Any, teacher: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stages = self.args.stages
        self.student, self.original_teacher = student, teacher
        self.teacher_denoiser = copy.deepcopy(teacher.denoiser).eval().requires_grad_(False)
        self.teacher_stage = 0
        self.saved_students: dict[int, str] = {}
        self._probe = self._teacher_probe_reference()
        self.add_callback(_StageCallback(self))

    # ---- stages -------------------------------------------------------------------------------------------------
    def stage_at(self, step: int) -> int:
        return min(step // self.args.steps_per_stage, len(self.stages) - 1)

    def teacher_fn(self):
        """The teacher's `denoise(z_t, t)`: self-conditioned (two passes) for the original teacher if asked."""
        net, two_pass = self.teacher_denoiser, self.teacher_stage == 0 and self.args.teacher_self_conditioning

        def denoise(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x0 = net(z, t, None)
            return net(z, t, x0) if two_pass else x0

        return denoise

    def after_optimizer_step(self) -> None:
        """At the end of a stage: save its student, and let it (EMA or live) teach the next stage."""
        step, per_stage = self.state.global_step, self.args.steps_per_stage
        if step % per_stage != 0:
            return
        finished = step // per_stage - 1
        if self.args.save_stage_students and self.is_world_process_zero():
            self.save_student(os.path.join(self.args.output_dir, f"student-{self.stages[finished]}-steps"),
                              self.stages[finished])
        if finished + 1 < len(self.stages):
            with self._student_weights(self.args.next_teacher):
                self.teacher_denoiser.load_state_dict(self.student.denoiser.state_dict())
            self.teacher_stage = finished + 1
            logger.warning(f"Stage {finished + 1}: the {self.stages[finished]}-step student now teaches a "
                           f"{self.stages[finished + 1]}-step student.")

    def _student_weights(self, which: str):
        if which == "ema" and self.ema is not None:
            return self.ema.applied(self.student.denoiser)
        return contextlib.nullcontext()

    # ---- the loss -----------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        stage = self.stage_at(self.state.global_step)
        if stage != self.teacher_stage:
            raise RuntimeError(f"The teacher is for stage {self.teacher_stage} but step {self.state.global_step} is in "
                               f"stage {stage}: resume from a checkpoint written by this trainer.")
        loss = self._distillation_loss(model, inputs, self.stages[stage], generator=None)
        if model.training:
            loss = self.guard_loss(model, loss, on_finite=partial(self.accumulate, {"loss_distill": loss}),
                                   describe=lambda step: f"non-finite distillation loss at optimiser step {step}")
        return (loss, None) if return_outputs else loss

    def _distillation_loss(self, model, inputs: dict[str, torch.Tensor], steps: int,
                           generator: torch.Generator | None) -> torch.Tensor:
        student = self.student
        with torch.no_grad():
            z0 = student.encode(inputs["input_ids"], inputs["attention_mask"], inputs.get("hidden_states")).float()
        b, device = z0.shape[0], z0.device
        index = torch.randint(0, steps, (b,), generator=generator, device="cpu").to(device)
        t, s = student_transitions(steps, index, self.args.distill_t_max)
        noise = torch.randn(z0.shape, generator=generator, device="cpu").to(device)
        alpha, sigma = student.alpha_sigma(t)
        z_t = add_noise(z0, noise, alpha, sigma)
        with torch.no_grad():
            target = progressive_target(self.teacher_fn(), z_t, t, s, student.alpha_sigma)
        return distillation_loss(model(z_t, t, None), target, alpha, sigma, self.args.loss_weighting)

    def training_logs(self, means: dict[str, float]) -> dict[str, float]:
        """The running mean of the distillation loss, and the student's step count of the stage just trained."""
        return {"loss_distill": round(means["loss_distill"], 6),
                "student_steps": self.stages[self.stage_at(max(self.state.global_step - 1, 0))]}

    # ---- evaluation: held-out loss and the quality probe ---------------------------------------------------------
    @torch.no_grad()
    def evaluation_loop(self, dataloader, description: str, prediction_loss_only: bool | None = None,
                        ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> EvalLoopOutput:
        model, a = self.model, self.args
        was_training = model.training
        model.eval()
        stage = self.stage_at(max(self.state.global_step - 1, 0))
        generator = torch.Generator().manual_seed(a.seed)
        total, count = 0.0, 0
        try:
            for batch in self.evaluation_batches(dataloader):
                b = len(batch["input_ids"])
                total += float(self._distillation_loss(model, batch, self.stages[stage], generator)) * b
                count += b
            probe = self.probe(self.stages[stage])
        finally:
            model.train(was_training)
        totals = self.accelerator.reduce(torch.tensor([total, count], dtype=torch.float64, device=a.device), "sum")
        metrics = {f"{metric_key_prefix}_loss": float(totals[0] / totals[1]),
                   f"{metric_key_prefix}_student_steps": self.stages[stage]}
        metrics.update({f"{metric_key_prefix}_{k}": v for k, v in probe.items()})
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=int(totals[1]))

    def _probe_generators(self) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(self.args.seed * 1000 + row) for row in range(self.args.probe_samples)]

    def _teacher_probe_reference(self) -> dict[str, torch.Tensor]:
        """The teacher's own generate() samples (its saved settings) from seeded noise, decoded once."""
        out = self.original_teacher.generate(num_return_sequences=self.args.probe_samples, return_dict_in_generate=True,
                                             generator=self._probe_generators())
        canvas = self.original_teacher.canvas_logits(out.latents, out.completions.shape[1]).argmax(-1)
        real = out.completions != self.original_teacher.config.pad_token_id
        return {"latents": out.latents, "tokens": canvas, "real": real}

    def probe(self, steps: int) -> dict[str, float]:
        """Agreement of the student's `steps`-step samples (EMA weights) with the teacher's, from the same noise."""
        with self._student_weights("ema"):
            out = self.student.generate(num_return_sequences=self.args.probe_samples, return_dict_in_generate=True,
                                        generator=self._probe_generators(), **student_generation_settings(
                                            steps, self.args.distill_t_max))
            tokens = self.student.canvas_logits(out.latents, self._probe["tokens"].shape[1]).argmax(-1)
        ref = self._probe
        agree = ((tokens == ref["tokens"]) & ref["real"]).sum() / ref["real"].sum().clamp_min(1)
        return {"probe_token_agreement": float(agree),
                "probe_latent_mse": float(((out.latents - ref["latents"]) ** 2).mean())}

    # ---- saving and resuming -------------------------------------------------------------------------------------
    def save_student(self, folder: str, steps: int) -> None:
        """A normal LDLM checkpoint: the student's EMA denoiser, the teacher's other parts, and a generation config
        that defaults to the distilled sampler."""
        settings = copy.deepcopy(self.student.generation_config)
        for key, value in student_generation_settings(steps, self.args.distill_t_max).items():
            setattr(settings, key, value)
        settings.distilled_steps = steps
        previous, self.student.generation_config = self.student.generation_config, settings
        try:
            with self._student_weights("ema"):
                self.student.save_pretrained(folder)
        finally:
            self.student.generation_config = previous
        self.saved_students[steps] = folder

    def checkpoint_extras(self, folder: str) -> None:
        """The current teacher and stage, next to (the base's) EMA weights."""
        super().checkpoint_extras(folder)
        save_file({k: v.contiguous() for k, v in self.teacher_denoiser.state_dict().items()},
                  os.path.join(folder, TEACHER_NAME))
        with open(os.path.join(folder, DISTILL_STATE_NAME), "w") as f:
            json.dump({"teacher_stage": self.teacher_stage, "stages": self.stages}, f)

    def load_checkpoint_extras(self, checkpoint: str) -> None:
        """Restore the EMA weights, the current teacher and stage written by `checkpoint_extras`."""
        super().load_checkpoint_extras(checkpoint)
        state_path, teacher_path = os.path.join(checkpoint, DISTILL_STATE_NAME), os.path.join(checkpoint, TEACHER_NAME)
        if not (os.path.isfile(state_path) and os.path.isfile(teacher_path)):
            raise ValueError(f"{checkpoint} is not a distillation checkpoint ({DISTILL_STATE_NAME} or {TEACHER_NAME} "
                             "is missing): resume from a checkpoint-* folder written by train/distill.py.")
        with open(state_path) as f:
            state = json.load(f)
        if state["stages"] != self.stages:
            raise ValueError(f"{checkpoint} was written for stages {state['stages']}, not {self.stages}: resume with "
                             "the same --start_steps and --final_steps.")
        self.teacher_denoiser.load_state_dict(load_file(teacher_path))
        self.teacher_stage = state["teacher_stage"]

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Outside checkpoints (which hold the live denoiser), a save is a whole student checkpoint."""
        if self._saving_checkpoint:
            return super().save_model(output_dir, _internal_call)
        steps = self.stages[self.stage_at(max(self.state.global_step - 1, 0))]
        if self.is_world_process_zero():
            self.save_student(output_dir or self.args.output_dir, steps)


def student_generation_settings(steps: int, t_max: float) -> dict[str, Any]:
    """The sampler a progressively distilled student was trained for: DDIM on the trailing grid, one call a step."""
    return {"num_inference_steps": steps, "solver": "euler", "time_spacing": "trailing", "t_max": t_max,
            "self_conditioning": False}


__all__ = ["DistillationTrainer", "student_generation_settings"]
