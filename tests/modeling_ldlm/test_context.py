"""Prompts as conditioning (LDLMConfig.context_conditioning): the prefix draw, the context carries nothing of the
continuation, generate(prompt) reads the prompt in the denoiser at the network calls of unconditional generation,
classifier-free guidance is wired as its formula says, padding never changes a row, and bad input is refused."""

import pytest
import torch
from transformers.utils import logging

from modeling_ldlm.context import classifier_free_guidance, draw_context_lengths, prefix_mask
from tests.conftest import tiny_model, token_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def conditional_model(**overrides):
    return tiny_model(context_conditioning=True, **overrides).eval()


def test_prefix_lengths_are_proper_prefixes_and_dropout_drops_them():
    lengths = torch.tensor([1, 2, 5, 16] * 500)
    k = draw_context_lengths(lengths, dropout=0.0, generator=torch.Generator().manual_seed(0))
    assert bool((k[lengths >= 2] >= 1).all()) and bool((k <= (lengths - 1).clamp_min(0)).all())
    assert bool((k[lengths == 1] == 0).all())
    assert set(k[lengths == 16].tolist()) == set(range(1, 16))  # every proper prefix is drawn
    none = draw_context_lengths(lengths, dropout=1.0, generator=torch.Generator().manual_seed(0))
    assert bool((none == 0).all())
    some = draw_context_lengths(lengths[lengths >= 2], dropout=0.25, generator=torch.Generator().manual_seed(1))
    assert 0.2 < float((some == 0).float().mean()) < 0.3
    mask = prefix_mask(torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]), torch.tensor([2, 0]))
    assert mask.tolist() == [[True, True, False, False], [False, False, False, False]]


def test_the_context_is_the_prefix_alone():
    model = conditional_model()
    ids, mask = token_batch(2, 10)
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 7) % 90 + 5  # another continuation after a 4-token prefix
    prefix = prefix_mask(mask, torch.tensor([4, 4]))
    a, b = model.context_states(ids, prefix), model.context_states(changed, prefix)
    assert torch.equal(a, b) and bool((a[:, 4:] == 0).all()) and a[:, :4].abs().sum() > 0
    # the full sequence's states at the prefix positions do see the continuation (a bidirectional LM)
    full = model.normalize_hidden(model.frozen_hidden_states(ids, mask))[:, :4]
    assert not torch.allclose(full, a[:, :4], atol=1e-4)


def test_the_denoiser_reads_the_context_and_the_loss_trains_the_null_token():
    model = conditional_model()
    ids, mask = token_batch(3, 10)
    torch.manual_seed(0)
    t, noise = torch.rand(3), torch.randn(3, model.config.num_latents, model.config.latent_dim)
    kwargs = dict(timesteps=t, noise=noise, self_conditioning=False)
    without = model(ids, mask, context_lengths=torch.zeros(3, dtype=torch.long), **kwargs)
    assert torch.equal(without.loss_diffusion, model(ids, mask, **kwargs).loss_diffusion)  # eval: no context
    with_prefix = model(ids, mask, context_lengths=torch.tensor([3, 5, 1]), **kwargs)
    assert not torch.allclose(with_prefix.predicted_latents, without.predicted_latents)
    model.train()
    model(ids, mask, **kwargs).loss.backward()  # training draws the prefixes; the null token is in every row
    assert model.denoiser.null_context.grad.abs().sum() > 0


def test_generate_with_a_prompt_costs_the_unconditional_network_calls_and_keeps_the_prompt():
    model = conditional_model()
    assert model.generation_config.guidance_scale == 0.0  # no gradient push on a conditional checkpoint
    ids, mask = token_batch(2, 5, lengths=[5, 3])
    steps = 4
    out = model.generate(ids, mask, num_inference_steps=steps, max_new_tokens=6, return_dict_in_generate=True,
                         generator=torch.Generator().manual_seed(0))
    assert out.num_network_calls == steps
    assert torch.equal(out.sequences[:, :5], ids)
    other = model.generate(ids[:, [0, 4, 3, 2, 1]], mask, num_inference_steps=steps, max_new_tokens=6,
                           return_dict_in_generate=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out.latents, other.latents)  # the prompt steers the denoiser


