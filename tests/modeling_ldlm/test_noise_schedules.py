import math

import torch

from modeling_ldlm.noise_schedules import add_noise, alpha_sigma, tan_d_alpha_sigma


def test_tan_d_matches_definition_and_is_variance_preserving():
    t = torch.linspace(0.01, 0.99, 50)
    alpha, sigma = tan_d_alpha_sigma(t, 3.0)
    expected = 1.0 / torch.sqrt(1 + 9.0 * torch.tan(math.pi * t / 2) ** 2)
    torch.testing.assert_close(alpha, expected)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
    assert (alpha[1:] < alpha[:-1]).all()


def test_endpoints_and_cosine():
    alpha, sigma = alpha_sigma(torch.tensor([0.0, 1.0]), "tan", 3.0)
    torch.testing.assert_close(alpha, torch.tensor([1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(sigma, torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    t = torch.linspace(0, 1, 11)
    alpha, _ = alpha_sigma(t, "cosine")
    torch.testing.assert_close(alpha, torch.cos(math.pi * t / 2), atol=1e-6, rtol=0)


def test_larger_d_is_noisier():
    t = torch.tensor([0.3])
    (alpha5, sigma5), (alpha1, sigma1) = tan_d_alpha_sigma(t, 5.0), tan_d_alpha_sigma(t, 1.0)
    assert alpha5 < alpha1
    assert alpha5 / sigma5 < alpha1 / sigma1  # lower signal-to-noise ratio


def test_add_noise_is_the_forward_process_per_row():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    alpha, sigma = alpha_sigma(torch.tensor([0.1, 0.4, 0.7, 0.9]))
    z = add_noise(x0, eps, alpha, sigma)
    for row in range(4):
        torch.testing.assert_close(z[row], alpha[row] * x0[row] + sigma[row] * eps[row])


def test_schedule_runs_in_fp32():
    alpha, _ = alpha_sigma(torch.tensor([0.5], dtype=torch.bfloat16))
    assert alpha.dtype == torch.float32
