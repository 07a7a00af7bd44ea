"""The CDCD continuous-diffusion arm: it learns, its warp moves, and its samples are seeded per row."""

import torch

from benchmarks.cdcd import SIGMA_MAX, SIGMA_MIN, CDCDBaseline, sigma_of

VOCAB, LENGTH, BOS, EOS, PAD = 11, 8, 1, 2, 0


def tiny(seed: int = 0) -> CDCDBaseline:
    torch.manual_seed(seed)
    return CDCDBaseline(VOCAB, LENGTH, width=32, layers=2, heads=2, bos=BOS, eos=EOS, pad=PAD, embed_dim=8)


def data():
    ids = torch.tensor([[BOS, 3, 4, 5, EOS], [BOS, 6, 7, EOS, PAD]]).repeat(8, 1)
    return ids, (ids != PAD).long()


def test_sigma_range_and_embedding_norm():
    assert float(sigma_of(torch.tensor(0.0))) == SIGMA_MIN
    assert abs(float(sigma_of(torch.tensor(1.0))) - SIGMA_MAX) < 1e-3
    norms = tiny().embeddings().norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, 8 ** 0.5), atol=1e-5)


def test_training_lowers_the_loss_and_warps_time():
    model = tiny()
    ids, mask = data()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    fixed_t = torch.full((len(ids),), 0.3)
    before = model.loss(ids, mask, t=fixed_t).item()
    for _ in range(80):
        loss = model.loss(ids, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.loss(ids, mask, t=fixed_t).item() < 0.5 * before
    assert int(model.warping.num_updates) > 0
    assert not torch.allclose(model.warping.probabilities(), torch.full((64,), 1 / 64))


def test_generation_counts_calls_and_is_seeded_per_row():
    model = tiny().eval()
    both, calls = model.generate(2, steps=5, temperature=1.0, seed=3)
    one, _ = model.generate(1, steps=5, temperature=1.0, seed=3)
    assert calls == 5 and both.shape[0] == 2 and (both[:, 0] == BOS).all()
    assert torch.equal(both[0, : one.shape[1]], one[0])
    again, _ = model.generate(2, steps=5, temperature=1.0, seed=3)
    assert torch.equal(both, again)


def test_temperature_steers_the_trajectory_not_only_the_last_draw():
    """From the same noise, the last prediction itself depends on the temperature of the score interpolation; at
    temperature 1 it is the plain expected embedding's trajectory."""
    model = tiny().eval()
    noise = torch.randn(4, LENGTH, 8, generator=torch.Generator().manual_seed(0))
    plain, cold = model.denoise(noise, 6, 1.0), model.denoise(noise, 6, 0.05)
    assert plain.shape == cold.shape == (4, LENGTH, VOCAB)
    assert not torch.allclose(plain, cold, atol=1e-3)
    assert torch.equal(cold, model.denoise(noise, 6, 0.05))
