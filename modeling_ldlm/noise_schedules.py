"""The noise schedule of the latents and the forward (noising) process, as pure functions of tensors (fp32).

Variance-preserving forward process of the latents:

    z_t = alpha_t * z0 + sigma_t * eps,   alpha_t^2 + sigma_t^2 = 1,   t in [0, 1]

tan-d schedule: alpha_t = 1 / sqrt(1 + d^2 tan^2(pi t / 2)), written here in the form
alpha_t = cos(pi t/2) / sqrt(cos^2(pi t/2) + d^2 sin^2(pi t/2)), which is exact at t = 1 (alpha = 0) with no
division by zero. d = 1 is the cosine schedule; larger d puts more of [0, 1] at high noise (the log signal-to-noise
ratio is log(alpha^2 / sigma^2) = -2 log(d tan(pi t / 2))).
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


def add_noise(z0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """z_t = alpha * z0 + sigma * eps, with alpha, sigma of shape (B,) broadcast over the latent dims."""
    shape = (-1,) + (1,) * (z0.dim() - 1)
    return alpha.view(shape).to(z0.dtype) * z0 + sigma.view(shape).to(z0.dtype) * noise


__all__ = ["add_noise", "alpha_sigma", "cosine_alpha_sigma", "tan_d_alpha_sigma"]
