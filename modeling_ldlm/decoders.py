"""Latent decoder G and token decoder T.

G: latents (B, N, D) -> h_hat (B, L, H), the normalised frozen hidden states at every one of the L canvas positions:
L learned position queries cross-attend to the latents and self-attend. G reads only the latents, never tokens, so
it has no padding to mask; the loss L_h = ||h_hat - h||^2 counts only non-pad positions. With `latent_locality` > 0
(opt-in) position p's cross-attention is biased towards the latents centred near it, as in the encoder.

T: h_hat (B, L, H) -> vocabulary logits (B, L, V): a small bidirectional transformer and an LM head
(L_w = CE(T(sg(h_hat)), w)).
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_ldlm import LDLMConfig
from .layers import TransformerBlock, locality_bias


class LatentDecoder(nn.Module):
    def __init__(self, config: LDLMConfig):
        super().__init__()
        width = config.latent_decoder_hidden_size
        self.position_queries = nn.Parameter(torch.zeros(config.max_sequence_length, width))
        self.locality = config.latent_locality  # > 0: position p reads mostly the latents centred near it
        self.latent_proj = nn.Linear(config.latent_dim, width)
        self.latent_position = nn.Parameter(torch.zeros(config.num_latents, width))
        self.blocks = nn.ModuleList(
            TransformerBlock(width, config.latent_decoder_num_heads, config.mlp_ratio, context_width=width,
                             dropout=config.dropout, eps=config.layer_norm_eps, config=config)
            for _ in range(config.latent_decoder_num_layers)
        )
        self.out_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(width, config.frozen_lm_hidden_size)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b = latents.shape[0]
        context = self.latent_proj(latents) + self.latent_position[None]  # (B, N, W)
        x = self.position_queries[None].expand(b, -1, -1)  # (B, L, W)
        bias = None
        if self.locality:
            n, length = context.shape[1], x.shape[1]
            bias = locality_bias(n, length, length, self.locality).T[None, None].to(latents.device, context.dtype)
        for block in self.blocks:
            x = block(x, context, bias)
        return self.out_proj(self.out_norm(x))  # (B, L, H)


class TokenDecoder(nn.Module):
    def __init__(self, config: LDLMConfig):
        super().__init__()
        width = config.token_decoder_hidden_size
        self.input_proj = nn.Linear(config.frozen_lm_hidden_size, width)
        self.position_embedding = nn.Embedding(config.max_sequence_length, width)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, config.token_decoder_num_heads, config.mlp_ratio,
                             dropout=config.dropout, eps=config.layer_norm_eps, config=config)
            for _ in range(config.token_decoder_num_layers)
        )
        self.out_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(width, config.vocab_size)

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        """h_hat (B, L, H) -> final features (B, L, W) before the vocabulary head."""
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        x = self.input_proj(hidden) + self.position_embedding(positions)[None]
        for block in self.blocks:
            x = block(x)
        return self.out_norm(x)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.features(hidden))  # (B, L, V)
