"""The opt-in locality prior of the encoder's and latent decoder's cross-attention (LDLMConfig.latent_locality)."""

import pytest
import torch

from modeling_ldlm import LDLMConfig, LDLMForDiffusionGeneration
from modeling_ldlm.layers import locality_bias
from tests.conftest import tiny_config, tiny_model, token_batch


def test_locality_bias_is_zero_at_each_latent_centre_and_minus_half_one_width_away():
    bias = locality_bias(num_latents=4, length=16, positions=16, width=1.0)  # stride 4, centres 2, 6, 10, 14
    assert bias.shape == (4, 16)
    assert bias.argmax(1).tolist() == [2, 6, 10, 14] and torch.all(bias.max(1).values == 0)
    assert bias[0, 6] == pytest.approx(-0.5) and bias[3, 10] == pytest.approx(-0.5)  # one width = 4 positions
    assert torch.allclose(locality_bias(4, 16, 16, 2.0), bias / 4)  # twice the width, a quarter of the penalty


def test_default_config_keeps_the_paper_architecture():
    assert LDLMConfig().latent_locality == 0.0
    model = tiny_model()
    ids, mask = token_batch(lengths=[10, 7, 4])
    encoder_mask = model.encoder.cross_attention_mask(mask, 10, torch.float32)
    assert encoder_mask.dtype == torch.bool  # the plain key padding mask: no bias at all


def test_a_negative_locality_is_refused():
    with pytest.raises(ValueError, match="latent_locality=-1.0 is invalid: Value must be greater or equal to 0"):
        tiny_config(latent_locality=-1.0)


def test_locality_prior_ties_latents_to_their_stretch_and_keeps_padding_out(tmp_path):
    model = tiny_model(latent_locality=0.25, encoder_num_layers=1).eval()  # 0.25: a window of about one position
    ids, mask = token_batch(batch=2, length=16, lengths=[16, 9])
    hidden = torch.randn(2, 16, 32)
    with torch.no_grad():
        z = model.encode(ids, mask, hidden_states=hidden)
        padded = hidden.clone()
        padded[1, 9:] = torch.randn(7, 32) * 10  # what padding holds must not matter
        assert torch.allclose(model.encode(ids, mask, hidden_states=padded)[1], z[1], atol=1e-5)
        # in the cross-attention, a change at position 15 reaches latent 3 (centred on 14) but not latent 0 (on 2)
        far = hidden.clone()
        far[0, 15] += 10
        encoder, positions = model.encoder, model.encoder.position_embedding(torch.arange(16))[None]
        bias = encoder.cross_attention_mask(mask[:1], 16, torch.float32)

        def cross_attention(states):
            context = encoder.input_proj(model._normalised_hidden(ids[:1], mask[:1], states[:1])) + positions
            return encoder.blocks[0].cross_attn(encoder.latent_queries[None], context, bias)[0]  # (N, W)

        change = (cross_attention(far) - cross_attention(hidden)).norm(dim=-1)
        assert change[0] < 1e-6 < 1e-2 < change[3]
    # ... and the setting survives save and load, with the same outputs
    model.save_pretrained(tmp_path)
    again = LDLMForDiffusionGeneration.from_pretrained(tmp_path).eval()
    assert again.config.latent_locality == 0.25
    with torch.no_grad():
        assert torch.allclose(again.encode(ids, mask, hidden_states=hidden), z, atol=1e-6)
        assert torch.allclose(again.decode_hidden(z), model.decode_hidden(z), atol=1e-6)
    out = again.generate(num_return_sequences=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape[0] == 2
