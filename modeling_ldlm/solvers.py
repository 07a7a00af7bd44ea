"""Solvers: pure functions that integrate the reverse diffusion over a `denoise(z_t, t) -> x0_hat` callable, and
their time grids.

Variance-preserving latents, z_t = alpha_t x0 + sigma_t eps, with an x0-predicting network. With
lambda_t = log(alpha_t / sigma_t) (half the log-SNR) and eps_hat = (z_t - alpha_t x0_hat) / sigma_t:

    euler           DDIM / first-order exponential integrator of the probability-flow ODE (deterministic):
                        z_s = alpha_s x0_hat + sigma_s eps_hat
    euler_maruyama  Euler-Maruyama on the reverse SDE  dz = [f z - g^2 score] dt + g dw,  written in log-SNR time
                    (f dt = sigma^2 dl / 2, g^2 |dt| = sigma^2 dl, dl = log-SNR_s - log-SNR_t > 0, score = -eps_hat/sigma):
                        z_s = z_t + dl [(sigma_t^2 / 2 - 1) z_t + alpha_t x0_hat] + sigma_t sqrt(dl) xi
                    Literal Euler, so it needs small steps (Cosmos: 200); the log-SNR at alpha = 0 is clamped.
    ddpm            ancestral sampling from the Gaussian posterior q(z_s | z_t, x0 = x0_hat):
                        mean = alpha_ts sigma_s^2 / sigma_t^2 z_t + alpha_s sigma_ts^2 / sigma_t^2 x0_hat,
                        var  = sigma_ts^2 sigma_s^2 / sigma_t^2,  alpha_ts = alpha_t / alpha_s,
                        sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2
    dpmpp_2m        DPM-Solver++(2M), second-order multistep in lambda (one call per step), h = lambda_s - lambda_t,
                    r = h_prev / h:  D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1},
                        z_s = (sigma_s / sigma_t) z_t + alpha_s (1 - e^{-h}) D
    heun            Heun's predictor-corrector on the DDIM update: z~ = ddim(z_t, x0_hat), x0' = denoise(z~, s),
                        z_s = ddim(z_t, (x0_hat + x0') / 2);  two calls per step.

A grid of S times runs from t_max down to t_min (or, "trailing", down to t_max / S); after the call at its last time
every solver takes the final jump to t = 0,
where alpha = 1 and sigma = 0, i.e. it returns the last x0_hat. Network calls: S for euler, euler_maruyama, ddpm and
dpmpp_2m; 2S - 1 for heun (`network_calls`). Random draws come from an injected `torch.Generator`, or from a list of
one generator per batch row, so that a row's noise never depends on the batch it is in.

After each grid point's first call the solver calls `callback(step, t, z_t, x0_hat)`; a tensor it returns replaces
x0_hat for the rest of that step (None keeps it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .adaptive_timesteps import warp, warp_cdf
from .random_rows import Generators, normal_rows

# The callables the solvers integrate over, defined here once (generation and train/progressive.py import them).
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (z_t (B, N, D), t (B,)) -> x0_hat (B, N, D)
AlphaSigmaFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # t -> (alpha_t, sigma_t)
StepCallback = Callable[[int, float, torch.Tensor, torch.Tensor], "torch.Tensor | None"]  # (step, t, z_t, x0_hat)
UpdateFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (z_t, x0, t, s) -> z_s

SOLVERS = ("euler", "euler_maruyama", "ddpm", "dpmpp_2m", "heun")
TIME_SPACINGS = ("uniform", "learned", "trailing")
_ALPHA_FLOOR = 1e-3  # clamps log(alpha) at alpha = 0 (t = 1): lambda >= log(1e-3)


# ---- time grids -----------------------------------------------------------------------------------------------------
def check_time_grid(steps: int, t_max: float, t_min: float) -> None:
    """The rule for a time grid's settings: a positive integer number of steps and 0 <= t_min < t_max <= 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}.")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (t_max, t_min))
    if not numbers or not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"Need 0 <= t_min < t_max <= 1, got t_min={t_min!r}, t_max={t_max!r}.")


