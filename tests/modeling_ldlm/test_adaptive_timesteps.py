import torch

from modeling_ldlm.adaptive_timesteps import AdaptiveTimestepSampler, bin_probabilities, ema_update, warp


def test_uniform_at_start():
    sampler = AdaptiveTimestepSampler(10)
    torch.testing.assert_close(sampler.probabilities(), torch.full((10,), 0.1))
    u = torch.linspace(0, 1, 11)
    torch.testing.assert_close(warp(u, sampler.probabilities()), u)


def test_concentrates_where_loss_changes_fastest():
    bins = 20
    t = (torch.arange(bins) + 0.5) / bins
    curve = torch.sigmoid((t - 0.325) * 40)  # the loss jumps around t = 0.325
    probs = bin_probabilities(curve)
    assert probs.argmax() == 6  # bin [0.30, 0.35) holds the steepest increase
    samples = warp(torch.rand(20_000, generator=torch.Generator().manual_seed(0)), probs)
    share_near = ((samples > 0.225) & (samples < 0.425)).float().mean()
    assert share_near > 0.8  # uniform sampling would put 20% there


def test_non_monotone_curve_is_made_monotone():
    probs = bin_probabilities(torch.tensor([0.2, 0.5, 0.4, 0.45, 0.6]))
    assert (probs >= 0).all() and probs[2] == 0
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))


def test_ema_update_touches_only_observed_bins():
    ema = torch.ones(4)
    new = ema_update(ema, torch.tensor([0.1, 0.1]), torch.tensor([3.0, 5.0]), decay=0.5)
    torch.testing.assert_close(new, torch.tensor([2.5, 1.0, 1.0, 1.0]))


def test_state_dict_round_trip_and_sampling_is_reproducible():
    sampler = AdaptiveTimestepSampler(8)
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        t = torch.rand(16, generator=g)
        sampler.update(t, (t * 8).floor() ** 2 / 49, decay=0.9)
    other = AdaptiveTimestepSampler(8)
    other.load_state_dict(sampler.state_dict())
    assert int(other.num_updates) == 50
    a = sampler.sample(32, generator=torch.Generator().manual_seed(3))
    b = other.sample(32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert ((a >= 0) & (a <= 1)).all()
