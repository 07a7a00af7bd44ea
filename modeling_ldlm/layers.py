"""Transformer building blocks shared by the encoder, denoiser and decoders.

Leaves only: multi-head attention (self or cross, with an additive or boolean mask) through torch's
`scaled_dot_product_attention` ("sdpa", the default) or the same softmax written out ("eager"), chosen at call time by
the model config's `_attn_implementation`; a GELU MLP; a pre-norm block with optional cross-attention (Perceiver /
decoder style); a DiT block with adaLN time modulation, where the time embedding gives a shift b, scale s and gate g
per sub-layer and each sub-layer adds x + (1 + g) * F(LN(x) * (1 + s) + b) (F = attention, then the MLP), with an
optional pre-norm cross-attention to a context between the two; and the sinusoidal timestep embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_layers import GradientCheckpointingLayer

# The attention implementations LDLM's own layers have: `model.set_attn_implementation` accepts these.
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


def locality_bias(num_latents: int, length: int, positions: int, width: float) -> torch.Tensor:
    """(N, positions) additive attention bias -(p - c_i)^2 / (2 s^2): latent i is centred on c_i = (i + 1/2) L / N,
    and s = width * L / N (the `latent_locality` prior of LDLMConfig)."""
    stride = length / num_latents
    centres = (torch.arange(num_latents, dtype=torch.float32) + 0.5) * stride
    offsets = torch.arange(positions, dtype=torch.float32)[None, :] - centres[:, None]
    return -0.5 * (offsets / (width * stride)) ** 2


def key_padding_bias(key_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, Lk) 1/0 mask -> (B, 1, 1, Lk) boolean SDPA mask (True = attend), or None when nothing is masked."""
    if key_mask is None:
        return None
    return key_mask.bool()[:, None, None, :]


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim) + mask) v written out, with `scaled_dot_product_attention`'s arguments: q
    (B, heads, n, head_dim), k and v (B, heads, m, head_dim), `attn_mask` boolean (True = attend) or additive,
    broadcast to (B, heads, n, m). Returns (B, heads, n, head_dim)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, heads, n, m)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return F.dropout(weights, p=dropout_p) @ v if dropout_p > 0 else weights @ v


class Attention(nn.Module):
    """Multi-head attention; `context=None` is self-attention. `config._attn_implementation` ("sdpa" when there is
    no config) picks `scaled_dot_product_attention` or `eager_attention` at every call, so that
    `model.set_attn_implementation` takes effect at once."""

    def __init__(self, width: int, num_heads: int, context_width: int | None = None, dropout: float = 0.0,
                 config: PreTrainedConfig | None = None):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.dropout = dropout
        context_width = context_width or width
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(context_width, width)
        self.v_proj = nn.Linear(context_width, width)
        self.o_proj = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, n, head_dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(context)), self._heads(self.v_proj(context))
        eager = self.config is not None and self.config._attn_implementation == "eager"
        attend = eager_attention if eager else F.scaled_dot_product_attention
        out = attend(q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)  # (B, heads, n, d)
        b, _, n, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class MLP(nn.Module):
    def __init__(self, width: int, mlp_ratio: float, dropout: float = 0.0):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.fc_in = nn.Linear(width, hidden)
        self.fc_out = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(F.gelu(self.fc_in(x), approximate="tanh")))


class TransformerBlock(GradientCheckpointingLayer):
    """Pre-norm block: [cross-attention to a context, when `context_width` is given] -> self-attention (unmasked)
    -> MLP, each residual. `config` picks the attention implementation (see `Attention`)."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, context_width: int | None = None,
                 dropout: float = 0.0, eps: float = 1e-6, config: PreTrainedConfig | None = None):
        super().__init__()
        self.cross_attn = None
        if context_width is not None:
            self.cross_norm = nn.LayerNorm(width, eps=eps)
            self.context_norm = nn.LayerNorm(context_width, eps=eps)
            self.cross_attn = Attention(width, num_heads, context_width, dropout, config)
        self.self_norm = nn.LayerNorm(width, eps=eps)
        self.self_attn = Attention(width, num_heads, dropout=dropout, config=config)
        self.mlp_norm = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_norm(x), self.context_norm(context), context_mask)
        x = x + self.self_attn(self.self_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class DiTBlock(GradientCheckpointingLayer):
    """Transformer block with adaLN conditioning: shift b, scale s and gate g per sub-layer from the time embedding,
    x <- x + (1 + g) * F(LN(x) * (1 + s) + b) for F = self-attention, then the MLP. With `context_width`, a pre-norm
    cross-attention to a context (B, M, context_width) sits between the two: x <- x + CrossAttn(LN(x), LN(c))."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, dropout: float = 0.0, eps: float = 1e-6,
                 config: PreTrainedConfig | None = None, context_width: int | None = None):
        super().__init__()
        self.attn_norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.attn = Attention(width, num_heads, dropout=dropout, config=config)
        self.cross_attn = None
        if context_width is not None:
            self.cross_norm = nn.LayerNorm(width, eps=eps)
            self.context_norm = nn.LayerNorm(context_width, eps=eps)
            self.cross_attn = Attention(width, num_heads, context_width, dropout, config)
        self.mlp_norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)
        self.mlp = MLP(width, mlp_ratio, dropout)
        self.modulation = nn.Linear(width, 6 * width)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        # cond: (B, width) time embedding -> six (B, 1, width) modulations
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(cond))[:, None].chunk(6, dim=-1)
        h = self.attn_norm(x) * (1 + scale1) + shift1
        x = x + (1 + gate1) * self.attn(h)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_norm(x), self.context_norm(context), key_padding_bias(context_mask))
        h = self.mlp_norm(x) * (1 + scale2) + shift2
        return x + (1 + gate2) * self.mlp(h)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as in DDPM/DiT): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedder(nn.Module):
    """t -> sinusoidal features -> 2-layer MLP -> (B, width)."""

    def __init__(self, width: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.fc_in = nn.Linear(frequency_dim, width)
        self.fc_out = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.frequency_dim).to(self.fc_in.weight.dtype)
        return self.fc_out(F.silu(self.fc_in(emb)))
