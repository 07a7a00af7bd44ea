"""Text data for LDLM training through `datasets`: a Hub dataset or local text files, tokenised once with the frozen
LM's tokenizer (cached by `datasets`), in two modes:

- sentence: one line per example, [text + EOS], over-long lines truncated (keeping EOS) or dropped, padded per batch;
- packed: documents concatenated with EOS between them and chunked into blocks of exactly L tokens.

With `streaming=True` the text is read and tokenised lazily (`datasets` iterable datasets) as training consumes it,
so a corpus is never materialised, in memory or on disk; without it, tokenisation runs once over the whole corpus
and `datasets` keeps the result as memory-mapped Arrow files (memory stays flat; the disk holds the ids).

Optionally the raw frozen-LM hidden states of every example are computed once and kept in float16 (in memory and in
a cache file), so training skips the frozen LM (`forward(hidden_states=...)`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict, load_dataset
from datasets.exceptions import DatasetGenerationError
from transformers.utils.logging import tqdm

from modeling_ldlm.token_ids import require_end_of_sequence_id

MODES = ("sentence", "packed")
LONG_LINES = ("truncate", "drop")
ENCODING_ERRORS = ("strict", "replace", "ignore")


def load_text(dataset_name: str | None = None, dataset_config_name: str | None = None,
              train_file: str | None = None, validation_file: str | None = None, text_column: str = "text",
              validation_split_percentage: float = 5.0, encoding_errors: str = "strict", streaming: bool = False,
              streaming_validation_rows: int = 1000) -> DatasetDict | IterableDatasetDict:
    """Raw text as a DatasetDict with "train" and "validation" splits and a "text" column. Without a validation
    split, the last `validation_split_percentage` percent of the training rows become validation (streaming: the
    first `streaming_validation_rows` rows, since a stream's length is unknown). Local files are read as UTF-8;
    `encoding_errors` ('strict', 'replace', 'ignore') says what to do with other bytes.
    `dataset_name="none"` unsets a preset's Hub dataset (e.g. to run a Hub preset on a local --train_file)."""
    if dataset_name is not None and dataset_name.lower() == "none":
        dataset_name = None
    if dataset_name is not None and train_file is not None:
        raise ValueError(f"Give either --dataset_name ({dataset_name!r}) or --train_file ({train_file!r}), not both; "
                         "--dataset_name none unsets a preset's dataset.")
    if dataset_name is None and train_file is None:
        raise ValueError("Give either --dataset_name (a Hub dataset) or --train_file (local text files).")
    if dataset_name is not None:
        raw = load_dataset(dataset_name, dataset_config_name, streaming=streaming)
    else:
        raw = _read_text_files(train_file, validation_file, encoding_errors, streaming)
    if "train" not in raw:
        raise ValueError(f"The dataset has no 'train' split (splits: {list(raw)}).")
    columns = raw["train"].column_names
    if columns is not None and text_column not in columns:
        raise ValueError(f"Column {text_column!r} not in the dataset; columns: {columns}. Set --text_column.")
    if text_column != "text":
        raw = raw.rename_column(text_column, "text")
    if streaming:
        return _streaming_splits(raw, streaming_validation_rows)
    raw = DatasetDict({k: v.select_columns(["text"]) for k, v in raw.items()})
    if len(raw["train"]) == 0:
        raise ValueError("The training data is empty.")
    return raw if "validation" in raw else _held_out_splits(raw["train"], validation_split_percentage)


def _read_text_files(train_file: str, validation_file: str | None, encoding_errors: str,
                     streaming: bool) -> DatasetDict | IterableDatasetDict:
    """Local text files, one example a line, read as UTF-8 (`encoding_errors` for other bytes)."""
    for path in [train_file, validation_file]:
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"Data file {path!r} does not exist.")
        if path is not None and os.path.getsize(path) == 0:
            raise ValueError(f"Data file {path!r} is empty.")
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"--encoding_errors must be one of {ENCODING_ERRORS}, got {encoding_errors!r}.")
    files = {"train": train_file}
    if validation_file is not None:
        files["validation"] = validation_file
    try:
        return load_dataset("text", data_files=files, encoding_errors=encoding_errors, streaming=streaming)
    except DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__
        if not isinstance(cause, UnicodeDecodeError):
            raise
        named = " or ".join(repr(f) for f in files.values())
        raise ValueError(f"{named} is not UTF-8 text: {cause}. Convert it "
                         "(iconv -f latin1 -t utf-8), or pass --encoding_errors replace to read such bytes as "
                         "U+FFFD, or --encoding_errors ignore to drop them.") from err


def _held_out_splits(train: Dataset, validation_split_percentage: float) -> DatasetDict:
    """The last `validation_split_percentage` percent of the training rows as the validation split."""
    if not 0 < validation_split_percentage < 100:
        raise ValueError("No validation split: set --validation_file or 0 < --validation_split_percentage < 100.")
    n = len(train)
    n_val = max(1, int(n * validation_split_percentage / 100))
    if n_val >= n:
        raise ValueError(f"The training data has only {n} rows: too few to hold out a validation split.")
    return DatasetDict(train=train.select(range(n - n_val)), validation=train.select(range(n - n_val, n)))


def _streaming_splits(raw: IterableDatasetDict, validation_rows: int) -> IterableDatasetDict:
    """Train and validation streams with only the "text" column; without a validation split, the first
    `validation_rows` training rows are held out."""
    raw = IterableDatasetDict({k: v.select_columns(["text"]) for k, v in raw.items()})
    if "validation" not in raw:
        if validation_rows < 1:
            raise ValueError("No validation split: set --validation_file or --streaming_validation_rows >= 1.")
        raw = IterableDatasetDict(train=raw["train"].skip(validation_rows), validation=raw["train"].take(validation_rows))
    return raw


