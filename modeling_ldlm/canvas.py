"""The canvas of one `generate()` call: which of the L token positions are fixed, where the completion is read,
and how the output is read out of the decoded tokens.

LDLM decodes a whole canvas of L = max_sequence_length positions at once. Generation has three input modes, and
each only decides what the canvas holds:

- unconditional: nothing is fixed; the output is the first `width` positions;
- a prompt (B, P), left or right padded: its real tokens are fixed at positions 0..len-1 (a trailing EOS/[SEP] that
  the tokenizer appends is dropped first: training sequences continue past it), the completion is read from the
  positions right after them, and the caller's prompt is returned unchanged before it;
- infilling: `fixed_tokens` (B, T) are fixed where `fixed_mask` is True, and the output is the first T positions.

Reading out: fixed positions take their fixed tokens, then each row is kept up to and including its first EOS at
or after `search_from` (infilling: the last fixed token, so a fixed EOS-like token does not end the text), padded
after it, and the batch is cut to its longest row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .token_ids import check_binary_mask, check_token_ids, check_vocabulary


@dataclass
class Canvas:
    """What one generation call fixes on the canvas and reads from it (all tensors on the model's device)."""

    start: torch.Tensor  # (B,) canvas position where the completion starts
    width: int  # completion positions read after `start`
    search_from: torch.Tensor  # (B,) first completion index at which an EOS ends the row
    eos_ids: torch.Tensor  # (E,) ids that end a row (empty: rows are never cut)
    pad_id: int
    fixed: torch.Tensor | None = None  # (B, L) True where the canvas token is given; None when nothing is
    fixed_ids: torch.Tensor | None = None  # (B, L) the given tokens (pad elsewhere)
    prompt: torch.Tensor | None = None  # (B, P) the caller's prompt ids, returned before the completion

    @property
    def batch_size(self) -> int:
        return int(self.start.shape[0])

    @property
    def read_width(self) -> int:
        """Canvas positions the output needs (the decoders' vocabulary head runs only there)."""
        return int((self.start + self.width).max())

    @property
    def has_fixed_tokens(self) -> bool:
        return self.fixed is not None and bool(self.fixed.any())

    def read_out(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, >= read_width) canvas ids -> (B, C) completion ids, cut at EOS and padded."""
        completion, _ = self._completion(tokens)
        return cut_at_eos(completion, self.eos_ids, self.pad_id, self.search_from)

    def ended_within(self, tokens: torch.Tensor, upto: int) -> torch.Tensor:
        """(B,) True where a row's completion ends (its first EOS, by `read_out`'s rule) at a canvas position below
        `upto`: the row's later positions are never read, so they need not be decoded. `tokens` (B, >= read_width)
        need only be right below `upto`."""
        completion, offsets = self._completion(tokens)
        index = torch.arange(self.width, device=tokens.device)[None]  # (1, C)
        is_eos = torch.isin(completion, self.eos_ids) & (index >= self.search_from[:, None]) & (offsets < upto)
        return is_eos.any(1)

    def _completion(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canvas ids with the fixed tokens in place -> the completion's ids (B, C) and their canvas positions."""
        width = self.read_width
        tokens = tokens[:, :width]
        if self.fixed is not None:
            tokens = torch.where(self.fixed[:, :width], self.fixed_ids[:, :width], tokens)
        offsets = self.start[:, None] + torch.arange(self.width, device=tokens.device)[None]  # (B, C)
        return tokens.gather(1, offsets), offsets

    def sequences(self, completion: torch.Tensor) -> torch.Tensor:
        """What `generate` returns: the prompt unchanged followed by the completion, or the completion alone."""
        if self.prompt is None:
            return completion
        return torch.cat([self.prompt, completion.to(self.prompt.dtype)], dim=1)


def cut_at_eos(tokens: torch.Tensor, eos_ids: torch.Tensor, pad_id: int, search_from: torch.Tensor) -> torch.Tensor:
    """Keep each row up to and including its first EOS at or after `search_from` (B,), pad after it, and drop the
    columns that are padding in every row (at least one column stays): (B, M) -> (B, C)."""
    b, m = tokens.shape
    pos = torch.arange(m, device=tokens.device)[None]  # (1, M)
    is_eos = torch.isin(tokens, eos_ids) & (pos >= search_from[:, None])
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(search_from, m))  # (B,)
    out = tokens.masked_fill(pos > first[:, None], pad_id)
    width = int((first + 1).clamp_max(m).max()) if b else 0
    return out[:, :max(width, 1)]


def completion_width(max_new_tokens: int | None, max_length: int | None, longest: int, input_width: int,
                     canvas: int) -> int:
    """How many canvas positions after the prompt to read; ValueError when the request cannot fit."""
    room = canvas - longest
    if room <= 0:
        raise ValueError(f"The prompt has {longest} tokens and fills the whole canvas of max_sequence_length="
                         f"{canvas}: shorten it to at most {canvas - 1} tokens.")
    if max_new_tokens is not None:
        if max_new_tokens > room:
            raise ValueError(f"A prompt of {longest} tokens plus max_new_tokens={max_new_tokens} does not fit the "
                             f"canvas of max_sequence_length={canvas}: use max_new_tokens <= {room} or a shorter "
                             "prompt.")
        return max_new_tokens
    if max_length is not None:
        if max_length - input_width <= 0:
            raise ValueError(f"max_length={max_length} leaves no room after a prompt of {input_width} tokens: raise "
                             "it or pass max_new_tokens.")
        return min(max_length - input_width, room)
    return room


