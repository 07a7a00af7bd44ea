"""Exponential moving average of the trainable weights: theta_ema <- d theta_ema + (1 - d) theta, with the usual
warm start d_n = min(decay, (1 + n) / (10 + n)). The EMA copy is what the final folder holds for generation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class EMAWeights:
    """Float32 shadow copies of a model's trainable parameters (frozen parameters and buffers are not averaged)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}; use 0 to switch the EMA off.")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].mul_(d).add_(param.detach().float(), alpha=1 - d)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the EMA weights into `model` (restores the live weights on exit)."""
        backup = {}
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.shadow.items():
                backup[name] = params[name].detach().clone()
                params[name].copy_(value.to(params[name].dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in backup.items():
                    params[name].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"ema.{n}": t.contiguous() for n, t in self.shadow.items()}
        state["num_updates"] = torch.tensor(self.num_updates)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.shadow if f"ema.{n}" not in state]
        if missing:
            raise ValueError(f"EMA state lacks {missing[:3]}...; was it saved from a different model?")
        for name in self.shadow:
            self.shadow[name].copy_(state[f"ema.{name}"])
        self.num_updates = int(state["num_updates"])
