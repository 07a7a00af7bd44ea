"""Continuous diffusion over token embeddings, without a learned latent space: CDCD (Dieleman et al. 2022,
"Continuous diffusion for categorical data"), the benchmark's continuous-diffusion arm.

- Every token w has a learned embedding e_w in R^D, L2-normalised to norm sqrt(D) and trained jointly with the model.
- Variance-exploding diffusion x = x0 + sigma * eps with sigma in [sigma_min, sigma_max] = [1, 300] (CDCD's range); the
  transformer reads x / sqrt(1 + sigma^2) and log sigma, and predicts p(w | x) at every position.
- Score interpolation: the loss is the cross-entropy -log p(w_l | x) over the canvas, and the denoised estimate is
  the expected embedding x0_hat = sum_w p(w | x) e_w, so the score is (x0_hat - x) / sigma^2.
- Time warping: t in [0, 1] maps to sigma(t) = sigma_min (sigma_max / sigma_min)^t, and t is drawn from the learned
  warp of the cross-entropy curve over t (CDCD's time warping; `AdaptiveTimestepSampler` of the model package
  implements it for LDLM too). The same warp places the sampling steps.
- Sampling: Euler steps on the probability-flow ODE dx/dsigma = (x - x0_hat) / sigma from sigma_max to sigma_min on
  the warped grid, then the tokens of the last prediction (argmax, or drawn at a temperature). The benchmark's knob
  for CDCD is the temperature tau of every prediction: x0_hat interpolates the embeddings under softmax(logits / tau)
  at each step, and the last tokens are drawn at tau. Tempering only the last draw barely moves the samples' entropy
  (the trajectory has already chosen the words); tempering the score interpolation steers the trajectory itself.
  This knob is this implementation's choice, not the paper's.

Departures from the paper at this size, for a like-for-like comparison with the other arms: unconditional only (no
prefix or infilling masks), no self-conditioning, a pre-norm transformer with the time added to every position
instead of CDCD's conditioning layers, and padding kept on the canvas (the model learns where a sentence ends),
as for the MDLM arm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from modeling_ldlm.adaptive_timesteps import AdaptiveTimestepSampler, warp
from modeling_ldlm.canvas import cut_at_eos
from modeling_ldlm.generation_ldlm import sample_tokens

from .baselines import Block, row_generators

SIGMA_MIN, SIGMA_MAX = 1.0, 300.0
WARP_BINS, WARP_UNIFORM_MIX, WARP_EMA_DECAY = 64, 0.1, 0.99


def sigma_of(t: torch.Tensor) -> torch.Tensor:
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t: log-uniform in t before warping."""
    return SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t


def time_features(sigma: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal features of log sigma: (B,) -> (B, width)."""
    half = width // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=sigma.device) / half)
    angles = sigma.float().log()[:, None] * freqs[None] * 100.0
    return torch.cat([angles.sin(), angles.cos()], -1)


class CDCDBaseline(nn.Module):
    def __init__(self, vocab_size: int, max_length: int, width: int, layers: int, heads: int, bos: int, eos: int,
                 pad: int, embed_dim: int = 64):
        super().__init__()
        self.max_length, self.bos, self.eos, self.pad, self.embed_dim = max_length, bos, eos, pad, embed_dim
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.input_proj = nn.Linear(embed_dim, width)
        self.pos = nn.Embedding(max_length, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.GELU(approximate="tanh"), nn.Linear(width, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        self.warping = AdaptiveTimestepSampler(WARP_BINS)
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.pos.weight, std=0.02)

    def embeddings(self) -> torch.Tensor:
        """(V, D) embeddings of norm sqrt(D)."""
        return F.normalize(self.embed.weight, dim=-1) * math.sqrt(self.embed_dim)

    def logits(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Noisy embeddings x (B, L, D) at noise levels sigma (B,) -> logits of p(w | x) (B, L, V)."""
        scaled = x / torch.sqrt(1.0 + sigma[:, None, None] ** 2)
        positions = torch.arange(x.shape[1], device=x.device)
        time = self.time(time_features(sigma, self.pos.embedding_dim))  # (B, W)
        h = self.input_proj(scaled) + self.pos(positions)[None] + time[:, None]
        for block in self.blocks:
            h = block(h, causal=False)
        return self.head(self.norm(h)).float()

    def canvas(self, ids: torch.Tensor) -> torch.Tensor:
        """Right-pad the batch to the whole canvas: padding is part of what the model learns to generate."""
        missing = self.max_length - ids.shape[1]
        return F.pad(ids, (0, missing), value=self.pad) if missing > 0 else ids

    def loss(self, ids: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Score-interpolation loss: cross-entropy of the tokens from their noisy embeddings, t from the warp."""
        ids = self.canvas(ids)
        b = ids.shape[0]
        t = self.warping.sample(b, WARP_UNIFORM_MIX).to(ids.device) if t is None else t
        sigma = sigma_of(t)
        x = self.embeddings()[ids] + sigma[:, None, None] * torch.randn(*ids.shape, self.embed_dim, device=ids.device)
        per_position = F.cross_entropy(self.logits(x, sigma).transpose(1, 2), ids, reduction="none")  # (B, L)
        per_sample = per_position.mean(1)
        if self.training:
            self.warping.update(t, per_sample, WARP_EMA_DECAY)
        return per_sample.mean()

    def sampling_sigmas(self, steps: int) -> torch.Tensor:
        """steps + 1 noise levels from sigma_max down to sigma_min, evenly spaced under the learned warp."""
        u = torch.linspace(1.0, 0.0, steps + 1)
        return sigma_of(warp(u, self.warping.probabilities(0.0).cpu()))

    @torch.no_grad()
    def denoise(self, noise: torch.Tensor, steps: int, temperature: float) -> torch.Tensor:
        """Euler steps of the probability-flow ODE from unit noise (B, L, D), the score interpolated under
        softmax(logits / temperature); returns the last step's logits (B, L, V)."""
        sigmas = self.sampling_sigmas(steps).to(noise.device)
        x, table = noise * sigmas[0], self.embeddings()
        for sigma, next_sigma in zip(sigmas[:-1], sigmas[1:]):
            logits = self.logits(x, sigma.expand(noise.shape[0]))
            x0_hat = torch.softmax(logits / max(temperature, 1e-4), -1) @ table  # score interpolation: (B, L, D)
            x = x + (next_sigma - sigma) * (x - x0_hat) / sigma
        return logits

    @torch.no_grad()
    def generate(self, batch: int, steps: int, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0) -> tuple[torch.Tensor, int]:
        """`denoise` at `temperature` (0: towards the most likely embedding at every step), then the last tokens
        drawn at it; returns (sequences cut after EOS, network calls)."""
        device = self.embed.weight.device
        generators = row_generators(batch, seed)
        noise = torch.stack([torch.randn(self.max_length, self.embed_dim, generator=g) for g in generators])
        logits = self.denoise(noise.to(device), steps, temperature)
        ids = sample_tokens(logits, temperature > 0, temperature, None, top_p, generators)
        ids[:, 0] = self.bos
        eos = torch.tensor([self.eos], device=device)
        return cut_at_eos(ids, eos, self.pad, torch.ones(batch, dtype=torch.long, device=device)), steps
