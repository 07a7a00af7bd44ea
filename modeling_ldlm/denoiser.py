"""Denoiser f: a DiT over the N latents, x0-parameterised, with self-conditioning.

f(z_t, t, x0_sc) -> x0_hat. The noisy latents and the self-conditioning input x0_sc (the previous x0_hat, or zeros)
are concatenated on the channel axis and projected to the model width; time enters every block through adaLN
(DiT). Attention runs over N latents, never over the L tokens, which is where LDLM's sampling speed comes from.

A conditional denoiser (`LDLMConfig.context_conditioning`) also cross-attends, in every block, to a context c
(B, M, H): the frozen LM's normalised states of a prompt, behind a learned null token (context.py); f(z_t, t, x0_sc, c).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_ldlm import LDLMConfig
from .context import with_null_token
from .layers import DiTBlock, TimestepEmbedder


class LatentDenoiser(nn.Module):
    def __init__(self, config: LDLMConfig):
        super().__init__()
        width = config.denoiser_hidden_size
        self.input_proj = nn.Linear(2 * config.latent_dim, width)
        self.position_embedding = nn.Parameter(torch.zeros(config.num_latents, width))
        self.time_embedding = TimestepEmbedder(width)
        context_width = config.frozen_lm_hidden_size if config.context_conditioning else None
        # the key every row's cross-attention has: a row without context attends to it alone
        self.null_context = nn.Parameter(torch.zeros(1, context_width)) if context_width else None
        self.blocks = nn.ModuleList(
            DiTBlock(width, config.denoiser_num_heads, config.mlp_ratio, config.dropout, config.layer_norm_eps, config,
                     context_width)
            for _ in range(config.denoiser_num_layers)
        )
        self.out_norm = nn.LayerNorm(width, eps=config.layer_norm_eps, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, config.latent_dim)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, previous_x0: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """z_t (B, N, D), t (B,), previous_x0 (B, N, D) or None -> x0_hat (B, N, D). A conditional denoiser reads
        `context` (B, M, H) where `context_mask` (B, M) is True; no context is the null token alone."""
        if previous_x0 is None:
            previous_x0 = torch.zeros_like(z_t)
        x = self.input_proj(torch.cat([z_t, previous_x0], dim=-1)) + self.position_embedding[None]  # (B, N, W)
        cond = self.time_embedding(t)  # (B, W)
        keys = keys_mask = None
        if self.null_context is not None:
            keys, keys_mask = self._context_keys(context, context_mask, z_t.shape[0])
        elif context is not None:
            raise ValueError("This denoiser was built without context conditioning (LDLMConfig.context_conditioning="
                             "False): it cannot read a context.")
        for block in self.blocks:
            x = block(x, cond, keys, keys_mask)
        shift, scale = self.out_modulation(F.silu(cond))[:, None].chunk(2, dim=-1)
        return self.out_proj(self.out_norm(x) * (1 + scale) + shift)  # (B, N, D)

    def _context_keys(self, context: torch.Tensor | None, context_mask: torch.Tensor | None,
                      batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention keys: the null token, then the context's positions where its mask is True."""
        dtype = self.null_context.dtype
        if context is None:
            context = torch.zeros(batch, 0, self.null_context.shape[1], dtype=dtype, device=self.null_context.device)
            context_mask = torch.zeros(batch, 0, dtype=torch.bool, device=context.device)
        elif context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
        expected = (batch, context.shape[1], self.null_context.shape[1])
        if tuple(context.shape) != expected or tuple(context_mask.shape) != expected[:2]:
            raise ValueError(f"context must have shape (batch, positions, frozen LM hidden size) = {expected} and "
                             f"context_mask {expected[:2]}; got {tuple(context.shape)} and {tuple(context_mask.shape)}.")
        return with_null_token(context.to(dtype), context_mask, self.null_context)
