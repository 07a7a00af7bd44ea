"""LDLMConfig: the sizes and the training objective of a Latent Diffusion Language Model.

The config owns only what changes the weights or the training objective: the frozen LM's own config
(nested, any `AutoModel` family), which of its hidden layers is read, the latent shape (N latents of width D), the
sizes of the encoder E, denoiser f, latent decoder G and token decoder T, the noise schedule
`alpha_t = 1 / sqrt(1 + d^2 tan^2(pi t / 2))`, the decoder-input noise sigma_dec, the loss coefficients of
`L = c_diff L_diff + c_h L_h + c_w L_w` and the recipe switches. Sampler knobs live in `LDLMGenerationConfig`,
training knobs in `train/`.
"""

from __future__ import annotations

from typing import Any

import transformers
from packaging.version import Version

# Checked first, because a checkpoint's remote code never sees the package's requirements: the config classes below
# are keyword-only dataclasses with nested sub-configs, which exist from transformers 5.20 on.
SUPPORTED_TRANSFORMERS = ">=5.20,<6"
if not Version("5.20") <= Version(transformers.__version__) < Version("6"):
    raise ImportError(f"LDLM needs transformers{SUPPORTED_TRANSFORMERS}, but transformers {transformers.__version__} is "
                      f"installed: pip install 'transformers{SUPPORTED_TRANSFORMERS}'.")

from transformers import AutoConfig, PreTrainedConfig  # noqa: E402
from transformers.configuration_utils import SubConfigSpec  # noqa: E402

NOISE_SCHEDULES = ("tan", "cosine")
DECODER_LOSSES = ("mse", "ce")

# Size presets. "paper-owt" follows the sizes a third-party re-implementation reports for the paper's OpenWebText
# model (unconfirmed): GPT-2 small frozen at layer -3, one latent per token of width 768, encoder and latent decoder
# 6 x 12 heads, DiT 12 x 12 heads, token decoder 3 layers. "cpu-small" is a 2-core size around the offline
# all-MiniLM-L6-v2 (hidden 384): N=16 latents of D=64 for 64-token sentences.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-owt": dict(
        frozen_lm_layer=-3,
        max_sequence_length=1024,
        num_latents=1024,
        latent_dim=768,
        encoder_hidden_size=768,
        encoder_num_layers=6,
        encoder_num_heads=12,
        denoiser_hidden_size=768,
        denoiser_num_layers=12,
        denoiser_num_heads=12,
        latent_decoder_hidden_size=768,
        latent_decoder_num_layers=6,
        latent_decoder_num_heads=12,
        token_decoder_hidden_size=768,
        token_decoder_num_layers=3,
        token_decoder_num_heads=12,
        noise_schedule="tan",
        noise_schedule_d=3.0,
        decoder_noise_std=3.0,
    ),
    "cpu-small": dict(
        frozen_lm_layer=-1,
        max_sequence_length=64,
        num_latents=16,
        latent_dim=64,
        encoder_hidden_size=256,
        encoder_num_layers=2,
        encoder_num_heads=4,
        denoiser_hidden_size=256,
        denoiser_num_layers=4,
        denoiser_num_heads=4,
        latent_decoder_hidden_size=256,
        latent_decoder_num_layers=2,
        latent_decoder_num_heads=4,
        token_decoder_hidden_size=256,
        token_decoder_num_layers=1,
        token_decoder_num_heads=4,
        decoder_noise_std=0.5,
    ),
}


