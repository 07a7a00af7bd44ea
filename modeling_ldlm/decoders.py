"""Latent decoder G and token decoder T.

G: latents (B, N, D) -> h_hat (B, L, H), the normalised frozen hidden states at every one of the L canvas positions:
L learned position queries cross-attend to the latents and self-attend. G reads only the latents, never tokens, so
it has no padding to mask; the loss L_h = ||h_hat - h||^2 counts only non-pad positions. With `latent_locality` > 0
(opt-in) position p's cross-attention is biased towards the latents centred near it, as in the encoder.

T: h_hat (B, L, H) -> vocabulary logits (B, L, V): a small bidirectional transformer and an LM head
(L_w = CE(T(sg(h_hat)), w)). The head is a free linear layer (token_head="linear", the default) or, opt-in
(token_head="frozen_embeddings"), tied to the frozen LM's input embeddings E: logits = (P f) E^T + b, with only the
projection P and the bias b trained, so every token type starts out known to the head, however rare it is in the
training data.
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


class FrozenEmbeddingHead(nn.Module):
    """Vocabulary head tied to the frozen LM's input embeddings E (V, H): logits = (P f) E^T + b.

    E belongs to the frozen LM (never trained, saved once, with the LM): the model binds the embedding module after
    construction, and the head keeps it out of its own submodules."""

    def __init__(self, width: int, embedding_dim: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(width, embedding_dim)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self._embeddings: nn.Module | None = None

    def bind(self, embeddings: nn.Module) -> None:
        """Use `embeddings.weight` (V, H) as E."""
        expected = (self.bias.shape[0], self.proj.out_features)
        shape = tuple(getattr(embeddings, "weight", torch.empty(0)).shape)
        if shape != expected:
            raise ValueError(f"token_head='frozen_embeddings' ties the vocabulary head to the frozen LM's input "
                             f"embeddings, which must be (vocab_size, frozen_lm_hidden_size) = {expected}, but they are "
                             f"{shape}: use token_head='linear' for this frozen LM.")
        self.__dict__["_embeddings"] = embeddings  # not nn.Module.__setattr__: the frozen LM owns this module

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self._embeddings is None:
            raise RuntimeError("FrozenEmbeddingHead used before bind(): the model binds the frozen LM's embeddings.")
        weight = self._embeddings.weight.to(features.dtype)
        return self.proj(features) @ weight.T + self.bias.to(features.dtype)


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
        if config.token_head == "frozen_embeddings":
            self.lm_head = FrozenEmbeddingHead(width, config.frozen_lm_hidden_size, config.vocab_size)
        else:
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
