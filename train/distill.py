"""Distil a trained LDLM's denoiser to few steps: `python train/distill.py CONFIG.yaml --teacher CHECKPOINT [flags]`
(or under `accelerate launch`).

Progressive distillation (train/progressive.py): each stage halves the student's DDIM steps, from --start_steps
teacher steps down to --final_steps. Only the denoiser trains; the teacher's encoder turns the training text into
latents (its frozen-LM states can be cached with --cache_hidden_states), and its decoders are reused unchanged. Each
stage's student is saved as `<output_dir>/student-<N>-steps`, and the last one also as `<output_dir>` itself: normal
LDLM checkpoints whose generation_config.json defaults to the distilled sampler (DDIM, trailing grid, N steps),
with a model card saying what they were distilled from and at what cost. Resumable with --resume_from_checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from typing import Any

if __package__ in (None, ""):  # `python train/distill.py`: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import set_seed
from transformers.utils import logging

from modeling_ldlm import LDLMForDiffusionGeneration
from train.arguments import DataArguments, DistillationArguments, DistillModelArguments
from train.data import LDLMCollator
from train.distill_trainer import DistillationTrainer
from train.model_card import render_distilled_card
from train.progressive import stage_steps
from train.run import parse_args as parse_run_args
from train.run import prepare_data, sample_texts

logger = logging.get_logger("train.distill")
LATENT_SHAPE = ("num_latents", "latent_dim", "max_sequence_length")


def parse_args(argv: list[str]) -> tuple[DistillModelArguments, DataArguments, DistillationArguments]:
    return parse_run_args(argv, (DistillModelArguments, DataArguments, DistillationArguments))


def load_ldlm(path: str, role: str) -> LDLMForDiffusionGeneration:
    """A checkpoint folder that must hold an LDLM (model_type "ldlm"), with a clear error otherwise."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"--{role} {path!r} is not a checkpoint folder: it has no config.json.")
    with open(config_file) as f:
        model_type = json.load(f).get("model_type")
    if model_type != "ldlm":
        raise ValueError(f"--{role} {path!r} holds a {model_type!r} model, not an LDLM (model_type 'ldlm'): "
                         "distillation needs a checkpoint written by train/run.py or save_pretrained.")
    return LDLMForDiffusionGeneration.from_pretrained(path).eval()


def build_models(model_args: DistillModelArguments) -> tuple[LDLMForDiffusionGeneration, LDLMForDiffusionGeneration]:
    """(teacher, student): the student is the teacher's encoder, decoders and frozen LM with a trainable copy of its
    denoiser, or of the denoiser of --student_init, whose latents must have the teacher's shape."""
    if model_args.teacher is None:
        raise ValueError("Give --teacher: the LDLM checkpoint to distil.")
    teacher = load_ldlm(model_args.teacher, "teacher").requires_grad_(False)
    student = load_ldlm(model_args.teacher, "teacher")
    if model_args.student_init is not None:
        init = load_ldlm(model_args.student_init, "student_init")
        for key in LATENT_SHAPE:
            if getattr(init.config, key) != getattr(teacher.config, key):
                raise ValueError(f"--student_init has {key}={getattr(init.config, key)} but the teacher has "
                                 f"{getattr(teacher.config, key)}: a student must denoise the teacher's latents.")
        try:
            student.denoiser.load_state_dict(init.denoiser.state_dict())
        except RuntimeError as err:
            raise ValueError(f"--student_init's denoiser does not have the teacher's sizes: {err}") from err
    student.requires_grad_(False)
    student.denoiser.requires_grad_(True)  # the only part that trains
    return teacher, student


def configure(args: DistillationArguments) -> list[str]:
    stages = stage_steps(args.start_steps, args.final_steps)
    if args.steps_per_stage <= 0:
        raise ValueError(f"--steps_per_stage must be > 0, got {args.steps_per_stage}.")
    if args.max_steps > 0 and args.max_steps != len(stages) * args.steps_per_stage:
        raise ValueError(f"--max_steps is set by the stages ({len(stages)} x --steps_per_stage = "
                         f"{len(stages) * args.steps_per_stage}); leave it unset.")
    args.max_steps = len(stages) * args.steps_per_stage
    args.remove_unused_columns = False  # the Trainer's model is the denoiser; the text columns feed the encoder
    return stages


def main(argv: list[str] | None = None) -> dict[str, Any]:
    start = time.time()
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, args = parse_args(argv)
    stages = configure(args)
    set_seed(args.seed)
    teacher, student = build_models(model_args)
    train_ds, valid_ds = prepare_data(student, data_args, args, fit_statistics=False)  # the teacher's statistics
    teacher.to(args.device)
    student.to(args.device)
    trainer = DistillationTrainer(model=student.denoiser, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
                                  data_collator=LDLMCollator(student.config.pad_token_id),
                                  processing_class=student.tokenizer, student=student, teacher=teacher)
    resume = args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last", "latest"):
        resume = True
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    metrics.update(trainer.evaluate())
    summary = {"metrics": metrics, "stages": stages, "teacher": model_args.teacher,
               "teacher_train_seconds": teacher_train_seconds(model_args.teacher),
               "distill_seconds": metrics.get("train_runtime"), "world_size": args.world_size,
               "command": " ".join(map(shlex.quote, ["train/distill.py", *argv]))}
    if trainer.is_world_process_zero():
        finish(trainer, summary, args, start)
    return summary


def teacher_train_seconds(teacher: str) -> float | None:
    """The teacher's own training seconds, from the ldlm_run.json train/run.py wrote next to it."""
    path = os.path.join(teacher, "ldlm_run.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("metrics", {}).get("train_runtime")


def finish(trainer: DistillationTrainer, summary: dict[str, Any], args: DistillationArguments, start: float) -> None:
    """Save the final student as output_dir, draw samples, and write each student's card and the run summary."""
    out, final = args.output_dir, args.final_steps
    trainer.save_student(out, final)
    student = LDLMForDiffusionGeneration.from_pretrained(out).eval()
    samples = sample_texts(student, student.tokenizer, args.num_samples, final, args.seed)
    if samples is not None:
        summary["samples"], summary["sample_entropy"] = samples
        print(f"\n=== samples of the {final}-step student ===")
        for text in samples[0]:
            print("-", text)
    summary["wall_time_s"] = round(time.time() - start, 1)
    summary["students"] = {str(k): v for k, v in trainer.saved_students.items()}
    for steps, folder in trainer.saved_students.items():
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write(render_distilled_card(trainer, summary, args, steps, folder))
        with open(os.path.join(folder, "distill_run.json"), "w") as f:
            json.dump({**summary, "student_steps": steps}, f, indent=2, default=str)
    for key in ("eval_loss", "eval_probe_token_agreement", "eval_probe_latent_mse"):
        if key in summary["metrics"]:
            print(f"{key}: {summary['metrics'][key]:.4f}")
    print(f"Saved the {final}-step student to {out} in {summary['wall_time_s']} s "
          f"(distillation {summary['distill_seconds']:.0f} s)")
    if args.push_to_hub:
        trainer.push_to_hub(commit_message="LDLM distilled student")


if __name__ == "__main__":
    main()
