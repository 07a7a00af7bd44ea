"""Denoiser f: a DiT over the N latents, x0-parameterised, with self-conditioning.

f(z_t, t, x0_sc) -> x0_hat. The noisy latents and the self-conditioning input x0_sc (the previous x0_hat, or zeros)
are concatenated on the channel axis and projected to the model width; time enters every block through adaLN
(DiT). Attention runs over N latents, never over the L tokens, which is where LDLM's sampling speed comes from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_ldlm import LDLMConfig
from .layers import DiTBlock, TimestepEmbedder


class LatentDenoiser(nn.Module):
    def __init__(self, config: LDLMConfig):
        super().__init__()
        width = config.denoiser_hidden_size
        self.input_proj = nn.Linear(2 * config.latent_dim, width)
        self.position_embedding = nn.Parameter(torch.zeros(config.num_latents, width))
        self.time_embedding = TimestepEmbedder(width)
        self.blocks = nn.ModuleList(
            DiTBlock(width, config.denoiser_num_heads, config.mlp_ratio, config.dropout, config.layer_norm_eps, config)
            for _ in range(config.denoiser_num_layers)
        )
        self.out_norm = nn.LayerNorm(width, eps=config.layer_norm_eps, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, config.latent_dim)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, previous_x0: torch.Tensor | None = None) -> torch.Tensor:
        if previous_x0 is None:
            previous_x0 = torch.zeros_like(z_t)
        x = self.input_proj(torch.cat([z_t, previous_x0], dim=-1)) + self.position_embedding[None]  # (B, N, W)
        cond = self.time_embedding(t)  # (B, W)
        for block in self.blocks:
            x = block(x, cond)
        shift, scale = self.out_modulation(F.silu(cond))[:, None].chunk(2, dim=-1)
        return self.out_proj(self.out_norm(x) * (1 + scale) + shift)  # (B, N, D)