class LDLMConfig(PreTrainedConfig):
    r"""
    Configuration of [`LDLMForDiffusionGeneration`].

    Args:
        frozen_lm_config (`PreTrainedConfig` or `dict`): config of the frozen pretrained LM (any `AutoModel` family).
        frozen_lm_layer (`int`): which entry of the LM's `hidden_states` tuple is read (0 = embeddings, negative
            counts from the end).
        max_sequence_length (`int`): tokens per sequence L; the decoders always produce this many positions.
        num_latents (`int`): N, the number of continuous latents per sequence.
        latent_dim (`int`): D, the width of each latent.
        {encoder,denoiser,latent_decoder,token_decoder}_{hidden_size,num_layers,num_heads} (`int`): part sizes.
        mlp_ratio (`float`): MLP width as a multiple of the block width.
        noise_schedule (`str`): `"tan"` (tan-d, VP) or `"cosine"` (d = 1).
        noise_schedule_d (`float`): d of the tan-d schedule.
        decoder_noise_std (`float`): sigma_dec, std of the Gaussian noise added to z0 before the latent decoder while
            training (0 disables it).
        latent_locality (`float`): 0 (the paper's encoder and latent decoder) disables it. > 0: a fixed Gaussian
            bias -(p - c_i)^2 / (2 s^2), s = latent_locality * L / N, c_i = (i + 1/2) L / N, added to the
            cross-attention logits between latent i and position p in the encoder and the latent decoder, so that
            each latent starts out reading and writing its own stretch of about s positions (an opt-in prior for long
            sequences, where learned queries that attend evenly everywhere learn slowly).
        decoder_loss (`str`): `"mse"` (paper: regress the frozen hidden states) or `"ce"` (ablation: cross-entropy
            through the latents into the encoder).
        token_loss_stop_gradient (`bool`): the token loss sees sg(h_hat) and trains only the token decoder.
        self_conditioning_prob (`float`): probability of a self-conditioning pass per training step.
        loss_{diffusion,hidden,token}_weight (`float`): loss coefficients.
        timestep_bins (`int`): bins of the adaptive timestep sampler's loss curve.
        vocab_size, pad_token_id, bos_token_id, eos_token_id (`int`, *optional*): the frozen LM tokenizer's; default
            to the frozen LM config's. `eos_token_id` ends a generated row (BERT-like: [SEP]; GPT-2-like:
            <|endoftext|>); without one, generation never cuts a row.
    """

    model_type = "ldlm"
    sub_configs_defaults = {"frozen_lm_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    frozen_lm_config: PreTrainedConfig | dict[str, Any] | None = None
    frozen_lm_layer: int = -1
    max_sequence_length: int = 64
    num_latents: int = 16
    latent_dim: int = 64
    encoder_hidden_size: int = 256
    encoder_num_layers: int = 2
    encoder_num_heads: int = 4
    denoiser_hidden_size: int = 256
    denoiser_num_layers: int = 4
    denoiser_num_heads: int = 4
    latent_decoder_hidden_size: int = 256
    latent_decoder_num_layers: int = 2
    latent_decoder_num_heads: int = 4
    token_decoder_hidden_size: int = 256
    token_decoder_num_layers: int = 1
    token_decoder_num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    layer_norm_eps: float = 1e-6
    noise_schedule: str = "tan"
    noise_schedule_d: float = 3.0
    decoder_noise_std: float = 3.0
    latent_locality: float = 0.0
    decoder_loss: str = "mse"
    token_loss_stop_gradient: bool = True
    self_conditioning_prob: float = 0.5
    loss_diffusion_weight: float = 1.0
    loss_hidden_weight: float = 1.0
    loss_token_weight: float = 1.0
    timestep_bins: int = 64
    initializer_range: float = 0.02
    vocab_size: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if "self_condition_prob" in kwargs:  # the field's name in checkpoints saved before version 0.2
            self.self_conditioning_prob = kwargs.pop("self_condition_prob")
        super().__post_init__(**kwargs)
        lm = self.frozen_lm_config
        if self.vocab_size is None:
            self.vocab_size = lm.vocab_size
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if getattr(self, name) is None and isinstance(getattr(lm, name, None), int):
                setattr(self, name, getattr(lm, name))
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id
        self.validate_fields()

    @property
    def frozen_lm_hidden_size(self) -> int:
        return int(self.frozen_lm_config.hidden_size)

    @property
    def frozen_lm_num_layers(self) -> int:
        return int(self.frozen_lm_config.num_hidden_layers)

    def validate_fields(self) -> None:
        """Raise a ValueError naming the first invalid field and what to do about it."""
        self._validate_sizes()
        self._validate_objective()
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value < self.vocab_size):
                raise ValueError(
                    f"LDLMConfig.{name}={value!r} is not a token id of the vocabulary (size {self.vocab_size}); "
                    "take the special ids from the frozen LM's tokenizer."
                )

    def _validate_sizes(self) -> None:
        positive_ints = ["max_sequence_length", "num_latents", "latent_dim", "timestep_bins", "vocab_size"]
        for part in ("encoder", "denoiser", "latent_decoder", "token_decoder"):
            positive_ints += [f"{part}_hidden_size", f"{part}_num_heads"]
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"LDLMConfig.{name} must be a positive integer, got {value!r}.")
        for part in ("encoder", "denoiser", "latent_decoder", "token_decoder"):
            layers = getattr(self, f"{part}_num_layers")
            if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
                raise ValueError(f"LDLMConfig.{part}_num_layers must be an integer >= 0, got {layers!r}.")
            width, heads = getattr(self, f"{part}_hidden_size"), getattr(self, f"{part}_num_heads")
            if width % heads != 0:
                raise ValueError(
                    f"LDLMConfig.{part}_hidden_size={width} is not divisible by {part}_num_heads={heads}; "
                    "pick a head count that divides the width."
                )
        for part in ("encoder", "denoiser", "latent_decoder"):
            if getattr(self, f"{part}_num_layers") < 1:
                raise ValueError(f"LDLMConfig.{part}_num_layers must be >= 1, got 0.")
        if self.num_latents > self.max_sequence_length * 8:
            raise ValueError(
                f"LDLMConfig.num_latents={self.num_latents} is far more than max_sequence_length="
                f"{self.max_sequence_length}; latents should compress the sequence (N <= L is typical)."
            )
        n_layers = self.frozen_lm_num_layers
        layer = self.frozen_lm_layer
        if isinstance(layer, bool) or not isinstance(layer, int) or not -(n_layers + 1) <= layer <= n_layers:
            raise ValueError(
                f"LDLMConfig.frozen_lm_layer={layer!r} is out of range for a frozen LM with {n_layers} layers: "
                f"use an integer in [{-(n_layers + 1)}, {n_layers}] (0 = embeddings, -1 = last layer)."
            )

    def _validate_objective(self) -> None:
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(
                f"LDLMConfig.noise_schedule={self.noise_schedule!r} is unknown; choose one of {NOISE_SCHEDULES}."
            )
        if self.decoder_loss not in DECODER_LOSSES:
            raise ValueError(f"LDLMConfig.decoder_loss={self.decoder_loss!r} is unknown; choose one of {DECODER_LOSSES}.")
        non_negative = ["decoder_noise_std", "latent_locality", "dropout", "loss_diffusion_weight", "loss_hidden_weight",
                        "loss_token_weight", "layer_norm_eps", "initializer_range"]
        for name in non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"LDLMConfig.{name} must be a number >= 0, got {value!r}.")
        if not self.noise_schedule_d > 0:
            raise ValueError(f"LDLMConfig.noise_schedule_d must be > 0, got {self.noise_schedule_d!r}.")
        if not 0.0 <= self.self_conditioning_prob <= 1.0:
            raise ValueError(f"LDLMConfig.self_conditioning_prob must be in [0, 1], got {self.self_conditioning_prob!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LDLMConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.mlp_ratio > 0:
            raise ValueError(f"LDLMConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}.")


__all__ = ["LDLMConfig", "PRESETS"]
