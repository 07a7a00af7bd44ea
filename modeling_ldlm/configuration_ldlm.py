"""LDLMConfig: the sizes and the training objective of a Latent Diffusion Language Model.

The config owns only what changes the weights or the training objective: the frozen LM's own config
(nested, any `AutoModel` family), which of its hidden layers is read, the latent shape (N latents of width D), the
sizes of the encoder E, denoiser f, latent decoder G and token decoder T, the noise schedule
`alpha_t = 1 / sqrt(1 + d^2 tan^2(pi t / 2))`, the decoder-input noise sigma_dec, the loss coefficients of
`L = c_diff L_diff + c_h L_h + c_w L_w` and the recipe switches. Sampler knobs live in `LDLMGenerationConfig`,
training knobs in `train/`.

Validated as transformers' own configs are: `@strict` (huggingface_hub.dataclasses) checks each field's type and its
`interval()` or `Literal` values whenever it is set, and `validate_architecture` holds the rules that relate fields.
Every refusal is an `LDLMConfigError`, a `ValueError` naming the field, its value and what is allowed. (No
`from __future__ import annotations` here: `@strict` reads the field types as objects, and skips string ones.)
"""

from typing import Any, Literal

import transformers
from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from packaging.version import Version

# Checked first, because a checkpoint's remote code never sees the package's requirements: the config classes below
# are keyword-only dataclasses with nested sub-configs, which exist from transformers 5.20 on.
SUPPORTED_TRANSFORMERS = ">=5.20,<6"
if not Version("5.20") <= Version(transformers.__version__) < Version("6"):
    raise ImportError(f"LDLM needs transformers{SUPPORTED_TRANSFORMERS}, but transformers {transformers.__version__} is "
                      f"installed: pip install 'transformers{SUPPORTED_TRANSFORMERS}'.")

from transformers import AutoConfig, PreTrainedConfig  # noqa: E402
from transformers.configuration_utils import SubConfigSpec  # noqa: E402
from transformers.utils.type_validators import interval, positive_int_field  # noqa: E402

# Field validators (`interval(...)(default=...)` makes a dataclass field that `@strict` checks on every assignment).
at_least_one = interval(min=1)
non_negative = interval(min=0)
positive = interval(min=0, exclude_min=True)
# Float fields also take ints (a config written with `dropout=0` must load); bools are refused.
Number = int | float

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


class LDLMConfigError(ValueError, StrictDataclassError):
    """A value LDLMConfig refuses: a `ValueError`, as LDLM raises for every bad value, and a `StrictDataclassError`,
    as transformers' `@strict` configs raise."""


def raise_as_value_errors(cls: type) -> type:
    """Re-raise what `@strict` raises on assignment and in `validate()` (huggingface_hub's
    StrictDataclassFieldValidationError and StrictDataclassClassValidationError, which are not ValueErrors) as
    `LDLMConfigError`, naming the field and its value. Applied on top of `@strict`."""
    strict_setattr, strict_validate = cls.__setattr__, cls.validate

    def __setattr__(self: Any, name: str, value: Any) -> None:
        try:
            strict_setattr(self, name, value)
        except StrictDataclassError as err:
            raise LDLMConfigError(f"LDLMConfig.{name}={value!r} is invalid: {err.__cause__}") from err

    def validate(self: Any) -> None:
        try:
            strict_validate(self)
        except StrictDataclassError as err:
            raise LDLMConfigError(str(err.__cause__)) from err

    cls.__setattr__ = __setattr__
    cls.validate = validate
    return cls


