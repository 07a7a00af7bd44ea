"""Distil a trained LDLM's denoiser to few steps: `python train/distill.py CONFIG.yaml --teacher CHECKPOINT [flags]`
(or under `accelerate launch`); CHECKPOINT is a local folder or a Hub model id.

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

from train.command_line import parse_distill_args
from train.data import LDLMCollator
from train.distill_trainer import DistillationTrainer
from train.models import build_teacher_and_student
from train.prepare import prepare_data
from train.summary import finish_distillation


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Distil the --teacher checkpoint as the command line says; returns the run summary (also in distill_run.json
    next to each student)."""
    start = time.time()
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, args = parse_distill_args(argv)
    set_seed(args.seed)
    teacher, student = build_teacher_and_student(model_args)
    train_ds, valid_ds = prepare_data(student, data_args, args, fit_statistics=False)  # the teacher's statistics
    teacher.to(args.device)
    student.to(args.device)
    trainer = DistillationTrainer(model=student.denoiser, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
                                  data_collator=LDLMCollator(student.config.pad_token_id),
                                  processing_class=student.tokenizer, student=student, teacher=teacher)
    result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    metrics = {**result.metrics, **trainer.evaluate()}
    summary = {"metrics": metrics, "stages": args.stages, "teacher": model_args.teacher,
               "teacher_train_seconds": teacher_train_seconds(teacher.name_or_path),  # its folder, also from the Hub
               "distill_seconds": metrics.get("train_runtime"), "world_size": args.world_size,
               "command": " ".join(map(shlex.quote, ["train/distill.py", *argv]))}
    if trainer.is_world_process_zero():
        print(finish_distillation(trainer, summary, args, start))
        if args.push_to_hub:
            trainer.push_to_hub(commit_message="LDLM distilled student")
    return summary


def teacher_train_seconds(folder: str) -> float | None:
    """The teacher's own training seconds, from the ldlm_run.json train/run.py wrote into its folder."""
    path = os.path.join(folder, "ldlm_run.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("metrics", {}).get("train_runtime")


if __name__ == "__main__":
    main()
