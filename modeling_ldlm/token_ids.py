"""Token ids at the model's boundary: one validation rule per fault, and one rule for the end-of-sequence id.

Every public entry point that takes ids (`forward`, `encode`, `fit_hidden_statistics`, `generate`) checks them here,
so the same fault always raises the same exception: `TypeError` when the ids are not an integer tensor, `ValueError`
for a wrong shape, an id outside the vocabulary or a malformed mask. The end-of-sequence id is the tokenizer's
separator when it has one (BERT-like: [SEP] ends every encoded text), else its EOS token (GPT-2-like:
<|endoftext|>).
"""

from __future__ import annotations

from typing import Any

import torch


def check_token_ids(name: str, ids: Any, max_length: int | None = None) -> torch.Tensor:
    """Check the type and shape of a batch of token ids; return it as a (B, T) long tensor (a 1-D tensor is one
    row). `max_length` bounds T."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.LongTensor of shape (batch, length), got {type(ids).__name__}; "
                        "pass tokenizer(..., return_tensors='pt').input_ids.")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}; pass tokenizer(...).input_ids.")
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, length) with both > 0, got {tuple(ids.shape)}.")
    if max_length is not None and ids.shape[1] > max_length:
        raise ValueError(f"{name} has length {ids.shape[1]} but the model handles at most max_sequence_length="
                         f"{max_length} tokens; truncate the text (tokenizer(..., truncation=True, "
                         f"max_length={max_length})).")
    return ids.long()


def check_vocabulary(name: str, ids: torch.Tensor, vocab_size: int, where: torch.Tensor | None = None,
                     at: str = "") -> None:
    """Every id (or every id where `where` (B, T) is True) lies in [0, vocab_size)."""
    values = ids if where is None else ids[where.to(ids.device)]
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= vocab_size):
        raise ValueError(f"{name} holds ids outside the vocabulary [0, {vocab_size}){at}.")


def check_binary_mask(name: str, mask: Any, shape: torch.Size, of: str = "its ids",
                      check_values: bool = True) -> torch.Tensor:
    """A (B, T) 0/1 or bool mask with the shape of its ids, returned as bool; None means all ones. A 1-D mask is
    one row."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape {tuple(shape)}, got {type(mask).__name__}.")
    if mask.dim() == 1 and len(shape) == 2 and shape[0] == 1:
        mask = mask[None]
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape of {of} {tuple(shape)}, got {tuple(mask.shape)}.")
    if check_values and mask.dtype != torch.bool and bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f"{name} must hold only 0 and 1.")
    return mask.bool()


def check_right_padded(attention_mask: torch.Tensor) -> None:
    """Every row has a token, and tokens come first: (B, L) bool."""
    if bool((attention_mask.sum(-1) == 0).any()):
        raise ValueError("Every row needs at least one real token: attention_mask has an all-zero row.")
    if bool((attention_mask[:, 1:] & ~attention_mask[:, :-1]).any()):
        raise ValueError("LDLM expects right padding (tokens first, padding after): set tokenizer.padding_side='right'.")


def check_token_batch(input_ids: Any, attention_mask: Any, vocab_size: int, max_length: int,
                      check_values: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded training/encoding batch: (input_ids, attention_mask) as (B, L) long tensors."""
    if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 1:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}: add a batch "
                         "dimension (input_ids[None]).")
    ids = check_token_ids("input_ids", input_ids, max_length)
    if check_values:
        check_vocabulary("input_ids", ids, vocab_size)
    mask = check_binary_mask("attention_mask", attention_mask, ids.shape, of="input_ids", check_values=check_values)
    mask = mask.to(ids.device)
    if check_values:
        check_right_padded(mask)
    return ids, mask.long()


def end_of_sequence_id(tokenizer: Any) -> int | None:
    """The id that ends a sequence: the separator if the tokenizer has one (BERT-like), else its EOS token."""
    if getattr(tokenizer, "sep_token_id", None) is not None:
        return tokenizer.sep_token_id
    return getattr(tokenizer, "eos_token_id", None)


def require_end_of_sequence_id(tokenizer: Any) -> int:
    """`end_of_sequence_id`, which LDLM cannot do without: a ValueError when the tokenizer has neither id."""
    eos = end_of_sequence_id(tokenizer)
    if eos is None:
        raise ValueError("The tokenizer has neither a separator nor an EOS token: LDLM needs an end-of-sequence id; "
                         "use a tokenizer that has one (or set tokenizer.eos_token to a token of its vocabulary).")
    return eos


def start_of_sequence_id(tokenizer: Any) -> int | None:
    """The id a tokenizer puts first: [CLS] if it has one (BERT-like), else its BOS token."""
    if getattr(tokenizer, "cls_token_id", None) is not None:
        return tokenizer.cls_token_id
    return getattr(tokenizer, "bos_token_id", None)


def check_tokenizer_matches(config: Any, tokenizer: Any, where: str) -> None:
    """Raise a ValueError when `tokenizer` cannot belong to `config`: more tokens than the model's vocabulary, or
    end/pad ids that differ (generation would cut and pad at the wrong token, silently)."""
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"The tokenizer of {where!r} has {len(tokenizer)} tokens but the model's vocabulary has "
                         f"{config.vocab_size}: use the tokenizer the model was trained with.")
    for field, token_id in (("eos_token_id", end_of_sequence_id(tokenizer)), ("pad_token_id", tokenizer.pad_token_id)):
        if token_id is not None and getattr(config, field) is not None and token_id != getattr(config, field):
            raise ValueError(f"The tokenizer of {where!r} has {field}={token_id} but the model's config has "
                             f"{field}={getattr(config, field)}: use the tokenizer the model was trained with, or "
                             f"set config.{field} to match it.")


__all__ = ["check_binary_mask", "check_right_padded", "check_token_batch", "check_token_ids", "check_vocabulary",
           "check_tokenizer_matches", "end_of_sequence_id", "require_end_of_sequence_id", "start_of_sequence_id"]
