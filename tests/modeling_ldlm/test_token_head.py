"""The opt-in vocabulary head tied to the frozen LM's input embeddings (token_head="frozen_embeddings")."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from modeling_ldlm import LDLMConfigError, LDLMForDiffusionGeneration
from modeling_ldlm.decoders import FrozenEmbeddingHead
from tests.conftest import tiny_config, tiny_model, token_batch


def tied_model(seed: int = 0) -> LDLMForDiffusionGeneration:
    return tiny_model(seed=seed, token_head="frozen_embeddings")


def test_the_default_head_is_a_free_linear_layer():
    assert isinstance(tiny_model().token_decoder.lm_head, nn.Linear)


def test_an_unknown_head_is_refused():
    with pytest.raises(LDLMConfigError, match="token_head"):
        tiny_config(token_head="tied")


def test_logits_are_the_projected_features_against_the_frozen_embeddings():
    model = tied_model().eval()
    head = model.token_decoder.lm_head
    with torch.no_grad():
        head.bias.normal_()  # a non-zero bias, so that the sum below checks it
        features = torch.randn(2, 5, model.config.token_decoder_hidden_size)
        embeddings = model.frozen_lm.get_input_embeddings().weight
        expected = head.proj(features) @ embeddings.T + head.bias
        torch.testing.assert_close(head(features), expected)


def test_only_the_projection_and_bias_train_and_the_embeddings_are_not_stored_twice():
    model = tied_model()
    head_params = dict(model.token_decoder.lm_head.named_parameters())
    assert set(head_params) == {"bias", "proj.weight", "proj.bias"}
    assert [k for k in model.state_dict() if k.startswith("token_decoder.lm_head")] == [
        "token_decoder.lm_head.bias", "token_decoder.lm_head.proj.weight", "token_decoder.lm_head.proj.bias"]
    ids, mask = token_batch()
    model(input_ids=ids, attention_mask=mask).loss.backward()
    assert model.token_decoder.lm_head.proj.weight.grad is not None
    assert model.token_decoder.lm_head.bias.grad is not None
    assert model.frozen_lm.get_input_embeddings().weight.grad is None


def test_save_and_load_keep_the_binding(tmp_path):
    model = tied_model().eval()
    model.save_pretrained(tmp_path)
    loaded = LDLMForDiffusionGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.token_head == "frozen_embeddings"
    ids, mask = token_batch()
    with torch.no_grad():
        z = model.encode(ids, mask)
        torch.testing.assert_close(loaded.decode_logits(z), model.decode_logits(z), rtol=0, atol=0)


def test_a_copy_reads_its_own_frozen_embeddings():
    model = tied_model()
    twin = copy.deepcopy(model)
    assert twin.token_decoder.lm_head._embeddings is twin.frozen_lm.get_input_embeddings()
    assert model.token_decoder.lm_head._embeddings is model.frozen_lm.get_input_embeddings()


def test_replacing_the_input_embeddings_rebinds_the_head():
    model = tied_model()
    replacement = nn.Embedding(model.config.vocab_size, model.config.frozen_lm_hidden_size)
    model.set_input_embeddings(replacement)
    assert model.token_decoder.lm_head._embeddings is replacement


def test_embeddings_of_another_shape_are_refused_with_what_to_do():
    head = FrozenEmbeddingHead(width=8, embedding_dim=32, vocab_size=97)
    with pytest.raises(ValueError, match="token_head='linear'"):
        head.bind(nn.Embedding(97, 16))
    with pytest.raises(RuntimeError, match="before bind"):
        head(torch.zeros(1, 8))
