"""Reading one hidden layer of the frozen LM without running the blocks above it.

LDLM's encoder reads h = LM_ℓ(x), the states of one hidden layer ℓ of a frozen pretrained LM (the paper's encoder
input, Section 3), and a conditional denoiser reads the same layer for its prompt. Entry ℓ of an LM's
`hidden_states` tuple is the output of its block ℓ − 1 (entry 0 is the embeddings), so the blocks above ℓ need not
run: a forward hook on block ℓ − 1 captures its output and ends the pass. With a 6-layer LM read at layer 3 that
halves the frozen LM's cost, in training (where its states are not cached), in the prompt pass of generation and
in caching the states.

`FrozenLayerReader` ends the pass early only where it has checked, on the first batch it reads, that this gives
the tensor the full pass with `output_hidden_states=True` gives; it falls back to the full pass for entry 0 (the
embeddings), for the last entry (some LMs normalise it), for an LM whose stack of blocks it cannot find, and for
one whose early-exit states differ from the full pass.
"""

from __future__ import annotations

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the hook on the read block: the blocks above it need not run."""


def hidden_states_index(layer: int, num_layers: int) -> int:
    """The non-negative index of `layer` in a `hidden_states` tuple of num_layers + 1 entries."""
    return layer if layer >= 0 else num_layers + 1 + layer


def find_block_stack(lm: nn.Module, num_layers: int) -> nn.ModuleList | None:
    """The LM's list of transformer blocks (BERT's `encoder.layer`, GPT-2's `h`, Llama's `layers`): the first
    `nn.ModuleList` holding exactly `num_layers` modules; None when there is none."""
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    return None


def full_pass_states(lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, index: int) -> torch.Tensor:
    """Entry `index` of `hidden_states` from the LM run to its end."""
    out = lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.hidden_states[index]


def early_exit_states(lm: nn.Module, block: nn.Module, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
    """The output of `block` (one of the LM's blocks), the LM's pass stopped right after it."""
    captured: list[torch.Tensor] = []

    def stop(module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = block.register_forward_hook(stop)
    try:
        lm(input_ids=input_ids, attention_mask=attention_mask)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("The frozen LM's forward pass did not run the block LDLM reads.")
    return captured[0]


class FrozenLayerReader:
    """Reads entry `layer` of the frozen LM's `hidden_states`, running only the blocks below it once that is known
    to give the same tensor (checked against the full pass on the first batch read at that layer)."""

    def __init__(self) -> None:
        self.early_exit: dict[int, bool] = {}  # hidden_states index -> whether stopping early gives the same tensor

    def __call__(self, lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int,
                 num_layers: int) -> torch.Tensor:
        index = hidden_states_index(layer, num_layers)
        blocks = find_block_stack(lm, num_layers) if 1 <= index < num_layers else None
        if blocks is None or self.early_exit.get(index) is False:
            return full_pass_states(lm, input_ids, attention_mask, index)
        if self.early_exit.get(index):
            return early_exit_states(lm, blocks[index - 1], input_ids, attention_mask)
        full = full_pass_states(lm, input_ids, attention_mask, index)
        early = early_exit_states(lm, blocks[index - 1], input_ids, attention_mask)
        self.early_exit[index] = early.shape == full.shape and torch.allclose(
            early.float(), full.float(), rtol=1e-3, atol=1e-3)
        return full
