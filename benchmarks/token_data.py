"""The harness's data stage: the corpus split into training and held-out sentences (or packed windows of
consecutive sentences), optionally only those that fit the tier's length, tokenised once for every arm.

Saved in the work dir as `data.safetensors` (the token ids and masks the baselines train on) and `train.txt` /
`validation.txt` (the same lines, which train/run.py and train/distill.py read)."""

from __future__ import annotations

import gzip
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .packed_text import pack_consecutive


def prepare_data(work: Path, tokenizer, tier: dict, text_file: Path) -> dict[str, torch.Tensor]:
    """`train_ids`, `train_mask`, `val_ids` and `val_mask`, padded to the tier's `max_length` (read back when saved)."""
    path = work / "data.safetensors"
    if path.exists():
        return load_file(path)
    train, val = split_lines(text_file)
    if tier.get("data_mode") == "packed":  # windows of consecutive sentences, never across the train/val split
        train, val = packed_windows(train, tokenizer, tier["max_length"]), packed_windows(val, tokenizer,
                                                                                          tier["max_length"])
    if tier.get("drop_long_lines"):  # as train/run.py's --long_lines drop: no arm sees a truncated sentence
        train, val = fitting(train, tokenizer, tier["max_length"]), fitting(val, tokenizer, tier["max_length"])
    if tier["train_lines"]:
        train = train[: tier["train_lines"]]
    val = val[: tier["val_lines"]]
    data = {}
    for name, rows in (("train", train), ("val", val)):
        enc = tokenizer(rows, padding="max_length", truncation=True, max_length=tier["max_length"], return_tensors="pt")
        data[f"{name}_ids"], data[f"{name}_mask"] = enc.input_ids.contiguous(), enc.attention_mask.contiguous()
    (work / "train.txt").write_text("\n".join(train) + "\n")
    (work / "validation.txt").write_text("\n".join(val) + "\n")
    save_file(data, path)
    return data


def split_lines(text_file: Path) -> tuple[list[str], list[str]]:
    """The corpus's non-empty lines: the first 95% for training, the rest held out."""
    opener = gzip.open if text_file.suffix == ".gz" else open
    with opener(text_file, "rt", encoding="utf-8", errors="replace") as f:
        lines = [s for s in (line.strip() for line in f) if s]
    split = int(len(lines) * 0.95)
    return lines[:split], lines[split:]


def fitting(rows: list[str], tokenizer, max_length: int) -> list[str]:
    """The rows whose tokens (special tokens included) fit in `max_length`."""
    return [r for r, ids in zip(rows, tokenizer(rows)["input_ids"]) if len(ids) <= max_length]


def packed_windows(sentences: list[str], tokenizer, max_length: int) -> list[str]:
    """Consecutive whole sentences per line, as many as fit in `max_length` tokens with the special tokens."""
    specials = len(tokenizer("")["input_ids"])  # [CLS] and [SEP] for BERT-like tokenizers
    lengths = [len(ids) - specials for ids in tokenizer(sentences)["input_ids"]]
    return pack_consecutive(sentences, lengths, max_length - specials)
