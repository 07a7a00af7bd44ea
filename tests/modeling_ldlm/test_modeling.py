import pytest
import torch

from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import VOCAB, tiny_model, token_batch


def deterministic_inputs(model, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    return dict(
        timesteps=torch.rand(batch, generator=g),
        noise=torch.randn(batch, cfg.num_latents, cfg.latent_dim, generator=g),
        decoder_noise=torch.randn(batch, cfg.num_latents, cfg.latent_dim, generator=g),
    )


def test_shapes_and_finite_losses(lm_kind):
    model = tiny_model(lm_kind)
    ids, mask = token_batch(3, 10, lengths=[10, 7, 4])
    out = model(ids, mask)
    cfg = model.config
    assert out.latents.shape == (3, cfg.num_latents, cfg.latent_dim)
    assert out.predicted_latents.shape == out.latents.shape
    assert out.loss_diffusion_per_sample.shape == (3,) and out.timesteps.shape == (3,)
    for name in ("loss", "loss_diffusion", "loss_hidden", "loss_token"):
        value = getattr(out, name)
        assert value.dim() == 0 and torch.isfinite(value), name
    expected = out.loss_diffusion + out.loss_hidden + out.loss_token
    torch.testing.assert_close(out.loss, expected)
    assert model.decode_logits(out.latents).shape == (3, cfg.max_sequence_length, VOCAB)


def test_latents_have_fixed_scale():
    model = tiny_model()
    ids, mask = token_batch(4, 12)
    z0 = model.encode(ids, mask)
    torch.testing.assert_close(z0.mean(-1), torch.zeros(4, model.config.num_latents), atol=1e-5, rtol=0)
    torch.testing.assert_close(z0.var(-1, unbiased=False), torch.ones(4, model.config.num_latents), atol=1e-3, rtol=0)


def test_gradients_reach_every_trainable_parameter_and_not_the_frozen_lm(lm_kind):
    model = tiny_model(lm_kind)
    model.train()
    ids, mask = token_batch(3, 10, lengths=[10, 8, 5])
    model(ids, mask, self_conditioning=True, **deterministic_inputs(model)).loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert missing == []
    assert all(not p.requires_grad and p.grad is None for p in model.frozen_lm.parameters())
    assert not model.frozen_lm.training  # dropout of the frozen LM stays off


def test_encoder_grad_scale_zero_blocks_the_diffusion_gradient_into_the_encoder():
    model = tiny_model()
    ids, mask = token_batch()
    inputs = deterministic_inputs(model)

    def diffusion_grads(scale):
        model.zero_grad()
        model(ids, mask, encoder_grad_scale=scale, self_conditioning=False, **inputs).loss_diffusion.backward()
        enc = sum(p.grad.abs().sum() for p in model.encoder.parameters() if p.grad is not None)
        den = sum(p.grad.abs().sum() for p in model.denoiser.parameters() if p.grad is not None)
        return float(enc), float(den)

    enc0, den0 = diffusion_grads(0.0)
    enc_half, den_half = diffusion_grads(0.5)
    enc1, den1 = diffusion_grads(1.0)
    assert enc0 == 0.0 and den0 > 0
    assert den_half == pytest.approx(den0, rel=1e-5) and den1 == pytest.approx(den0, rel=1e-5)
    assert enc1 > 0 and enc_half == pytest.approx(0.5 * enc1, rel=1e-4)


def test_token_loss_stop_gradient_switch():
    def latent_decoder_grad(**overrides):
        model = tiny_model(**overrides)
        ids, mask = token_batch()
        model(ids, mask, self_conditioning=False, **deterministic_inputs(model)).loss_token.backward()
        return sum(float(p.grad.abs().sum()) for p in model.latent_decoder.parameters() if p.grad is not None)

    assert latent_decoder_grad() == 0.0
    assert latent_decoder_grad(token_loss_stop_gradient=False) > 0


def test_cross_entropy_ablation_trains_the_encoder_through_the_token_loss():
    model = tiny_model(decoder_loss="ce")
    ids, mask = token_batch()
    out = model(ids, mask, self_conditioning=False, **deterministic_inputs(model))
    torch.testing.assert_close(out.loss, out.loss_diffusion + out.loss_token)
    assert not out.loss_hidden.requires_grad
    out.loss_token.backward()
    assert sum(float(p.grad.abs().sum()) for p in model.encoder.parameters() if p.grad is not None) > 0


def test_decoder_noise_only_in_training_and_switchable():
    ids, mask = token_batch()
    model = tiny_model()
    inputs = deterministic_inputs(model)
    model.train()
    noisy = model(ids, mask, self_conditioning=False, **inputs).loss_hidden
    model.eval()
    clean = model(ids, mask, self_conditioning=False, **inputs).loss_hidden
    assert not torch.allclose(noisy, clean)
    off = tiny_model(decoder_noise_std=0.0).train()
    a = off(ids, mask, self_conditioning=False, **inputs).loss_hidden
    off.eval()
    b = off(ids, mask, self_conditioning=False, **inputs).loss_hidden
    torch.testing.assert_close(a, b)


def test_batch_equals_rows_and_padding_is_invisible(lm_kind):
    model = tiny_model(lm_kind).eval()
    ids, mask = token_batch(3, 10, lengths=[10, 6, 3])
    inputs = deterministic_inputs(model)
    z_batch = model.encode(ids, mask)
    batch_out = model(ids, mask, self_conditioning=False, **inputs)
    for row in range(3):
        n = int(mask[row].sum())
        z_row = model.encode(ids[row:row + 1, :n])
        torch.testing.assert_close(z_batch[row:row + 1], z_row, atol=1e-5, rtol=1e-4)
        single = model(ids[row:row + 1, :n], self_conditioning=False,
                       **{k: v[row:row + 1] for k, v in inputs.items()})
        torch.testing.assert_close(batch_out.loss_diffusion_per_sample[row:row + 1],
                                   single.loss_diffusion_per_sample, atol=1e-5, rtol=1e-4)
    # Extra right padding changes nothing.
    padded_ids = torch.cat([ids, torch.zeros(3, 5, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.long)], 1)
    padded = model(padded_ids, padded_mask, self_conditioning=False, **inputs)
    for name in ("loss", "loss_diffusion", "loss_hidden", "loss_token"):
        torch.testing.assert_close(getattr(padded, name), getattr(batch_out, name), atol=1e-5, rtol=1e-4)


def test_injected_noise_makes_forward_deterministic():
    model = tiny_model().eval()
    ids, mask = token_batch()
    inputs = deterministic_inputs(model)
    a = model(ids, mask, self_conditioning=True, **inputs)
    b = model(ids, mask, self_conditioning=True, **inputs)
    torch.testing.assert_close(a.loss, b.loss)


def test_save_and_load_round_trip(tmp_path, lm_kind):
    model = tiny_model(lm_kind).eval()
    ids, mask = token_batch()
    model.fit_hidden_statistics([(ids, mask)])
    model.timestep_sampler.update(torch.rand(8), torch.rand(8))
    model.save_pretrained(tmp_path)
    loaded = LDLMForDiffusionGeneration.from_pretrained(tmp_path).eval()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
    inputs = deterministic_inputs(model)
    a = model(ids, mask, self_conditioning=True, **inputs)
    b = loaded(ids, mask, self_conditioning=True, **inputs)
    torch.testing.assert_close(a.loss, b.loss, atol=0, rtol=0)
    assert bool(loaded.hidden_stats_fitted)
    assert not any(p.requires_grad for p in loaded.frozen_lm.parameters())
    assert all(p.requires_grad for n, p in loaded.named_parameters() if not n.startswith("frozen_lm."))


def test_fit_hidden_statistics_normalises():
    model = tiny_model()
    ids, mask = token_batch(8, 12, lengths=[12, 9, 5, 12, 3, 7, 11, 4])
    model.fit_hidden_statistics([(ids, mask)])
    hidden = model.normalize_hidden(model.frozen_hidden_states(ids, mask))[mask.bool()]
    torch.testing.assert_close(hidden.mean(0), torch.zeros(32), atol=1e-4, rtol=0)
    torch.testing.assert_close(hidden.std(0, unbiased=False), torch.ones(32), atol=1e-3, rtol=0)


@pytest.mark.parametrize("make, error, message", [
    (lambda ids, mask: dict(input_ids=ids.float()), TypeError, "integer"),
    (lambda ids, mask: dict(input_ids=ids.tolist()), TypeError, "LongTensor"),
    (lambda ids, mask: dict(input_ids=ids[0]), ValueError, "shape"),
    (lambda ids, mask: dict(input_ids=torch.zeros(2, 40, dtype=torch.long)), ValueError, "max_sequence_length"),
    (lambda ids, mask: dict(input_ids=ids + VOCAB), ValueError, "vocabulary"),
    (lambda ids, mask: dict(input_ids=ids, attention_mask=mask[:, :5]), ValueError, "shape of input_ids"),
    (lambda ids, mask: dict(input_ids=ids, attention_mask=torch.zeros_like(mask)), ValueError, "all-zero"),
    (lambda ids, mask: dict(input_ids=ids, attention_mask=mask.flip(1)), ValueError, "right padding"),
    (lambda ids, mask: dict(input_ids=ids, attention_mask=mask, encoder_grad_scale=2.0), ValueError, "[0, 1]"),
    (lambda ids, mask: dict(input_ids=ids, timesteps=torch.tensor([2.0, 0.1, 0.1])), ValueError, "timesteps"),
    (lambda ids, mask: dict(input_ids=ids, noise=torch.zeros(1, 2)), ValueError, "noise"),
])
def test_bad_forward_inputs(make, error, message):
    model = tiny_model()
    ids, mask = token_batch(3, 10, lengths=[10, 6, 3])
    with pytest.raises(error, match=message):
        model(**make(ids, mask))
