"""Long benchmark sequences from a corpus of one sentence per line: consecutive sentences packed into windows.

LM1B-style evaluation uses 128-token sequences. The vendored corpus has one sentence per line, in corpus order, so a
window is built from consecutive whole sentences: as many as fit in `max_tokens` (the tokenizer's special tokens
included), a sentence is never split, and a sentence too long for a window on its own is left out. Each window is
then one line of running text that ends where its last sentence ends, so every arm's end-of-sequence token marks
the end of the window, not a document separator inside it, and the read-out that cuts at the first end-of-sequence
token reads the whole window.
"""

from __future__ import annotations

from collections.abc import Sequence


def pack_consecutive(sentences: Sequence[str], lengths: Sequence[int], max_tokens: int) -> list[str]:
    """Greedily join consecutive `sentences` (each `lengths[i]` tokens, without special tokens) into windows of at
    most `max_tokens` tokens of text. Returns one space-joined line per window, in corpus order."""
    if len(sentences) != len(lengths):
        raise ValueError(f"{len(sentences)} sentences but {len(lengths)} lengths")
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    windows, current, used = [], [], 0
    for sentence, length in zip(sentences, lengths):
        too_long = length > max_tokens  # would be truncated: left out, and the window before it ends here
        if current and (too_long or used + length > max_tokens):
            windows.append(current)
            current, used = [], 0
        if not too_long:
            current.append(sentence)
            used += length
    if current:
        windows.append(current)
    return [" ".join(window) for window in windows]
