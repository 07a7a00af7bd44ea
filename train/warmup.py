"""Diffusion-to-encoder warmup gamma(s) and the state that decides when it starts.

    gamma(s) = gamma_min + (1 - gamma_min) [sig(k (s/S_wu - c)) - sig(-k c)] / [sig(k (1 - c)) - sig(-k c)],  s < S_wu
    gamma(s) = 1,                                                                                             s >= S_wu

The reported shape is k = 10, c = 0.8. `WarmupState` delays s = 0 until token reconstruction works (measured on CPU:
the latents collapse when gamma ramps before the autoencoder has learned anything; BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def gamma_schedule(step: float, warmup_steps: float, k: float = 10.0, c: float = 0.8, gamma_min: float = 1e-3) -> float:
    """Normalised-sigmoid warmup: gamma_min at step 0, 1 at `warmup_steps` and after; monotone non-decreasing."""
    if warmup_steps < 0 or k <= 0 or not 0.0 <= gamma_min <= 1.0:
        raise ValueError(f"gamma_schedule needs warmup_steps >= 0, k > 0 and gamma_min in [0, 1]; got "
                         f"{warmup_steps}, {k}, {gamma_min}.")
    if step <= 0 and warmup_steps > 0:
        return gamma_min
    if warmup_steps == 0 or step >= warmup_steps:
        return 1.0
    low, high = _sigmoid(-k * c), _sigmoid(k * (1.0 - c))
    frac = (_sigmoid(k * (step / warmup_steps - c)) - low) / (high - low)
    return gamma_min + (1.0 - gamma_min) * min(max(frac, 0.0), 1.0)


@dataclass
class WarmupState:
    """When the gamma ramp starts: at step 0, or the first step at which the EMA of the training token accuracy
    reaches `accuracy_threshold` (then `start_step` is fixed for the rest of the run and saved with checkpoints)."""

    warmup_steps: int
    k: float = 10.0
    c: float = 0.8
    gamma_min: float = 1e-3
    accuracy_threshold: float | None = None
    accuracy_ema_decay: float = 0.95
    enabled: bool = True
    start_step: int | None = None
    accuracy_ema: float | None = None

    def __post_init__(self) -> None:
        if self.start_step is None and (self.accuracy_threshold is None or not self.enabled):
            self.start_step = 0

    def observe(self, step: int, token_accuracy: float) -> None:
        """Record the training token accuracy of `step`; start the ramp once the EMA passes the threshold."""
        a = self.accuracy_ema_decay
        self.accuracy_ema = token_accuracy if self.accuracy_ema is None else a * self.accuracy_ema + (1 - a) * token_accuracy
        if self.start_step is None and self.accuracy_ema >= self.accuracy_threshold:
            self.start_step = step

    def gamma(self, step: int) -> float:
        if not self.enabled:
            return 1.0
        if self.start_step is None:
            return self.gamma_min
        return gamma_schedule(step - self.start_step, self.warmup_steps, self.k, self.c, self.gamma_min)

    def state_dict(self) -> dict:
        return {"start_step": self.start_step, "accuracy_ema": self.accuracy_ema}

    def load_state_dict(self, state: dict) -> None:
        self.start_step = state["start_step"]
        self.accuracy_ema = state["accuracy_ema"]
