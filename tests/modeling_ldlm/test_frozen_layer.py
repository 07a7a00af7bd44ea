"""Reading one layer of the frozen LM by stopping its pass there gives the full pass's states, and runs fewer blocks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import AutoModel

from modeling_ldlm.frozen_layer import FrozenLayerReader, full_pass_states, hidden_states_index
from tests.conftest import tiny_lm_config, tiny_model, token_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def deeper_lm(kind: str, layers: int = 4) -> nn.Module:
    config = tiny_lm_config(kind)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    return AutoModel.from_config(config).eval()


@pytest.mark.parametrize("layer", [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4])
def test_every_layer_reads_the_full_pass_states_first_and_after_the_check(lm_kind, layer):
    lm = deeper_lm(lm_kind)
    ids, mask = token_batch(lengths=[10, 7, 4])
    expected = full_pass_states(lm, ids, mask, hidden_states_index(layer, 4))
    reader = FrozenLayerReader()
    with torch.no_grad():
        first, second = (reader(lm, ids, mask, layer, 4) for _ in range(2))
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=1e-6, atol=1e-6)
    index = hidden_states_index(layer, 4)
    assert reader.early_exit.get(index, False) is (1 <= index < 4)


def test_the_blocks_above_the_read_layer_do_not_run_once_checked(lm_kind):
    lm = deeper_lm(lm_kind)
    blocks = next(m for m in lm.modules() if isinstance(m, nn.ModuleList) and len(m) == 4)
    calls = [0] * 4
    for i, block in enumerate(blocks):
        block.register_forward_hook(lambda module, args, out, i=i: calls.__setitem__(i, calls[i] + 1))
    reader = FrozenLayerReader()
    ids, mask = token_batch()
    with torch.no_grad():
        reader(lm, ids, mask, 2, 4)  # the check: the full pass and the early exit
        assert calls == [2, 2, 1, 1]
        reader(lm, ids, mask, 2, 4)
    assert calls == [3, 3, 1, 1]


class PostScaledLM(nn.Module):
    """An LM whose hidden_states are not its blocks' outputs (they are scaled afterwards): early exit would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(97, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        states = [self.embed(input_ids)]
        for block in self.blocks:
            states.append(block(states[-1]))
        return SimpleNamespace(hidden_states=tuple(2.0 * s for s in states))


def test_an_lm_whose_states_are_not_its_blocks_outputs_keeps_the_full_pass():
    torch.manual_seed(0)
    lm, reader = PostScaledLM(), FrozenLayerReader()
    ids, mask = token_batch()
    expected = lm(ids, output_hidden_states=True).hidden_states[1]
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(reader(lm, ids, mask, 1, 3), expected)
    assert reader.early_exit == {1: False}


def test_the_model_reads_the_configured_layer_as_the_full_pass_does(lm_kind):
    model = tiny_model(lm_kind, frozen_lm_layer=1).eval()
    ids, mask = token_batch()
    expected = full_pass_states(model.frozen_lm, ids, mask, 1).float()
    for _ in range(2):
        torch.testing.assert_close(model.frozen_hidden_states(ids, mask), expected, rtol=1e-6, atol=1e-6)
    assert model.frozen_layer_reader.early_exit == {1: True}
