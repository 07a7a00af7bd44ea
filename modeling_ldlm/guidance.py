"""The denoise call that generation integrates: one denoiser pass with self-conditioning, then, when canvas tokens
are fixed (prompts, infilling), guidance toward them.

The latents are global (a Perceiver reads the whole sequence), so there is no prefix to copy in latent space.
Instead every denoiser output is pushed toward latents whose decoded canvas shows the fixed tokens c at the fixed
positions P:

    loss(x) = sum_{p in P} CE(T(G(x))_p, c_p)          per row, summed (a row's push never depends on the batch)
    x0_hat <- x0_hat - guidance_scale * grad / rms(grad)      repeated guidance_steps times, rms over (N, D)

and the solver continues from the guided x0_hat (self-conditioning also sees it). Cost: one decoder forward and
backward per call while fixed tokens are given. A checkpoint trained with context conditioning reads a prompt in its
denoiser instead (context.py) and leaves this push off by default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# (z_t (B, N, D), t (B,), previous x0_hat or None) -> x0_hat (B, N, D): the denoiser network
DenoiserFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
# latents (B, N, D) -> logits (K, V) at the K fixed canvas positions, differentiable in the latents
FixedLogitsFn = Callable[[torch.Tensor], torch.Tensor]


def guide_to_fixed_tokens(x0: torch.Tensor, fixed_logits: FixedLogitsFn, targets: torch.Tensor, scale: float,
                          steps: int) -> torch.Tensor:
    """x0 (B, N, D) <- x0 - scale * g / rms(g), g = d/dx0 sum_p CE(T(G(x0))_p, c_p), `steps` times."""
    x = x0.detach()
    for _ in range(steps):
        with torch.enable_grad():
            x = x.requires_grad_(True)
            loss = F.cross_entropy(fixed_logits(x), targets, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        rms = grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)  # (B, 1, 1)
        x = (x - scale * grad / rms).detach()
    return x


class GuidedDenoiser:
    """`denoise(z_t, t) -> x0_hat` for the solvers: runs the network in its own dtype on the previous x0_hat
    (self-conditioning), guides the result toward fixed tokens when given, and counts the network calls."""

    def __init__(self, network: DenoiserFn, dtype: torch.dtype, self_conditioning: bool,
                 fixed_logits: FixedLogitsFn | None = None, targets: torch.Tensor | None = None,
                 guidance_scale: float = 0.0, guidance_steps: int = 1):
        self.network = network
        self.dtype = dtype
        self.self_conditioning = self_conditioning
        self.fixed_logits, self.targets = fixed_logits, targets
        self.guidance_scale, self.guidance_steps = guidance_scale, guidance_steps
        self.previous_x0: torch.Tensor | None = None
        self.calls = 0

    @property
    def guided(self) -> bool:
        return self.fixed_logits is not None and self.guidance_scale > 0

    def __call__(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        previous = self.previous_x0 if self.self_conditioning else None
        x0 = self.network(z_t.to(self.dtype), t, previous).float()  # (B, N, D)
        self.calls += 1
        if self.guided:
            x0 = guide_to_fixed_tokens(x0, self.fixed_logits, self.targets, self.guidance_scale, self.guidance_steps)
        self.remember(x0)
        return x0

    def remember(self, x0: torch.Tensor) -> None:
        """Set the estimate the next call is self-conditioned on (a step callback may replace it)."""
        self.previous_x0 = x0.to(self.dtype)


__all__ = ["GuidedDenoiser", "guide_to_fixed_tokens"]
