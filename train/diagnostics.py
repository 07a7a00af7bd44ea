"""Diagnostics of joint training (DESIGN §9): the latent-collapse statistic and the unigram entropy of samples.

    share = mean_{n,d} Var_b(z0[b, n, d]) / mean_{b,n,d} z0[b, n, d]^2

is the share of latent energy that differs between samples: ~1 for healthy latents, -> 0 when every text maps to the
same latents (collapse). The unigram entropy of a sample is -sum_w p(w) log p(w) over its own token frequencies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

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


def unigram_entropy(tokens: Sequence[int | str]) -> float:
    """Entropy (nats) of the token frequency distribution of one sample; 0 for an empty or one-token sample."""
    counts = Counter(tokens)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log(c / total) for c in counts.values())