def test_a_row_does_not_depend_on_the_padding_of_its_batch():
    model = conditional_model()
    ids, mask = token_batch(3, 7, lengths=[7, 2, 4])
    seeds = [11, 12, 13]
    batch = model.generate(ids, mask, num_inference_steps=3, max_new_tokens=5, return_dict_in_generate=True,
                           generator=[torch.Generator().manual_seed(s) for s in seeds])
    for row, seed in enumerate(seeds):
        n = int(mask[row].sum())
        alone = model.generate(ids[row:row + 1, :n], num_inference_steps=3, max_new_tokens=5,
                               return_dict_in_generate=True, generator=[torch.Generator().manual_seed(seed)])
        torch.testing.assert_close(alone.latents[0], batch.latents[row], rtol=1e-4, atol=1e-5)
        left = torch.cat([torch.zeros(1, 7 - n, dtype=torch.long), ids[row:row + 1, :n]], dim=1)
        left_mask = torch.cat([torch.zeros(1, 7 - n, dtype=torch.long), torch.ones(1, n, dtype=torch.long)], dim=1)
        padded = model.generate(left, left_mask, num_inference_steps=3, max_new_tokens=5,
                                return_dict_in_generate=True, generator=[torch.Generator().manual_seed(seed)])
        torch.testing.assert_close(padded.latents[0], batch.latents[row], rtol=1e-4, atol=1e-5)


def test_classifier_free_guidance_mixes_the_two_predictions():
    model = conditional_model()
    ids, mask = token_batch(2, 5)
    common = dict(num_inference_steps=3, max_new_tokens=4, return_dict_in_generate=True, self_conditioning=False)

    def gen(**kwargs):
        return model.generate(generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **common, **kwargs)

    # w = 0 is the unconditional prediction: the latents of unconditional generation from the same noise
    torch.testing.assert_close(gen(input_ids=ids, attention_mask=mask, context_guidance_scale=0.0).latents,
                               gen(num_return_sequences=2).latents, rtol=1e-4, atol=1e-5)
    # w = 1 through the two-branch call equals the one-branch conditional call
    conditional = gen(input_ids=ids, attention_mask=mask)
    assert conditional.num_network_calls == 3
    x_c, x_u = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.allclose(classifier_free_guidance(x_c, x_u, 1.0), x_c)
    assert torch.allclose(classifier_free_guidance(x_c, x_u, 3.0), x_u + 3 * (x_c - x_u))
    guided = gen(input_ids=ids, attention_mask=mask, context_guidance_scale=3.0)
    assert not torch.allclose(guided.latents, conditional.latents)


def test_an_empty_prompt_on_a_conditional_checkpoint_samples_unconditionally():
    model = conditional_model()
    empty = model.generate(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long),
                           num_inference_steps=3, max_new_tokens=4, return_dict_in_generate=True,
                           generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    free = model.generate(num_return_sequences=2, num_inference_steps=3, max_new_tokens=4,
                          return_dict_in_generate=True, generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    torch.testing.assert_close(empty.latents, free.latents)


def test_bad_context_input_is_refused():
    unconditional = tiny_model().eval()
    ids, mask = token_batch(2, 6)
    with pytest.raises(ValueError, match="needs a checkpoint trained with context conditioning"):
        unconditional.generate(ids, mask, context_guidance_scale=2.0)
    with pytest.raises(ValueError, match="context_lengths needs a conditional model"):
        unconditional(ids, mask, context_lengths=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="built without context conditioning"):
        unconditional.denoise(torch.zeros(2, 4, 8), torch.ones(2), context=torch.zeros(2, 3, 32))
    no_dropout = conditional_model(context_dropout=0.0)
    with pytest.raises(ValueError, match="context dropout"):
        no_dropout.generate(ids, mask, context_guidance_scale=2.0)
    model = conditional_model()
    with pytest.raises(ValueError, match="cannot be the whole row"):
        model(ids, mask, context_lengths=torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="context must have shape"):
        model.denoise(torch.zeros(2, 4, 8), torch.ones(2), context=torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="fills the whole canvas"):
        model.generate(torch.ones(1, 16, dtype=torch.long) * 5)
    with pytest.raises(ValueError, match="context_guidance_scale must be a number >= 0"):
        model.generate(ids, mask, context_guidance_scale=-1.0)


def test_a_prompt_without_guidance_on_an_unconditional_checkpoint_is_flagged(caplog):
    model = tiny_model().eval()
    ids, mask = token_batch(1, 5)
    logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            out = model.generate(ids, mask, guidance_scale=0.0, num_inference_steps=2, max_new_tokens=3)
    finally:
        logging.disable_propagation()
    assert torch.equal(out[:, :5], ids) and "does not steer the completion" in caplog.text