def uniform_timesteps(steps: int, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    """S evenly spaced times from t_max down to t_min: (S,). One step is just [t_max]."""
    check_time_grid(steps, t_max, t_min)
    if steps == 1:
        return torch.tensor([float(t_max)])
    return torch.linspace(float(t_max), float(t_min), steps)


def trailing_timesteps(steps: int, t_max: float = 1.0) -> torch.Tensor:
    """S times t_max (1 - i / S), i = 0 .. S-1 ("trailing" spacing): the grid ends one step before t = 0, so the
    final jump to 0 is a step of the same size, and the grid of S steps is every other point of the grid of 2S
    (the grids of progressive distillation). (S,)."""
    check_time_grid(steps, t_max, 0.0)
    return float(t_max) * (1.0 - torch.arange(steps, dtype=torch.float32) / steps)


def learned_timesteps(steps: int, probs: torch.Tensor, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    """S times from t_max down to t_min placed by the learned warping: evenly spaced in the CDF of the training
    density (equal loss increase between consecutive steps), mapped back to t: (S,)."""
    check_time_grid(steps, t_max, t_min)
    if steps == 1:
        return torch.tensor([float(t_max)])
    probs = probs.detach().float().cpu()
    ends = warp_cdf(torch.tensor([float(t_max), float(t_min)]), probs)
    grid = warp(torch.linspace(float(ends[0]), float(ends[1]), steps), probs)
    grid[0], grid[-1] = float(t_max), float(t_min)
    return grid


def network_calls(solver: str, steps: int) -> int:
    """Denoiser calls the solver makes for a grid of `steps` times."""
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}; choose one of {SOLVERS}.")
    return 2 * steps - 1 if solver == "heun" else steps


# ---- helpers --------------------------------------------------------------------------------------------------------
def _col(x: torch.Tensor) -> torch.Tensor:
    return x.view(-1, 1, 1)  # (B,) -> (B, 1, 1), broadcast over (N, D)


def _lambda(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(alpha.clamp_min(_ALPHA_FLOOR)) - torch.log(sigma.clamp_min(1e-12))


def ddim_step(z: torch.Tensor, x0: torch.Tensor, at: torch.Tensor, st: torch.Tensor, as_: torch.Tensor,
              ss: torch.Tensor) -> torch.Tensor:
    """z_s = alpha_s x0 + sigma_s eps_hat, written without dividing by alpha (exact at alpha_t = 0)."""
    ratio = _col(ss / st)
    return ratio * z + _col(as_ - at * ss / st) * x0


def _prepare(z: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    if z.dim() != 3:
        raise ValueError(f"z must have shape (batch, num_latents, latent_dim), got {tuple(z.shape)}.")
    timesteps = torch.as_tensor(timesteps, dtype=torch.float32).flatten()
    if timesteps.numel() == 0 or (timesteps[1:] >= timesteps[:-1]).any():
        raise ValueError("timesteps must be a non-empty, strictly decreasing grid of times in [0, 1].")
    return timesteps


def _times(t: float, z: torch.Tensor) -> torch.Tensor:
    return torch.full((z.shape[0],), float(t), device=z.device)  # (B,)


def integrate(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, update: UpdateFn,
              callback: StepCallback | None = None) -> torch.Tensor:
    """The loop every solver shares: at each grid time t call the denoiser, let `callback` see (or replace) x0_hat,
    then move z_t to the next time s with `update(z_t, x0_hat, t, s)`. Returns the last x0_hat (B, N, D)."""
    timesteps = _prepare(z, timesteps)
    x0 = z
    for i, t in enumerate(timesteps.tolist()):
        tt = _times(t, z)
        x0 = denoise(z, tt)  # (B, N, D)
        if callback is not None:
            replaced = callback(i, t, z, x0)
            x0 = x0 if replaced is None else replaced
        if i + 1 < len(timesteps):
            z = update(z, x0, tt, _times(timesteps[i + 1], z))
    return x0


# ---- solvers --------------------------------------------------------------------------------------------------------
def sample_euler(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
                 callback: StepCallback | None = None) -> torch.Tensor:
    """Deterministic DDIM (Euler on the probability-flow ODE, x0-parameterised). Returns x0 (B, N, D); S calls."""
    def update(z, x0, t, s):
        (at, st), (as_, ss) = alpha_sigma(t), alpha_sigma(s)
        return ddim_step(z, x0, at, st, as_, ss)

    return integrate(denoise, z, timesteps, update, callback)


def sample_euler_maruyama(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
                          generator: Generators = None, noise_scale: float = 1.0,
                          callback: StepCallback | None = None) -> torch.Tensor:
    """Euler-Maruyama on the reverse SDE in log-SNR time; `noise_scale` multiplies the injected noise. S calls."""
    def update(z, x0, t, s):
        at, st = alpha_sigma(t)
        as_, ss = alpha_sigma(s)
        dl = (2.0 * (_lambda(as_, ss) - _lambda(at, st))).clamp_min(0.0)  # (B,) log-SNR increase
        drift = _col(dl) * (_col(0.5 * st**2 - 1.0) * z + _col(at) * x0)
        xi = normal_rows(z.shape, generator, z.device)
        return z + drift + noise_scale * _col(st * dl.sqrt()) * xi

    return integrate(denoise, z, timesteps, update, callback)


def sample_ddpm(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
                generator: Generators = None, noise_scale: float = 1.0,
                callback: StepCallback | None = None) -> torch.Tensor:
    """Ancestral sampling from q(z_s | z_t, x0_hat); `noise_scale` multiplies the posterior std. S calls."""
    def update(z, x0, t, s):
        at, st = alpha_sigma(t)
        as_, ss = alpha_sigma(s)
        a_ts = at / as_
        s2_ts = (st**2 - a_ts**2 * ss**2).clamp_min(0.0)
        mean = _col(a_ts * ss**2 / st**2) * z + _col(as_ * s2_ts / st**2) * x0
        std = (s2_ts * ss**2 / st**2).sqrt()
        return mean + noise_scale * _col(std) * normal_rows(z.shape, generator, z.device)

    return integrate(denoise, z, timesteps, update, callback)


def sample_dpmpp_2m(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
                    callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M): deterministic, second order from the second step on, one call per step. S calls."""
    previous: dict[str, torch.Tensor] = {}  # the last step's x0_hat and h

    def update(z, x0, t, s):
        at, st = alpha_sigma(t)
        as_, ss = alpha_sigma(s)
        h = _lambda(as_, ss) - _lambda(at, st)  # (B,) > 0
        d = x0
        if previous:
            half_inv_r = _col(h / (2.0 * previous["h"]))  # 1 / (2 r)
            d = (1.0 + half_inv_r) * x0 - half_inv_r * previous["x0"]
        previous.update(x0=x0, h=h)
        return ddim_step(z, d, at, st, as_, ss)

    return integrate(denoise, z, timesteps, update, callback)


def sample_heun(denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
                callback: StepCallback | None = None) -> torch.Tensor:
    """Heun predictor-corrector on the DDIM update: second order, 2S - 1 calls (the final jump needs one)."""
    def update(z, x0, t, s):
        (at, st), (as_, ss) = alpha_sigma(t), alpha_sigma(s)
        x0_corrected = denoise(ddim_step(z, x0, at, st, as_, ss), s)
        return ddim_step(z, 0.5 * (x0 + x0_corrected), at, st, as_, ss)

    return integrate(denoise, z, timesteps, update, callback)


def sample(solver: str, denoise: DenoiseFn, z: torch.Tensor, timesteps: torch.Tensor, alpha_sigma: AlphaSigmaFn,
           generator: Generators = None, noise_scale: float = 1.0,
           callback: StepCallback | None = None) -> torch.Tensor:
    """Dispatch on the solver name; returns the final x0 (B, N, D)."""
    if solver == "euler":
        return sample_euler(denoise, z, timesteps, alpha_sigma, callback)
    if solver == "euler_maruyama":
        return sample_euler_maruyama(denoise, z, timesteps, alpha_sigma, generator, noise_scale, callback)
    if solver == "ddpm":
        return sample_ddpm(denoise, z, timesteps, alpha_sigma, generator, noise_scale, callback)
    if solver == "dpmpp_2m":
        return sample_dpmpp_2m(denoise, z, timesteps, alpha_sigma, callback)
    if solver == "heun":
        return sample_heun(denoise, z, timesteps, alpha_sigma, callback)
    raise ValueError(f"Unknown solver {solver!r}; choose one of {SOLVERS}.")


__all__ = [
    "SOLVERS",
    "AlphaSigmaFn",
    "DenoiseFn",
    "StepCallback",
    "TIME_SPACINGS",
    "check_time_grid",
    "ddim_step",
    "integrate",
    "learned_timesteps",
    "network_calls",
    "sample",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "trailing_timesteps",
    "uniform_timesteps",
]