def unconditional_canvas(batch: int, width: int, eos_ids: torch.Tensor, pad_id: int,
                         device: torch.device) -> Canvas:
    zeros = torch.zeros(batch, dtype=torch.long, device=device)
    return Canvas(start=zeros, width=width, search_from=zeros, eos_ids=eos_ids, pad_id=pad_id)


def prompt_canvas(input_ids: Any, attention_mask: Any, copies: int, max_new_tokens: int | None,
                  max_length: int | None, canvas: int, vocab_size: int, eos_ids: torch.Tensor, pad_id: int,
                  device: torch.device) -> Canvas:
    """The prompt's real tokens (in order, padding removed, a trailing EOS dropped) fixed at positions 0..len-1."""
    ids = check_token_ids("input_ids", input_ids).to(device)
    mask = check_binary_mask("attention_mask", attention_mask, ids.shape).to(device)
    check_vocabulary("input_ids", ids, vocab_size, where=mask)
    prompt, mask = ids.repeat_interleave(copies, 0), mask.repeat_interleave(copies, 0)  # (B, P)
    order = torch.sort((~mask).long(), dim=1, stable=True).indices  # real tokens first, in order
    compact = prompt.gather(1, order)
    lengths = mask.sum(1)  # (B,)
    last = compact.gather(1, (lengths - 1).clamp_min(0)[:, None])[:, 0]
    lengths = lengths - ((lengths > 0) & torch.isin(last, eos_ids)).long()  # drop a trailing EOS/[SEP]
    longest = int(lengths.max())
    if longest > canvas:
        raise ValueError(f"The prompt has {longest} tokens but the model handles at most max_sequence_length="
                         f"{canvas}; truncate it (tokenizer(..., truncation=True, max_length={canvas - 1})).")
    width = completion_width(max_new_tokens, max_length, longest, prompt.shape[1], canvas)
    compact = compact[:, :canvas]
    fixed_ids = F.pad(compact, (0, canvas - compact.shape[1]), value=pad_id)  # (B, L)
    fixed = torch.arange(canvas, device=device)[None] < lengths[:, None]  # (B, L)
    return Canvas(start=lengths, width=width, search_from=torch.zeros_like(lengths), eos_ids=eos_ids,
                  pad_id=pad_id, fixed=fixed, fixed_ids=fixed_ids, prompt=prompt)


def infilling_canvas(fixed_tokens: Any, fixed_mask: Any, copies: int, canvas: int, vocab_size: int,
                     eos_ids: torch.Tensor, pad_id: int, device: torch.device) -> Canvas:
    """`fixed_tokens` kept where `fixed_mask` is True; the output is the first T canvas positions."""
    if fixed_mask is None:
        raise ValueError("Infilling needs fixed_mask (True where fixed_tokens must be kept).")
    tokens = check_token_ids("fixed_tokens", fixed_tokens).to(device)
    mask = check_binary_mask("fixed_mask", fixed_mask, tokens.shape).to(device)
    if tokens.shape[1] > canvas:
        raise ValueError(f"fixed_tokens has length {tokens.shape[1]} but the canvas holds max_sequence_length="
                         f"{canvas} tokens.")
    check_vocabulary("fixed_tokens", tokens, vocab_size, where=mask, at=" at fixed positions")
    tokens, mask = tokens.repeat_interleave(copies, 0), mask.repeat_interleave(copies, 0)
    width = tokens.shape[1]
    fixed = F.pad(mask, (0, canvas - width), value=False)
    fixed_ids = F.pad(tokens.masked_fill(~mask, pad_id), (0, canvas - width), value=pad_id)
    last_fixed = torch.where(mask.any(1), width - 1 - mask.flip(1).float().argmax(1), -1)
    start = torch.zeros(tokens.shape[0], dtype=torch.long, device=device)
    return Canvas(start=start, width=width, search_from=last_fixed.clamp_min(0), eos_ids=eos_ids, pad_id=pad_id,
                  fixed=fixed, fixed_ids=fixed_ids)


def build_canvas(input_ids: Any, attention_mask: Any, fixed_tokens: Any, fixed_mask: Any, *, copies: int,
                 max_new_tokens: int | None, max_length: int | None, canvas: int, vocab_size: int,
                 eos_ids: torch.Tensor, pad_id: int, device: torch.device) -> Canvas:
    """The canvas of a `generate()` call from whichever inputs it got (`copies` = num_return_sequences)."""
    if input_ids is not None and fixed_tokens is not None:
        raise ValueError("Pass either input_ids (a prompt) or fixed_tokens/fixed_mask (infilling), not both.")
    if input_ids is not None:
        return prompt_canvas(input_ids, attention_mask, copies, max_new_tokens, max_length, canvas, vocab_size,
                             eos_ids, pad_id, device)
    if fixed_tokens is not None:
        return infilling_canvas(fixed_tokens, fixed_mask, copies, canvas, vocab_size, eos_ids, pad_id, device)
    if attention_mask is not None:
        raise ValueError("attention_mask was given without input_ids.")
    width = completion_width(max_new_tokens, max_length, 0, 0, canvas)
    return unconditional_canvas(copies, width, eos_ids, pad_id, device)


__all__ = ["Canvas", "build_canvas", "completion_width", "cut_at_eos"]
