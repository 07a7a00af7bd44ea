"""Noise schedules and parameterisation conversions, as pure functions of tensors (fp32 throughout).

Variance-preserving forward process of the latents:

    z_t = alpha_t * z0 + sigma_t * eps,   alpha_t^2 + sigma_t^2 = 1,   t in [0, 1]

tan-d schedule: alpha_t = 1 / sqrt(1 + d^2 tan^2(pi t / 2)), written here in the form
alpha_t = cos(pi t/2) / sqrt(cos^2(pi t/2) + d^2 sin^2(pi t/2)), which is exact at t = 1 (alpha = 0) with no
division by zero. d = 1 is the cosine schedule; larger d puts more of [0, 1] at high noise. The log signal-to-noise
ratio is log(alpha^2 / sigma^2) = -2 log(d tan(pi t / 2)).
"""

from __future__ import annotations

import math

import torch


def tan_d_alpha_sigma(t: torch.Tensor, d: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) of the tan-d VP schedule, computed in fp32."""
    t = t.float()
    cos, sin = torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)
    norm = torch.sqrt(cos**2 + (d * sin) ** 2)
    return cos / norm, d * sin / norm


def cosine_alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) of the cosine schedule (tan-d with d = 1)."""
    return tan_d_alpha_sigma(t, 1.0)


def alpha_sigma(t: torch.Tensor, schedule: str = "tan", d: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on the schedule name used in `LDLMConfig.noise_schedule`."""
    if schedule == "tan":
        return tan_d_alpha_sigma(t, d)
    if schedule == "cosine":
        return cosine_alpha_sigma(t)
    raise ValueError(f"Unknown noise schedule {schedule!r}; choose 'tan' or 'cosine'.")


def log_snr(t: torch.Tensor, schedule: str = "tan", d: float = 3.0) -> torch.Tensor:
    """log(alpha_t^2 / sigma_t^2); +inf at t = 0 and -inf at t = 1."""
    alpha, sigma = alpha_sigma(t, schedule, d)
    return 2.0 * (torch.log(alpha) - torch.log(sigma))


def add_noise(z0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """z_t = alpha * z0 + sigma * eps, with alpha, sigma of shape (B,) broadcast over the latent dims."""
    shape = (-1,) + (1,) * (z0.dim() - 1)
    return alpha.view(shape).to(z0.dtype) * z0 + sigma.view(shape).to(z0.dtype) * noise


def eps_from_x0(z_t: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """eps = (z_t - alpha x0) / sigma (sigma > 0)."""
    shape = (-1,) + (1,) * (z_t.dim() - 1)
    return (z_t - alpha.view(shape) * x0) / sigma.view(shape)


def x0_from_eps(z_t: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0 = (z_t - sigma eps) / alpha (alpha > 0)."""
    shape = (-1,) + (1,) * (z_t.dim() - 1)
    return (z_t - sigma.view(shape) * eps) / alpha.view(shape)


def score_from_x0(z_t: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score of the noisy marginal, grad log p(z_t) = -(z_t - alpha x0) / sigma^2."""
    shape = (-1,) + (1,) * (z_t.dim() - 1)
    return -(z_t - alpha.view(shape) * x0) / sigma.view(shape) ** 2


def velocity_from_x0(z_t: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """v = alpha eps - sigma x0 (the v-parameterisation)."""
    shape = (-1,) + (1,) * (z_t.dim() - 1)
    eps = eps_from_x0(z_t, x0, alpha, sigma)
    return alpha.view(shape) * eps - sigma.view(shape) * x0


__all__ = [
    "add_noise",
    "alpha_sigma",
    "cosine_alpha_sigma",
    "eps_from_x0",
    "log_snr",
    "score_from_x0",
    "tan_d_alpha_sigma",
    "velocity_from_x0",
    "x0_from_eps",
]