@raise_as_value_errors
@strict
class LDLMConfig(PreTrainedConfig):
    r"""
    Configuration of [`LDLMForDiffusionGeneration`].

    Args:
        frozen_lm_config (`PreTrainedConfig` or `dict`): config of the frozen pretrained LM (any `AutoModel` family).
        frozen_lm_layer (`int`): which entry of the LM's `hidden_states` tuple is read (0 = embeddings, negative
            counts from the end); within [-(layers + 1), layers] of the frozen LM.
        max_sequence_length (`int`, >= 1): tokens per sequence L; the decoders always produce this many positions.
        num_latents (`int`, >= 1): N, the number of continuous latents per sequence, at most 8 L.
        latent_dim (`int`, >= 1): D, the width of each latent.
        {encoder,denoiser,latent_decoder,token_decoder}_{hidden_size,num_layers,num_heads} (`int`): part sizes;
            widths and head counts >= 1, each width divisible by its head count; layers >= 1 (the token decoder: >= 0).
        token_head (`"linear"` or `"frozen_embeddings"`): the token decoder's vocabulary head: a linear layer
            (default) or, opt-in, logits = (P f) E^T + b over the frozen LM's input embeddings E (V, H), which must
            be (vocab_size, frozen LM hidden size); only P and b train, so rare token types decode from the start.
        mlp_ratio (`float`, > 0): MLP width as a multiple of the block width.
        dropout (`float`, in [0, 1)): dropout of every attention and MLP of the trained parts.
        layer_norm_eps (`float`, >= 0): epsilon of the layer norms.
        noise_schedule (`"tan"` or `"cosine"`): `"tan"` (tan-d, VP) or `"cosine"` (d = 1).
        noise_schedule_d (`float`, > 0): d of the tan-d schedule.
        decoder_noise_std (`float`, >= 0): sigma_dec, std of the Gaussian noise added to z0 before the latent decoder
            while training (0 disables it).
        latent_locality (`float`, >= 0): 0 (the paper's encoder and latent decoder) disables it. > 0: a fixed Gaussian
            bias -(p - c_i)^2 / (2 s^2), s = latent_locality * L / N, c_i = (i + 1/2) L / N, added to the
            cross-attention logits between latent i and position p in the encoder and the latent decoder, so that
            each latent starts out reading and writing its own stretch of about s positions (an opt-in prior for long
            sequences, where learned queries that attend evenly everywhere learn slowly).
        decoder_loss (`"mse"` or `"ce"`): `"mse"` (paper: regress the frozen hidden states) or `"ce"` (ablation:
            cross-entropy through the latents into the encoder).
        token_loss_stop_gradient (`bool`): the token loss sees sg(h_hat) and trains only the token decoder.
        context_conditioning (`bool`): opt-in prompt conditioning: the denoiser cross-attends to the frozen LM's
            normalised states of a prefix of each training sequence (the LM run on the prefix alone), and
            `generate(prompt)` denoises with the prompt as that context, without a backward pass.
        context_dropout (`float`, in [0, 1]): share of training rows whose context is dropped (the denoiser also
            learns to sample without a prompt; needed for classifier-free guidance). Only read with
            `context_conditioning`.
        self_conditioning_prob (`float`, in [0, 1]): probability of a self-conditioning pass per training step.
            Configs written before the field was renamed call it `self_condition_prob`; it is read as this field.
        loss_{diffusion,hidden,token}_weight (`float`, >= 0): loss coefficients.
        timestep_bins (`int`, >= 1): bins of the adaptive timestep sampler's loss curve.
        initializer_range (`float`, >= 0): std of the normal initialisation of the trained parts.
        vocab_size, pad_token_id, bos_token_id, eos_token_id (`int`, *optional*): the frozen LM tokenizer's; default
            to the frozen LM config's; the ids lie in [0, vocab_size). `eos_token_id` ends a generated row
            (BERT-like: [SEP]; GPT-2-like: <|endoftext|>); without one, generation never cuts a row.
    """

    model_type = "ldlm"
    sub_configs_defaults = {"frozen_lm_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    frozen_lm_config: PreTrainedConfig | dict[str, Any] | None = None
    frozen_lm_layer: int = -1
    max_sequence_length: int = at_least_one(default=64)
    num_latents: int = at_least_one(default=16)
    latent_dim: int = at_least_one(default=64)
    encoder_hidden_size: int = at_least_one(default=256)
    encoder_num_layers: int = at_least_one(default=2)
    encoder_num_heads: int = at_least_one(default=4)
    denoiser_hidden_size: int = at_least_one(default=256)
    denoiser_num_layers: int = at_least_one(default=4)
    denoiser_num_heads: int = at_least_one(default=4)
    latent_decoder_hidden_size: int = at_least_one(default=256)
    latent_decoder_num_layers: int = at_least_one(default=2)
    latent_decoder_num_heads: int = at_least_one(default=4)
    token_decoder_hidden_size: int = at_least_one(default=256)
    token_decoder_num_layers: int = non_negative(default=1)
    token_decoder_num_heads: int = at_least_one(default=4)
    token_head: Literal["linear", "frozen_embeddings"] = "linear"
    mlp_ratio: Number = positive(default=4.0)
    dropout: Number = interval(min=0, max=1, exclude_max=True)(default=0.0)
    layer_norm_eps: Number = non_negative(default=1e-6)
    noise_schedule: Literal["tan", "cosine"] = "tan"
    noise_schedule_d: Number = positive(default=3.0)
    decoder_noise_std: Number = non_negative(default=3.0)
    latent_locality: Number = non_negative(default=0.0)
    decoder_loss: Literal["mse", "ce"] = "mse"
    token_loss_stop_gradient: bool = True
    context_conditioning: bool = False
    context_dropout: Number = interval(min=0, max=1)(default=0.1)
    self_conditioning_prob: Number = interval(min=0, max=1)(default=0.5)
    loss_diffusion_weight: Number = non_negative(default=1.0)
    loss_hidden_weight: Number = non_negative(default=1.0)
    loss_token_weight: Number = non_negative(default=1.0)
    timestep_bins: int = at_least_one(default=64)
    initializer_range: Number = non_negative(default=0.02)
    vocab_size: int | None = positive_int_field(default=None)  # None: the frozen LM's
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        if "self_condition_prob" in kwargs:  # the field's name in configs written before it was renamed
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

    @property
    def frozen_lm_hidden_size(self) -> int:
        return int(self.frozen_lm_config.hidden_size)

    @property
    def frozen_lm_num_layers(self) -> int:
        return int(self.frozen_lm_config.num_hidden_layers)

    def validate_architecture(self) -> None:
        """Part of `@strict` validation: the rules that relate fields (each field's own range is checked when it is
        set). Raises a ValueError naming the field and what to do."""
        super().validate_architecture()
        for part in ("encoder", "denoiser", "latent_decoder", "token_decoder"):
            width, heads = getattr(self, f"{part}_hidden_size"), getattr(self, f"{part}_num_heads")
            if width % heads != 0:
                raise ValueError(f"LDLMConfig.{part}_hidden_size={width} is not divisible by {part}_num_heads={heads}; "
                                 "pick a head count that divides the width.")
        if self.num_latents > self.max_sequence_length * 8:
            raise ValueError(f"LDLMConfig.num_latents={self.num_latents} is far more than max_sequence_length="
                             f"{self.max_sequence_length}; latents should compress the sequence (N <= L is typical).")
        layers, layer = self.frozen_lm_num_layers, self.frozen_lm_layer
        if not -(layers + 1) <= layer <= layers:
            raise ValueError(f"LDLMConfig.frozen_lm_layer={layer} is out of range for a frozen LM with {layers} layers: "
                             f"use an integer in [{-(layers + 1)}, {layers}] (0 = embeddings, -1 = last layer).")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"LDLMConfig.{name}={value} is not a token id of the vocabulary (size "
                                 f"{self.vocab_size}); take the special ids from the frozen LM's tokenizer.")


__all__ = ["PRESETS", "LDLMConfig", "LDLMConfigError"]
