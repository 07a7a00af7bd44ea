"""Two attempts at keeping the latents from collapsing once gamma reaches 1: train/run.py with one change each.

    python -m benchmarks.probes.joint_variants decoder_noise_ramp --sigma_joint 3.0 -- \\
        train/configs/quickstart.yaml --output_dir runs/ramp3
    python -m benchmarks.probes.joint_variants batch_standardised -- \\
        train/configs/quickstart.yaml --output_dir runs/batch-standardised

Once the encoder receives the full diffusion gradient (gamma = 1), the quickstart's latents lose most of their
between-sentence variance: a sentence-independent offset takes the energy that the per-latent LayerNorm fixes, and
what is left is easy to denoise (the latent variance share falls from ~0.67 to ~0.12). Each variant tries one remedy:

- `decoder_noise_ramp`: sigma_dec(s) = sigma_dec + (sigma_joint - sigma_dec) * gamma(s). The paper reports a large
  decoder-input noise (3.0); at the start of a short run it slows the autoencoder down, so the ramp reaches it only
  as the encoder starts to receive the diffusion gradient, when the decoder needs latents that vary a lot to read
  them through that noise.
- `batch_standardised`: after the encoder's LayerNorm, each (latent, channel) is standardised over the batch
  (running statistics at evaluation), so no sentence-independent offset can carry the latents' energy.

Neither is part of the package (the trained folders load as plain LDLMs; `batch_standardised` adds two encoder
buffers that loading ignores, and generation never runs the encoder); BENCHMARKS section 5 reports what they did.
"""

from __future__ import annotations

import argparse
import sys
import types
from typing import Any

import torch

import train.run as run
from train.models import build_model
from train.trainer import LDLMTrainer

RUNNING_DECAY, VARIANCE_EPS = 0.99, 1e-4


def ramped_decoder_noise(gamma: float, sigma_start: float, sigma_joint: float) -> float:
    """sigma_dec at warmup weight gamma in [0, 1]: sigma_start at gamma = 0, sigma_joint at gamma = 1."""
    return sigma_start + (sigma_joint - sigma_start) * gamma


def decoder_noise_ramp_trainer(sigma_joint: float) -> type[LDLMTrainer]:
    """An LDLMTrainer whose training steps use the ramped sigma_dec (the saved config keeps the preset's)."""

    class DecoderNoiseRampTrainer(LDLMTrainer):
        def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
            config = model.config
            preset = config.decoder_noise_std
            if model.training:
                config.decoder_noise_std = ramped_decoder_noise(self.current_gamma(), preset, sigma_joint)
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                config.decoder_noise_std = preset

    return DecoderNoiseRampTrainer


def standardise_latents(encoder: torch.nn.Module, num_latents: int, latent_dim: int) -> None:
    """Make `encoder` return latents standardised per (latent, channel): over the batch in training (and update the
    running statistics), with the running statistics in evaluation."""
    encoder.register_buffer("running_mean", torch.zeros(num_latents, latent_dim))
    encoder.register_buffer("running_var", torch.ones(num_latents, latent_dim))
    layer_normed = encoder.forward

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        z = layer_normed(hidden, attention_mask)  # (B, N, D)
        if self.training:
            mean, var = z.mean(0), z.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), 1 - RUNNING_DECAY)
                self.running_var.lerp_(var.detach(), 1 - RUNNING_DECAY)
        else:
            mean, var = self.running_mean, self.running_var
        return (z - mean) / torch.sqrt(var + VARIANCE_EPS)

    encoder.forward = types.MethodType(forward, encoder)


def batch_standardised_model(model_args: Any):
    """train/run.py's model, its encoder's latents standardised over the batch."""
    model = build_model(model_args)
    standardise_latents(model.encoder, model.config.num_latents, model.config.latent_dim)
    return model


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["decoder_noise_ramp", "batch_standardised"])
    parser.add_argument("--sigma_joint", type=float, default=3.0, help="decoder_noise_ramp: sigma_dec at gamma = 1")
    args = parser.parse_args(argv[:split])
    if split == len(argv):
        parser.error("pass `--` and then train/run.py's arguments after the variant (see the module docstring).")
    if args.sigma_joint < 0:
        parser.error("--sigma_joint must be >= 0.")
    trainer_class, model_builder = run.LDLMTrainer, run.build_model
    try:
        if args.variant == "decoder_noise_ramp":
            run.LDLMTrainer = decoder_noise_ramp_trainer(args.sigma_joint)
        else:
            run.build_model = batch_standardised_model
        return run.main(argv[split + 1:])
    finally:
        run.LDLMTrainer, run.build_model = trainer_class, model_builder


if __name__ == "__main__":
    main()
