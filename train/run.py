"""Train an LDLM: `accelerate launch train/run.py [CONFIG.yaml] [--overrides]` (or plain `python train/run.py ...`).

Builds a new model around a frozen LM (`--frozen_lm`) or fine-tunes an LDLM checkpoint (`--model_name_or_path`),
prepares the data (train.prepare), trains with `LDLMTrainer` (joint loss + four-part recipe, train.trainer), saves the
EMA weights as a self-contained folder with a rendered model card, prints samples, and optionally pushes to the Hub.
Command-line flags override the YAML preset.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Any

if __package__ in (None, ""):  # `python train/run.py`: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import set_seed

from train.command_line import parse_run_args
from train.data import LDLMCollator
from train.models import build_model, resolve_frozen_lm
from train.prepare import prepare_data
from train.summary import finish_run
from train.trainer import LDLMTrainer


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or fine-tune) an LDLM as the command line says; returns the run summary (also in ldlm_run.json)."""
    start = time.time()
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, training_args = parse_run_args(argv)
    print(f"WORLD_SIZE={training_args.world_size} rank={training_args.process_index} device={training_args.device}")
    set_seed(training_args.seed)
    model = build_model(model_args)
    train_ds, valid_ds = prepare_data(model, data_args, training_args)
    trainer = LDLMTrainer(model=model, args=training_args, train_dataset=train_ds, eval_dataset=valid_ds,
                          data_collator=LDLMCollator(model.config.pad_token_id), processing_class=model.tokenizer)
    metrics = train_evaluate_save(trainer)
    summary: dict[str, Any] = {"metrics": metrics, "world_size": training_args.world_size,
                               "command": " ".join(map(shlex.quote, ["train/run.py", *argv])),
                               "train_examples": len(train_ds) if hasattr(train_ds, "__len__") else None}
    if trainer.is_world_process_zero():
        print(finish_run(model, trainer, summary, model_args, data_args, training_args, start))
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="LDLM training run")  # uploads output_dir without checkpoint-* folders
    return summary


def train_evaluate_save(trainer: LDLMTrainer) -> dict[str, Any]:
    """Train (resuming if --resume_from_checkpoint says so), evaluate, and save the EMA weights, config, remote
    code, tokenizer and generation config as --output_dir; the metrics of training, warmup and evaluation."""
    result = trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    metrics = dict(result.metrics)
    metrics.update(trainer.warmup_milestones())
    metrics.update(trainer.evaluate())
    trainer.save_model()
    return metrics


__all__ = ["main", "resolve_frozen_lm"]  # resolve_frozen_lm: also imported from here by benchmarks/

if __name__ == "__main__":
    main()