def tokenize(raw: DatasetDict | IterableDatasetDict, tokenizer: Any, max_length: int, mode: str = "sentence",
             long_lines: str = "truncate", num_proc: int | None = None) -> DatasetDict | IterableDatasetDict:
    """Token ids (column "input_ids") per split; empty lines are skipped. Cached by `datasets` fingerprints; an
    iterable (streaming) input gives iterable splits, tokenised as they are read."""
    if mode not in MODES:
        raise ValueError(f"data mode must be one of {MODES}, got {mode!r}.")
    if long_lines not in LONG_LINES:
        raise ValueError(f"long_lines must be one of {LONG_LINES}, got {long_lines!r}.")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}.")
    eos = require_end_of_sequence_id(tokenizer)
    # verbose=False: the tokenizer would warn about lines longer than its model_max_length; we cut them ourselves.

    def sentence(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        texts = [t.strip() for t in batch["text"] if t and t.strip()]
        out = []
        for ids in (tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"] if texts else []):
            if not ids or ids[-1] != eos:
                ids = ids + [eos]
            if len(ids) > max_length:
                if long_lines == "drop":
                    continue
                ids = ids[: max_length - 1] + [eos]
            out.append(ids)
        return {"input_ids": out}

    def packed(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        texts = [t.strip() for t in batch["text"] if t and t.strip()]
        stream: list[int] = []
        for ids in (tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []):
            stream.extend(ids + [eos])
        usable = len(stream) // max_length * max_length
        return {"input_ids": [stream[i: i + max_length] for i in range(0, usable, max_length)]}

    fn = sentence if mode == "sentence" else packed
    if isinstance(raw, IterableDatasetDict):
        return IterableDatasetDict({k: v.map(fn, batched=True, batch_size=1000, remove_columns=["text"])
                                    for k, v in raw.items()})
    out = raw.map(fn, batched=True, batch_size=1000, remove_columns=["text"], num_proc=num_proc,
                  desc=f"Tokenising ({mode}, L={max_length})")
    for split, ds in out.items():
        if len(ds) == 0:
            raise ValueError(f"No {split} examples are left after tokenisation (empty lines removed, mode={mode!r}, "
                             f"max_length={max_length}): give more text or a smaller max_length.")
    return out


def check_hidden_cache_budget(num_examples: int, max_length: int, hidden_size: int, max_gb: float) -> float:
    """The size in GB of caching the frozen-LM states of `num_examples` sequences of up to `max_length` tokens in
    fp16; ValueError when it exceeds `max_gb` (OpenWebText at GPT-2 small's width is ~14 TB)."""
    size_gb = num_examples * max_length * hidden_size * 2 / 1e9
    if size_gb > max_gb:
        raise ValueError(f"--cache_hidden_states would hold up to {size_gb:,.1f} GB of frozen-LM states ({num_examples:,} "
                         f"sequences x {max_length} tokens x {hidden_size} channels x 2 bytes, in RAM and on disk), "
                         f"over --hidden_states_cache_max_gb {max_gb:g}: drop --cache_hidden_states (the frozen LM "
                         "then runs in every step), cap --max_train_samples, or raise the budget.")
    return size_gb


class LDLMCollator:
    """Right-pads `input_ids` (and cached `hidden_states`) of a list of examples to the longest one."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "hidden_states" in examples[0]:
            h = examples[0]["hidden_states"]
            states = torch.zeros((len(examples), length, h.shape[-1]), dtype=h.dtype)
            for row, e in enumerate(examples):
                states[row, : e["hidden_states"].shape[0]] = e["hidden_states"]
            batch["hidden_states"] = states
        return batch


class CachedHiddenDataset(torch.utils.data.Dataset):
    """Tokenised examples together with their precomputed raw frozen-LM hidden states (float16, (len_i, H))."""

    def __init__(self, tokens: Dataset, states: list[torch.Tensor]):
        if len(tokens) != len(states):
            raise ValueError(f"{len(tokens)} examples but {len(states)} cached hidden states.")
        self.ids = tokens["input_ids"]
        self.states = states

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "hidden_states": self.states[i]}


def _cache_key(tokens: Dataset, model: Any) -> str:
    lm = model.config.frozen_lm_config
    ident = f"{tokens._fingerprint}|{lm.to_json_string()}|{model.config.frozen_lm_layer}|{len(tokens)}"
    weights = next(iter(model.frozen_lm.parameters())).detach()
    ident += f"|{float(weights.double().sum()):.10e}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


@torch.no_grad()
def precompute_hidden_states(model: Any, tokens: Dataset, batch_size: int = 64, cache_dir: str | None = None,
                             pad_token_id: int = 0) -> list[torch.Tensor]:
    """Raw hidden states of the frozen LM's configured layer for every example, float16, one (len_i, H) tensor each.
    With `cache_dir`, they are stored once per (data, frozen LM, layer) and reused by later runs."""
    path = None
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f"hidden_{_cache_key(tokens, model)}.pt")
        if os.path.isfile(path):
            return torch.load(path, weights_only=True)
    collate = LDLMCollator(pad_token_id)
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]["input_ids"]))  # little padding per batch
    states: list[torch.Tensor | None] = [None] * len(tokens)
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=f"Frozen-LM states ({len(order)} examples)",
                      unit="batch"):
        rows = order[start: start + batch_size]
        batch = collate([tokens[i] for i in rows])
        hidden = model.frozen_hidden_states(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        for j, i in enumerate(rows):
            states[i] = hidden[j, : int(batch["attention_mask"][j].sum())].to("cpu", torch.float16).clone()
    if path is not None:
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(states, tmp)
        os.replace(tmp, path)
    return states  # type: ignore[return-value]
