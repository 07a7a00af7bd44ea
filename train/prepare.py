"""The training and validation sets of a run, from its arguments (train/run.py, train/distill.py): text loaded and
tokenised for the model (train.data), capped, streamed or materialised, with the frozen-LM states cached if asked,
and the hidden-state statistics of a new model fitted on the training text."""

from __future__ import annotations

import itertools
import time
from typing import Any

from datasets import Dataset
from transformers import TrainingArguments
from transformers.utils import logging

from .arguments import DataArguments
from .data import (
    CachedHiddenDataset,
    LDLMCollator,
    check_hidden_cache_budget,
    load_text,
    precompute_hidden_states,
    tokenize,
)

logger = logging.get_logger(__name__)
STATISTICS_BATCH = 64  # examples per forward pass when caching states or fitting statistics


def prepare_data(model: Any, data_args: DataArguments, training_args: TrainingArguments,
                 fit_statistics: bool = True) -> tuple[Any, Any]:
    """(train, validation) datasets for the model's tokenizer and length, with cached frozen-LM states if asked;
    fits the hidden-state statistics of a new model unless `fit_statistics=False`. With --streaming the training
    set is a lazy, buffer-shuffled stream and the validation rows are read once."""
    if model.tokenizer is None:
        raise ValueError("The model has no tokenizer: the frozen LM folder / checkpoint must include one.")
    train, valid = tokenised_splits(model, data_args, training_args)
    if data_args.streaming:
        train, valid = streamed_splits(train, valid, data_args, training_args)
    else:
        train, valid = materialised_splits(train, valid, data_args, training_args)
    if data_args.cache_hidden_states:
        return with_cached_states(model, train, valid, data_args, training_args, fit_statistics)
    if fit_statistics and not bool(model.hidden_stats_fitted):
        examples = list(itertools.islice(iter(train), data_args.hidden_stats_examples))  # works for a stream too
        collate = LDLMCollator(model.config.pad_token_id)
        batches = (collate(examples[s: s + STATISTICS_BATCH]) for s in range(0, len(examples), STATISTICS_BATCH))
        model.fit_hidden_statistics((b["input_ids"], b["attention_mask"]) for b in batches)
    return train, valid


def tokenised_splits(model: Any, data_args: DataArguments, training_args: TrainingArguments) -> tuple[Any, Any]:
    """The "train" and "validation" token ids, read and tokenised once (by the main process first)."""
    with training_args.main_process_first(desc="tokenise"):
        raw = load_text(data_args.dataset_name, data_args.dataset_config_name, data_args.train_file,
                        data_args.validation_file, data_args.text_column, data_args.validation_split_percentage,
                        data_args.encoding_errors, data_args.streaming, data_args.streaming_validation_rows)
        tokens = tokenize(raw, model.tokenizer, model.config.max_sequence_length, data_args.data_mode,
                          data_args.long_lines, data_args.preprocessing_num_workers)
    return tokens["train"], tokens["validation"]


def materialised_splits(train: Dataset, valid: Dataset, data_args: DataArguments,
                        training_args: TrainingArguments) -> tuple[Dataset, Dataset]:
    """Both splits capped at --max_train_samples / --max_eval_samples; at least one training batch left."""
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if data_args.max_eval_samples is not None:
        valid = valid.select(range(min(data_args.max_eval_samples, len(valid))))
    needed = training_args.per_device_train_batch_size * training_args.world_size
    if len(train) < needed:
        raise ValueError(f"Only {len(train)} training examples but one batch needs {needed} "
                         "(per_device_train_batch_size x processes): lower the batch size or give more data.")
    return train, valid


def streamed_splits(train: Any, valid: Any, data_args: DataArguments,
                    training_args: TrainingArguments) -> tuple[Any, Dataset]:
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


def with_cached_states(model: Any, train: Dataset, valid: Dataset, data_args: DataArguments,
                       training_args: TrainingArguments,
                       fit_statistics: bool) -> tuple[CachedHiddenDataset, CachedHiddenDataset]:
    """Both splits with their frozen-LM states computed once (fp16, within --hidden_states_cache_max_gb)."""
    cfg = model.config
    check_hidden_cache_budget(len(train) + len(valid), cfg.max_sequence_length, cfg.frozen_lm_hidden_size,
                              data_args.hidden_states_cache_max_gb)
    model.to(training_args.device)
    with training_args.main_process_first(desc="frozen-LM states"):
        t0 = time.time()
        cache_dir = data_args.hidden_states_cache_dir
        train_states = precompute_hidden_states(model, train, STATISTICS_BATCH, cache_dir, cfg.pad_token_id)
        valid_states = precompute_hidden_states(model, valid, STATISTICS_BATCH, cache_dir, cfg.pad_token_id)
        logger.warning(f"Frozen-LM states of {len(train)} + {len(valid)} examples ready in {time.time() - t0:.0f} s.")
    if fit_statistics and not bool(model.hidden_stats_fitted):
        model.fit_hidden_statistics_from_states(train_states[: data_args.hidden_stats_examples])
    return CachedHiddenDataset(train, train_states), CachedHiddenDataset(valid, valid_states)


__all__ = ["prepare_data"]
