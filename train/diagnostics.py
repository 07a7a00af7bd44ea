"""Diagnostics of joint training: the latent-collapse statistic.

    share = mean_{n,d} Var_b(z0[b, n, d]) / mean_{b,n,d} z0[b, n, d]^2

is the share of latent energy that differs between samples: ~1 for healthy latents, -> 0 when every text maps to the
same latents (collapse). Sample metrics (unigram entropy, ...) live in `ldlm_metrics`.
"""

from __future__ import annotations

import torch


def latent_variance_share(latents: torch.Tensor) -> float:
    """`latents` (B, N, D) or (B, F) with B >= 2 -> between-sample share of latent energy in [0, 1]."""
    z = latents.detach().float().reshape(latents.shape[0], -1)
    if z.shape[0] < 2:
        raise ValueError("latent_variance_share needs at least two samples.")
    energy = (z**2).mean()
    if energy <= 0:
        return 0.0
    return float(z.var(0, unbiased=False).mean() / energy)
