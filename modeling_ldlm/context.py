"""Prompts as conditioning: the context a conditional LDLM's denoiser reads, and classifier-free guidance.

A conditional LDLM (`LDLMConfig.context_conditioning=True`) denoises the latents of the whole sequence
[prefix | continuation] while its denoiser cross-attends to the context c: the frozen LM's normalised hidden states
of the prefix alone (the LM run on the prefix tokens only, so that c carries nothing of the continuation), behind a
learned null token that every row has. Training draws the prefix per row,

    k ~ U{1, ..., n - 1}  (n = the row's real tokens),   k = 0 with probability p_drop (context dropout),

and generation uses the prompt as the prefix. Context dropout trains the same denoiser without a prompt (c = the
null token alone), so that one model samples both ways and classifier-free guidance (Ho & Salimans, 2022) can mix
the two predictions:

    x0_hat = f(z_t, t, empty) + w (f(z_t, t, c) - f(z_t, t, empty)),   w = 1: the conditional prediction alone.
"""

from __future__ import annotations

import torch


def draw_context_lengths(lengths: torch.Tensor, dropout: float, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """Prefix length k per row (B,) for rows of `lengths` (B,) real tokens: uniform over 1..n-1, 0 (no context) with
    probability `dropout` and for rows of fewer than two tokens."""
    lengths = lengths.long()
    uniform = torch.rand(lengths.shape, generator=generator, device=lengths.device)
    k = 1 + (uniform * (lengths - 1).clamp_min(0).float()).long()  # in 1..n-1 where n >= 2
    keep = torch.rand(lengths.shape, generator=generator, device=lengths.device) >= dropout
    return torch.where(keep & (lengths >= 2), k.clamp_max(lengths - 1), torch.zeros_like(k))


def prefix_mask(attention_mask: torch.Tensor, context_lengths: torch.Tensor) -> torch.Tensor:
    """(B, L) True at the first `context_lengths` (B,) positions that the attention mask keeps (right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None]
    return attention_mask.bool() & (positions < context_lengths.to(attention_mask.device)[:, None])


def with_null_token(context: torch.Tensor, context_mask: torch.Tensor, null_token: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend the learned null token (1, H) to the context (B, M, H) and its mask (B, M): every row attends to at
    least one key, and a row without context attends to it alone."""
    b = context.shape[0]
    null = null_token.to(context.dtype).expand(b, 1, -1)
    ones = torch.ones(b, 1, dtype=torch.bool, device=context_mask.device)
    return torch.cat([null, context], dim=1), torch.cat([ones, context_mask.bool()], dim=1)


def classifier_free_guidance(conditional: torch.Tensor, unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """x0_u + w (x0_c - x0_u): w = 1 is the conditional prediction, w = 0 the unconditional one, w > 1 pushes past
    the conditional prediction, away from the unconditional one."""
    return unconditional + scale * (conditional - unconditional)


__all__ = ["classifier_free_guidance", "draw_context_lengths", "prefix_mask", "with_null_token"]
