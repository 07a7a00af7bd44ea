"""Adaptive timestep sampling: CDCD-style time warping (Dieleman et al. 2022), one of LDLM's four training parts.

Keep an EMA of the diffusion loss in `bins` equal bins over t in [0, 1], make the curve monotone in t, and sample t
with density proportional to the loss increase across each bin, F(right edge) - F(left edge), so that every loss
level gets an equal share of training. The same inverse CDF, applied to evenly spaced u, places the sampling
steps at inference.

The pure functions do the maths; `AdaptiveTimestepSampler` only owns the persistent buffers, so the state is saved
with every checkpoint, resumes exactly and ships with the model.
"""

from __future__ import annotations

import torch
from torch import nn


def initial_curve(bins: int) -> torch.Tensor:
    """A loss rising linearly in t (values at the bin centres): its warping is the identity."""
    return (torch.arange(bins, dtype=torch.float32) + 0.5) / bins


def monotone_loss_curve(loss_ema: torch.Tensor) -> torch.Tensor:
    """Running maximum over t: the loss of a VP diffusion grows with the noise level."""
    return torch.cummax(loss_ema.float().clamp_min(0.0), dim=0).values


def bin_probabilities(loss_ema: torch.Tensor, uniform_mix: float = 0.0) -> torch.Tensor:
    """Probability of each t-bin, proportional to the loss increase across it, mixed with `uniform_mix` uniform."""
    curve = monotone_loss_curve(loss_ema)  # loss at the bin centres
    # Loss at the bin edges: F(0) = 0, midpoints between centres inside, linear extrapolation at t = 1.
    last = curve[-1:] + 0.5 * (curve[-1:] - curve[-2:-1]) if curve.numel() > 1 else curve[-1:]
    edges = torch.cat([curve.new_zeros(1), 0.5 * (curve[1:] + curve[:-1]), last])
    increase = torch.diff(edges)  # F(right edge) - F(left edge) of each bin
    total = increase.sum()
    bins = loss_ema.numel()
    uniform = torch.full_like(increase, 1.0 / bins)
    probs = increase / total if total > 0 else uniform
    return (1.0 - uniform_mix) * probs + uniform_mix * uniform


def warp(u: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Inverse CDF of the piecewise-uniform density `probs` over equal bins of [0, 1]: u in [0, 1] -> t in [0, 1]."""
    bins = probs.numel()
    cdf = torch.cat([probs.new_zeros(1), torch.cumsum(probs.float(), 0)])
    cdf = cdf / cdf[-1]
    u = u.float().clamp(0.0, 1.0)
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, bins) - 1  # bin holding u
    lo, hi = cdf[idx], cdf[idx + 1]
    frac = torch.where(hi > lo, (u - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(u))
    return ((idx.float() + frac) / bins).clamp(0.0, 1.0)


def warp_cdf(t: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """CDF of the piecewise-uniform density `probs` over equal bins of [0, 1] (the inverse of `warp`)."""
    bins = probs.numel()
    cdf = torch.cat([probs.new_zeros(1), torch.cumsum(probs.float(), 0)])
    cdf = cdf / cdf[-1]
    pos = t.float().clamp(0.0, 1.0) * bins
    idx = pos.floor().long().clamp(0, bins - 1)
    return cdf[idx] + (pos - idx.float()) * (cdf[idx + 1] - cdf[idx])


def ema_update(loss_ema: torch.Tensor, t: torch.Tensor, losses: torch.Tensor, decay: float) -> torch.Tensor:
    """New per-bin EMA after observing `losses` (B,) at times `t` (B,); bins without observations keep their value."""
    bins = loss_ema.numel()
    idx = (t.float() * bins).long().clamp(0, bins - 1)
    sums = torch.zeros_like(loss_ema, dtype=torch.float32).index_add_(0, idx, losses.detach().float())
    counts = torch.zeros_like(loss_ema, dtype=torch.float32).index_add_(0, idx, torch.ones_like(losses).float())
    seen = counts > 0
    means = sums / counts.clamp_min(1.0)
    return torch.where(seen, decay * loss_ema.float() + (1.0 - decay) * means, loss_ema.float())


class AdaptiveTimestepSampler(nn.Module):
    """Persistent state of the learned time warping: the per-bin loss EMA and how many updates it has seen."""

    def __init__(self, bins: int):
        super().__init__()
        # A linear initial curve gives the uniform density until the first updates arrive.
        self.register_buffer("loss_ema", initial_curve(bins), persistent=True)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long), persistent=True)

    def probabilities(self, uniform_mix: float = 0.0) -> torch.Tensor:
        return bin_probabilities(self.loss_ema, uniform_mix)

    def sample(
        self, batch_size: int, uniform_mix: float = 0.1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw (batch_size,) training times from the warped density."""
        u = torch.rand(batch_size, generator=generator, device=self.loss_ema.device)
        return warp(u, self.probabilities(uniform_mix))

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor, decay: float = 0.99) -> None:
        self.loss_ema.copy_(ema_update(self.loss_ema, t.to(self.loss_ema.device), losses.to(self.loss_ema.device),
                                       decay))
        self.num_updates += 1
