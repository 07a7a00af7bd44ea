"""Progressive distillation of LDLM's latent denoiser: the objective, as pure functions.

Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models" (ICLR 2022). A student learns to take
one deterministic DDIM step where its teacher takes two; the student then teaches the next student, halving the
number of steps each stage (e.g. 16 -> 8 -> 4 -> 2 -> 1).

For variance-preserving latents z_t = alpha_t x0 + sigma_t eps and an x0-predicting network, a DDIM step from t to s
(s < t) is

    z_s = (sigma_s / sigma_t) z_t + (alpha_s - alpha_t sigma_s / sigma_t) x0_hat(z_t, t).

Teacher, two steps through the midpoint m = (t + s) / 2:   z_m = DDIM(z_t; t -> m),   z_s^T = DDIM(z_m; m -> s).
Target: the x0 for which one DDIM step from z_t lands on z_s^T,

    x~ = (z_s^T - (sigma_s / sigma_t) z_t) / (alpha_s - alpha_t sigma_s / sigma_t)      (s = 0: x~ = z_s^T),

and the loss is  w(t) || f_student(z_t, t) - x~ ||^2  averaged over the latents, with w(t) = max(alpha_t^2 /
sigma_t^2, 1) ("truncated SNR", the paper's weighting) or w = 1 (plain x0 MSE, as in LDLM's own diffusion loss).
Training points are z_t = alpha_t z0 + sigma_t eps with z0 = E(h) the encoder's latents of real text and t drawn
from the student's grid. The grids are "trailing" (N times t_max (1 - i/N), i < N, then the jump to 0), so each
student's grid is every other point of its teacher's, and the last transition of every grid ends at t = 0.
"""

from __future__ import annotations

import math

import torch

from modeling_ldlm.solvers import AlphaSigmaFn, DenoiseFn, ddim_step

LOSS_WEIGHTINGS = ("snr_trunc", "none")


def stage_steps(start_steps: int, final_steps: int) -> list[int]:
    """The student's step count in each stage: start_steps / 2, start_steps / 4, ..., final_steps."""
    for name, value in (("start_steps", start_steps), ("final_steps", final_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"--{name} must be a positive integer, got {value!r}.")
    ratio = start_steps / final_steps
    if ratio < 2 or ratio != 2 ** round(math.log2(ratio)):
        raise ValueError(f"--start_steps ({start_steps}) must be --final_steps ({final_steps}) times a power of two "
                         "(at least 2): each stage halves the steps, e.g. 16 -> 8 -> 4 -> 2 -> 1.")
    steps, out = start_steps, []
    while steps > final_steps:
        steps //= 2
        out.append(steps)
    return out


def student_transitions(steps: int, index: torch.Tensor, t_max: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, s) of transition `index` (B,) in [0, steps) on the trailing grid of `steps` steps: t = t_max (1 - i/N),
    s = t_max (1 - (i + 1)/N) (0 for the last)."""
    i = index.float()
    return t_max * (1.0 - i / steps), t_max * (1.0 - (i + 1.0) / steps)


def two_teacher_steps(teacher: DenoiseFn, z_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                      alpha_sigma: AlphaSigmaFn) -> torch.Tensor:
    """z_s^T: two teacher DDIM steps from t through the midpoint to s. (B, N, D)."""
    m = 0.5 * (t + s)
    (at, st), (am, sm), (as_, ss) = alpha_sigma(t), alpha_sigma(m), alpha_sigma(s)
    z_m = ddim_step(z_t, teacher(z_t, t), at, st, am, sm)
    return ddim_step(z_m, teacher(z_m, m), am, sm, as_, ss)


def progressive_target(teacher: DenoiseFn, z_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                       alpha_sigma: AlphaSigmaFn) -> torch.Tensor:
    """x~: the x0 that makes one DDIM step from z_t (at t) land where two teacher steps land (at s). (B, N, D)."""
    z_s = two_teacher_steps(teacher, z_t, t, s, alpha_sigma)
    (at, st), (as_, ss) = alpha_sigma(t), alpha_sigma(s)
    ratio = (ss / st).view(-1, 1, 1)
    scale = (as_ - at * ss / st).view(-1, 1, 1)  # > 0 for s < t: the SNR falls with t
    return (z_s - ratio * z_t) / scale


def loss_weight(alpha: torch.Tensor, sigma: torch.Tensor, weighting: str) -> torch.Tensor:
    """w(t) per row (B,): max(SNR, 1) for "snr_trunc", 1 for "none"."""
    if weighting == "none":
        return torch.ones_like(alpha)
    if weighting == "snr_trunc":
        return (alpha**2 / sigma.clamp_min(1e-6) ** 2).clamp_min(1.0)
    raise ValueError(f"Unknown loss weighting {weighting!r}; choose one of {LOSS_WEIGHTINGS}.")


def distillation_loss(student_x0: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                      weighting: str) -> torch.Tensor:
    """mean_b w(t_b) mean_{n,d} (student - target)^2."""
    per_row = ((student_x0.float() - target.float()) ** 2).mean(dim=(1, 2))
    return (loss_weight(alpha, sigma, weighting) * per_row).mean()


__all__ = ["LOSS_WEIGHTINGS", "distillation_loss", "loss_weight", "progressive_target", "stage_steps",
           "student_transitions", "two_teacher_steps"]
