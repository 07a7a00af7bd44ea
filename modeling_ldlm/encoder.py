"""Latent encoder E: frozen LM hidden states h (B, L, H) -> latents z0 (B, N, D).

Perceiver-style: N learned latent queries cross-attend to the (normalised, projected) hidden states, with padded
positions masked out, then self-attend; a final projection to width D and a parameter-free LayerNorm fix every
latent vector to zero mean and unit variance over D, so that the noise levels of the schedule mean the same thing
for every input (z0 = E(h)). With `latent_locality` > 0 (opt-in, not in the paper) the cross-attention logits get a
fixed Gaussian bias that centres latent i on positions around (i + 1/2) L / N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_ldlm import LDLMConfig
from .layers import TransformerBlock, key_padding_bias, locality_bias


class LatentEncoder(nn.Module):
    def __init__(self, config: LDLMConfig):
        super().__init__()
        width = config.encoder_hidden_size
        self.latent_dim = config.latent_dim
        self.eps = config.layer_norm_eps
        self.num_latents, self.max_length, self.locality = (config.num_latents, config.max_sequence_length,
                                                            config.latent_locality)
        self.latent_queries = nn.Parameter(torch.zeros(config.num_latents, width))
        self.input_proj = nn.Linear(config.frozen_lm_hidden_size, width)
        self.position_embedding = nn.Embedding(config.max_sequence_length, width)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, config.encoder_num_heads, config.mlp_ratio, context_width=width,
                             dropout=config.dropout, eps=config.layer_norm_eps, config=config)
            for _ in range(config.encoder_num_layers)
        )
        self.out_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(width, config.latent_dim)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        b, length, _ = hidden.shape
        positions = torch.arange(length, device=hidden.device)
        context = self.input_proj(hidden) + self.position_embedding(positions)[None]  # (B, L, W)
        mask = self.cross_attention_mask(attention_mask, length, context.dtype)
        x = self.latent_queries[None].expand(b, -1, -1)  # (B, N, W)
        for block in self.blocks:
            x = block(x, context, mask)
        z = self.out_proj(self.out_norm(x))  # (B, N, D)
        return F.layer_norm(z, (self.latent_dim,), eps=self.eps)

    def cross_attention_mask(self, attention_mask: torch.Tensor, length: int, dtype: torch.dtype):
        """The key padding mask, with the locality prior's bias where `latent_locality` > 0 (padding stays -inf)."""
        mask = key_padding_bias(attention_mask)
        if not self.locality:
            return mask
        bias = locality_bias(self.num_latents, self.max_length, length, self.locality).to(attention_mask.device)
        bias = bias[None, None]  # (1, 1, N, L)
        if mask is not None:
            bias = bias.masked_fill(~mask, float("-inf"))
        return bias.to(dtype)
