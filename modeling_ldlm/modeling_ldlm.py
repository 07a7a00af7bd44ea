"""LDLMForDiffusionGeneration: the latent diffusion language model and its joint training loss.

Meshchaninov et al., "How to Train Your Latent Diffusion Language Model Jointly With the Latent Space"
(arXiv 2605.07933). One training step, for tokens w (B, L):
    h   = norm(LM(w)[layer])                                    frozen, normalised with persistent statistics
    z0  = E(h)                                                  (B, N, D)
    z_t = alpha_t z~0 + sigma_t eps,  z~0 = sg(z0) + gamma (z0 - sg(z0))
    L_diff = || f(z_t, t, x0_sc) - z~0 ||^2                     gamma = encoder_grad_scale (the warmup)
    h^  = G(z0 + sigma_dec eps')                                training only noise
    L_h = || h^ - h ||^2 over non-pad positions                 (decoder_loss="mse")
    L_w = CE(T(sg(h^)), w) over non-pad positions               (stop-gradient switchable)
    L   = c_diff L_diff + c_h L_h + c_w L_w
With decoder_loss="ce" (the ablation), L_w flows through G into E and L_h is reported but not optimised.
A conditional LDLM (context_conditioning) denoises f(z_t, t, x0_sc, c) with c = norm(LM(w_<k)[layer]), the frozen
LM run on a random prefix of k tokens alone (k = 0, no context, for a share of the rows): see context.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .adaptive_timesteps import AdaptiveTimestepSampler, initial_curve
from .configuration_ldlm import PRESETS, LDLMConfig
from .context import draw_context_lengths, prefix_mask
from .decoders import FrozenEmbeddingHead, LatentDecoder, TokenDecoder
from .denoiser import LatentDenoiser
from .encoder import LatentEncoder
from .frozen_layer import FrozenLayerReader
from .generation_config import LDLMGenerationConfig
from .generation_ldlm import LDLMGenerationMixin
from .handler import EndpointHandler  # shipped with every checkpoint: see CHECKPOINT_ENTRY_POINTS
from .layers import ATTENTION_IMPLEMENTATIONS
from .noise_schedules import add_noise, alpha_sigma
from .token_ids import check_token_batch, check_tokenizer_matches, require_end_of_sequence_id, start_of_sequence_id

# What a checkpoint carries: `save_pretrained` copies this file, configuration_ldlm.py and every module they import
# relatively, recursively (transformers' `custom_object_save`); loading with trust_remote_code copies the same set into
# the module cache, so a model loaded that way saves the same files again. A module ships only if it is imported.
# pipeline_ldlm.py (named in `config.custom_pipelines`) is imported by `text_generation_pipeline`; handler.py, which
# Inference Endpoints find by its file name and nothing here calls, is imported above for that reason alone.
CHECKPOINT_ENTRY_POINTS = {"handler.py": EndpointHandler}


@dataclass
class LDLMOutput(ModelOutput):
    """Joint loss and its terms; `loss_diffusion_per_sample` and `timesteps` feed the adaptive sampler."""

    loss: torch.Tensor | None = None
    loss_diffusion: torch.Tensor | None = None
    loss_hidden: torch.Tensor | None = None
    loss_token: torch.Tensor | None = None
    token_accuracy: torch.Tensor | None = None
    loss_diffusion_per_sample: torch.Tensor | None = None
    timesteps: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    predicted_latents: torch.Tensor | None = None


class HiddenMoments:
    """Running per-channel sums (float64) of frozen hidden states, for their mean and standard deviation."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.total_sq: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, states: torch.Tensor) -> None:
        """`states` (T, H): one row per real token."""
        states = states.double()
        self.total = self.total + states.sum(0)
        self.total_sq = self.total_sq + (states**2).sum(0)
        self.count += int(states.shape[0])

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError("Fitting the hidden-state statistics needs at least two non-pad tokens.")
        mean = self.total / self.count
        std = (self.total_sq / self.count - mean**2).clamp_min(1e-10).sqrt()
        return mean.float(), std.float().clamp_min(1e-4)


class LDLMPreTrainedModel(PreTrainedModel):
    config_class = LDLMConfig
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock", "DiTBlock"]
    # Every attention of LDLM's own layers calls torch's scaled_dot_product_attention (layers.Attention), unless
    # `config._attn_implementation` is "eager"; the frozen LM follows its own config (set with the same call).
    _supports_sdpa = True

    def get_correct_attn_implementation(self, requested_attention: str | None, is_init_check: bool = False) -> str:
        """The attention implementation `from_pretrained(attn_implementation=...)` and `set_attn_implementation`
        accept for LDLM's own layers: "sdpa" (the default) or "eager"; anything else raises a ValueError saying why."""
        if requested_attention is not None and requested_attention not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation={requested_attention!r} is not available for LDLM's own attention layers: they "
                f"run {' or '.join(repr(a) for a in ATTENTION_IMPLEMENTATIONS)} (torch's scaled_dot_product_attention, "
                "which picks a flash, memory-efficient or math kernel itself, or the same softmax written out); their "
                "masks are key padding and the latent-locality bias, and no other kernel is wired to them. The frozen "
                "LM alone can use one: set_attn_implementation({'frozen_lm_config': ...}).")
        return super().get_correct_attn_implementation(requested_attention, is_init_check)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (LatentEncoder,)):
            init.normal_(module.latent_queries, std=std)
        elif isinstance(module, LatentDenoiser):
            init.normal_(module.position_embedding, std=std)
            if module.null_context is not None:
                init.normal_(module.null_context, std=std)
        elif isinstance(module, LatentDecoder):
            init.normal_(module.position_queries, std=std)
            init.normal_(module.latent_position, std=std)
        elif isinstance(module, FrozenEmbeddingHead):
            init.zeros_(module.bias)
        elif isinstance(module, AdaptiveTimestepSampler):
            init.copy_(module.loss_ema, initial_curve(module.loss_ema.numel()))
            init.zeros_(module.num_updates)
        elif isinstance(module, LDLMForDiffusionGeneration):
            init.zeros_(module.hidden_mean)
            init.ones_(module.hidden_std)
            init.zeros_(module.hidden_stats_fitted)
        else:
            super()._init_weights(module)


def _special_token_fields(tokenizer: Any) -> dict[str, int]:
    """vocab_size and the special ids of a new model's config, from the frozen LM's tokenizer."""
    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "bos_token_id": start_of_sequence_id(tokenizer), "eos_token_id": require_end_of_sequence_id(tokenizer)}
    return {k: v for k, v in special.items() if v is not None}


def check_local_folder_or_hub_id(name_or_path: str) -> None:
    """Raise a ValueError for a frozen-LM location that is neither an existing folder nor a Hub model id ("gpt2",
    "org/name"), instead of the Hub's "Repo id must be in the form ..." for a mistyped local path."""
    if os.path.isdir(name_or_path):
        return
    if os.path.exists(name_or_path):
        raise ValueError(f"{name_or_path!r} is a file: pass the folder that holds the LM's config.json and weights.")
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ValueError(f"The folder {name_or_path!r} does not exist (and the name is not a Hub model id such as "
                         "'gpt2' or 'org/name'): check the path.") from None


class LDLMForDiffusionGeneration(LDLMPreTrainedModel, LDLMGenerationMixin):
    """Frozen LM + latent encoder + DiT denoiser + latent decoder + token decoder, trained jointly;
    `generate` comes from `LDLMGenerationMixin` (generation_ldlm.py)."""

    _auto_class = "AutoModel"
    generation_config_class = LDLMGenerationConfig
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: LDLMConfig):
        super().__init__(config)
        self.frozen_lm = AutoModel.from_config(config.frozen_lm_config)
        self.frozen_lm.requires_grad_(False)
        hidden = config.frozen_lm_hidden_size
        self.register_buffer("hidden_mean", torch.zeros(hidden), persistent=True)
        self.register_buffer("hidden_std", torch.ones(hidden), persistent=True)
        self.register_buffer("hidden_stats_fitted", torch.zeros((), dtype=torch.bool), persistent=True)
        self.encoder = LatentEncoder(config)
        self.denoiser = LatentDenoiser(config)
        self.latent_decoder = LatentDecoder(config)
        self.token_decoder = TokenDecoder(config)
        self._bind_token_head()
        self.timestep_sampler = AdaptiveTimestepSampler(config.timestep_bins)
        self.frozen_layer_reader = FrozenLayerReader()
        self.tokenizer = None
        self.post_init()
        self.frozen_lm.eval()
        # Total length bound for generate() and for the stock text-generation pipeline (whose 256-token default
        # would not fit the canvas); a saved generation_config.json replaces it on from_pretrained.
        self.generation_config.max_length = config.max_sequence_length
        if config.context_conditioning:  # the denoiser reads the prompt: no gradient push toward it by default
            self.generation_config.guidance_scale = 0.0

    # ---- construction, loading, saving --------------------------------------------------------------------------
    @classmethod
    def from_frozen_lm(
        cls, name_or_path: str, preset: str | None = None, tokenizer: Any = None, **config_overrides: Any
    ) -> LDLMForDiffusionGeneration:
        """Start a new LDLM around a pretrained LM (a Hub model id or an existing local folder: a path that does not
        exist raises a ValueError saying so); weights of the LM are loaded, everything else is freshly initialised.
        `preset` is one of `PRESETS`; any `LDLMConfig` field overrides it."""
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
        check_local_folder_or_hub_id(str(name_or_path))
        lm = AutoModel.from_pretrained(name_or_path, use_safetensors=True)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name_or_path)
        if len(tokenizer) > lm.config.vocab_size:
            raise ValueError(f"The tokenizer of {name_or_path!r} has {len(tokenizer)} tokens but the LM embeds only "
                             f"{lm.config.vocab_size}; pass the tokenizer that belongs to this LM.")
        fields = dict(PRESETS[preset]) if preset else {}
        fields.update(config_overrides)
        for key, value in _special_token_fields(tokenizer).items():
            fields.setdefault(key, value)
        if fields.get("pad_token_id") is None:
            fields["pad_token_id"] = fields.get("eos_token_id")
        config = LDLMConfig(frozen_lm_config=lm.config, **fields)
        model = cls(config)
        missing, unexpected = model.frozen_lm.load_state_dict(lm.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise ValueError(f"Frozen LM weights do not fit: missing {missing}, unexpected {unexpected}.")
        check_tokenizer_matches(config, tokenizer, str(name_or_path))
        model.attach_tokenizer(tokenizer)
        return model

    def attach_tokenizer(self, tokenizer: Any) -> None:
        """Keep the frozen LM's tokenizer with the model (saved into checkpoints), bounded to the model's length."""
        tokenizer.model_max_length = self.config.max_sequence_length
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """`PreTrainedModel.from_pretrained` reading safetensors only (never pickle), with clear errors for a
        corrupted weights file, non-finite weights, or a tokenizer that does not belong to the config. A local
        folder's tokenizer is attached as `model.tokenizer`."""
        kwargs.setdefault("use_safetensors", True)
        name = str(pretrained_model_name_or_path)
        try:
            loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as err:
            raise ValueError(
                f"The weights of {name!r} are not a readable safetensors file ({err}); the download or the save was "
                "probably cut short. Delete the file and download it again (from_pretrained(..., "
                "force_download=True)) or save the model again.") from err
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True gives (model, info)
        model._check_loaded(name)
        return loaded

    def _check_loaded(self, name: str) -> None:
        self.frozen_lm.requires_grad_(False)  # loading materialises fresh parameters: freeze them again
        # As transformers registers a remote-code class with the auto class that loaded it, register it with
        # AutoModelForCausalLM too: the stock text-generation pipeline then accepts a model loaded with AutoModel.
        AutoModelForCausalLM.register(type(self.config), type(self), exist_ok=True)
        bad = [n for n, p in self.named_parameters() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
        if bad:
            raise ValueError(f"The weights of {name!r} hold NaN/Inf values in {bad[:5]}{' ...' if len(bad) > 5 else ''}"
                             ": the checkpoint is corrupted or training diverged before it was saved.")
        if os.path.isfile(os.path.join(name, "tokenizer_config.json")):
            # The tokenizer is the frozen LM's: given that LM's config, AutoTokenizer does not read config.json (the
            # LDLM config, which names remote code) and so never asks whether to trust it.
            tokenizer = AutoTokenizer.from_pretrained(name, config=self.config.frozen_lm_config)
            check_tokenizer_matches(self.config, tokenizer, name)
            self.attach_tokenizer(tokenizer)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save weights, config, generation_config.json, remote code (AutoModel and AutoModelForCausalLM, the
        text-generation pipeline class, and the Inference Endpoints handler.py among the modeling files), and the
        frozen LM's tokenizer."""
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.update({
            "AutoConfig": "configuration_ldlm.LDLMConfig",
            "AutoModel": "modeling_ldlm.LDLMForDiffusionGeneration",
            "AutoModelForCausalLM": "modeling_ldlm.LDLMForDiffusionGeneration",
        })
        self.config.auto_map = auto_map
        self.config.custom_pipelines = {"text-generation": {
            "impl": "pipeline_ldlm.LDLMTextGenerationPipeline", "pt": ["AutoModelForCausalLM"], "type": "text"}}
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None:
            self.attach_tokenizer(self.tokenizer)
            self.tokenizer.save_pretrained(save_directory)

    def text_generation_pipeline(self, tokenizer: Any = None, **kwargs: Any):
        """`pipeline("text-generation")` on this model object with the checkpoint's pipeline class, which joins the
        prompt and the completion as the tokenizer joins words (transformers' stock class glues them for WordPiece
        tokenizers; a pipeline built from a checkpoint folder uses this class by itself)."""
        from transformers import pipeline

        from .pipeline_ldlm import LDLMTextGenerationPipeline

        return pipeline("text-generation", model=self, tokenizer=tokenizer if tokenizer is not None else self.tokenizer,
                        pipeline_class=LDLMTextGenerationPipeline, **kwargs)

    def train(self, mode: bool = True) -> LDLMForDiffusionGeneration:
        super().train(mode)
        self.frozen_lm.eval()  # the frozen LM never trains: no dropout, ever
        return self

    def get_input_embeddings(self) -> nn.Module:
        """The frozen LM's token embeddings: the model's input embeddings (LDLM has no trainable input embeddings of
        its own; the token decoder's `lm_head` is its output layer)."""
        return self.frozen_lm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the frozen LM's token embeddings; they stay frozen, like the rest of the frozen LM."""
        self.frozen_lm.set_input_embeddings(value)
        value.requires_grad_(False)
        self._bind_token_head()

    def _bind_token_head(self) -> None:
        """A token head tied to the frozen LM's embeddings (token_head="frozen_embeddings") reads them from here."""
        if isinstance(self.token_decoder.lm_head, FrozenEmbeddingHead):
            self.token_decoder.lm_head.bind(self.frozen_lm.get_input_embeddings())

    # ---- frozen hidden states -----------------------------------------------------------------------------------
    @torch.no_grad()
    def frozen_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw hidden states of the configured layer of the frozen LM, in fp32: (B, L, H)."""
        if self.frozen_lm.training:  # never let dropout into the frozen states, whoever toggled the mode
            self.frozen_lm.eval()
        return self.frozen_layer_reader(self.frozen_lm, input_ids, attention_mask, self.config.frozen_lm_layer,
                                        self.config.frozen_lm_num_layers).float()

    def normalize_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """(h - mean) / std per channel, in fp32: (B, L, H)."""
        return (hidden.float() - self.hidden_mean.float()) / self.hidden_std.float()

    @torch.no_grad()
    def fit_hidden_statistics(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Set the per-channel mean/std of the frozen hidden states from (input_ids, attention_mask) batches."""
        moments = HiddenMoments()
        for input_ids, attention_mask in batches:
            input_ids, attention_mask = check_token_batch(
                input_ids.to(self.device), attention_mask.to(self.device), self.config.vocab_size,
                self.config.max_sequence_length)
            moments.add(self.frozen_hidden_states(input_ids, attention_mask)[attention_mask.bool()])
        self._set_hidden_statistics(moments)

    @torch.no_grad()
    def fit_hidden_statistics_from_states(self, states: Iterable[torch.Tensor]) -> None:
        """The same statistics from precomputed raw states, one (len_i, H) tensor of real tokens per example."""
        moments = HiddenMoments()
        for state in states:
            moments.add(state)
        self._set_hidden_statistics(moments)

    def _set_hidden_statistics(self, moments: HiddenMoments) -> None:
        mean, std = moments.mean_std()
        self.hidden_mean.copy_(mean)
        self.hidden_std.copy_(std)
        self.hidden_stats_fitted.fill_(True)

    # ---- the parts ----------------------------------------------------------------------------------------------
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return alpha_sigma(t, self.config.noise_schedule, self.config.noise_schedule_d)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens -> clean latents z0 (B, N, D), in the encoder's dtype; `hidden_states` (B, L, H), the raw frozen-LM
        states of `input_ids` precomputed once, skips the frozen LM."""
        input_ids, attention_mask = check_token_batch(
            input_ids, attention_mask, self.config.vocab_size, self.config.max_sequence_length)
        hidden = self._normalised_hidden(input_ids, attention_mask, hidden_states)
        return self.encoder(hidden.to(self._dtype_of(self.encoder)), attention_mask)

    def denoise(self, z_t: torch.Tensor, t: torch.Tensor, previous_x0: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One denoiser call: x0_hat (B, N, D); `previous_x0` is the self-conditioning input; a conditional model
        reads `context` (B, M, H) where `context_mask` (B, M) is True (`context_states`; None: no context)."""
        return self.denoiser(z_t, t, previous_x0, context, context_mask)

    def context_states(self, input_ids: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """The context a conditional denoiser reads: the frozen LM run on the tokens where `context_mask` (B, L) is
        True alone (a prefix of each row), its states normalised and set to 0 elsewhere: (B, L, H) fp32."""
        mask = context_mask.bool()
        states = self.frozen_hidden_states(input_ids, mask.long())
        return self.normalize_hidden(states).masked_fill(~mask[..., None], 0.0)

    def decode_hidden(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> normalised hidden states at every canvas position (B, max_sequence_length, H)."""
        return self.latent_decoder(latents.to(self._dtype_of(self.latent_decoder)))

    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> vocabulary logits (B, max_sequence_length, V)."""
        return self.token_decoder(self.decode_hidden(latents).to(self._dtype_of(self.token_decoder)))

    @staticmethod
    def _dtype_of(module: nn.Module) -> torch.dtype:
        return next(module.parameters()).dtype

    # ---- joint loss ---------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        decoder_noise: torch.Tensor | None = None,
        encoder_grad_scale: float = 1.0,
        self_conditioning: bool | None = None,
        token_loss_fraction: float = 1.0,
        hidden_states: torch.Tensor | None = None,
        context_lengths: torch.Tensor | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> LDLMOutput | tuple:
        """Joint loss of one batch. `timesteps` (B,), `noise` (B, N, D) and `decoder_noise` (B, N, D) may be
        injected for determinism; `self_conditioning=None` draws it with probability `config.self_conditioning_prob`
        in training; `token_loss_fraction` < 1 scores the token loss on a random subset of non-pad positions;
        `hidden_states` (B, L, H), the raw frozen-LM states of `input_ids` precomputed once, skips the frozen LM.
        A conditional model (`config.context_conditioning`) conditions the denoiser on the first `context_lengths`
        (B,) tokens of each row; None draws them in training (context.py) and uses no context in evaluation.
        Under `torch.compile`/`torch.export` the checks that read tensor values are skipped (shapes still are)."""
        self._reject_unsupported_outputs(output_attentions, output_hidden_states)
        check_values = not torch.compiler.is_compiling()
        input_ids, attention_mask = check_token_batch(input_ids, attention_mask, self.config.vocab_size,
                                                      self.config.max_sequence_length, check_values=check_values)
        if not 0.0 <= float(encoder_grad_scale) <= 1.0:
            raise ValueError(f"encoder_grad_scale must be in [0, 1], got {encoder_grad_scale}.")
        if not 0.0 < token_loss_fraction <= 1.0:
            raise ValueError(f"token_loss_fraction must be in (0, 1], got {token_loss_fraction}.")
        hidden = self._normalised_hidden(input_ids, attention_mask, hidden_states)  # (B, L, H) fp32
        z0 = self.encoder(hidden.to(self._dtype_of(self.encoder)), attention_mask)  # (B, N, D)
        context = self._training_context(input_ids, attention_mask, context_lengths)
        diffusion = self._diffusion_loss(z0, timesteps, noise, float(encoder_grad_scale), self_conditioning,
                                         check_values, context)
        loss_hidden, loss_token, accuracy = self._reconstruction_losses(z0, hidden, input_ids, attention_mask,
                                                                        decoder_noise, token_loss_fraction)
        out = self._combine(diffusion, loss_hidden, loss_token, accuracy, z0)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return out if return_dict else out.to_tuple()

    @staticmethod
    def _reject_unsupported_outputs(output_attentions: bool | None, output_hidden_states: bool | None) -> None:
        if output_attentions:
            raise ValueError("LDLM's forward returns losses and latents, not attention weights: drop "
                             "output_attentions (or set config.output_attentions=False).")
        if output_hidden_states:
            raise ValueError("LDLM's forward does not return per-layer hidden states: use model.encode(...) for the "
                             "latents or model.frozen_hidden_states(...) for the frozen LM's states.")

    def _normalised_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           hidden_states: torch.Tensor | None) -> torch.Tensor:
        if hidden_states is None:
            hidden_states = self.frozen_hidden_states(input_ids, attention_mask)
        expected = (*input_ids.shape, self.config.frozen_lm_hidden_size)
        if tuple(hidden_states.shape) != expected:
            raise ValueError(f"hidden_states must have shape {expected}, got {tuple(hidden_states.shape)}.")
        return self.normalize_hidden(hidden_states)

    def _training_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          context_lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(context (B, L, H), mask (B, L)) of a conditional model's batch, or None when no row has a context."""
        if not self.config.context_conditioning:
            if context_lengths is not None:
                raise ValueError("context_lengths needs a conditional model (LDLMConfig.context_conditioning=True).")
            return None
        lengths = attention_mask.sum(1)
        if context_lengths is None:
            if not self.training:
                return None
            context_lengths = draw_context_lengths(lengths, self.config.context_dropout)
        context_lengths = context_lengths.to(lengths.device)
        if tuple(context_lengths.shape) != tuple(lengths.shape) or bool(
                ((context_lengths < 0) | (context_lengths >= lengths.clamp_min(1))).any()):
            raise ValueError(f"context_lengths must be a ({lengths.shape[0]},) tensor with each row's value in "
                             "[0, its number of tokens - 1]: the prefix cannot be the whole row.")
        mask = prefix_mask(attention_mask, context_lengths)
        if not bool(mask.any()):
            return None
        return self.context_states(input_ids, mask), mask

    def _diffusion_loss(self, z0: torch.Tensor, timesteps: torch.Tensor | None, noise: torch.Tensor | None,
                        gamma: float, self_conditioning: bool | None, check_values: bool,
                        context: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """L_diff on z_t of z~0 = sg(z0) + gamma (z0 - sg(z0)): the encoder sees its gradient scaled by gamma."""
        b = z0.shape[0]
        timesteps = torch.rand(b, device=z0.device) if timesteps is None else timesteps.to(z0.device).float()
        if tuple(timesteps.shape) != (b,) or (check_values and not bool(((timesteps >= 0) & (timesteps <= 1)).all())):
            raise ValueError(f"timesteps must be a ({b},) tensor with values in [0, 1].")
        noise = torch.randn_like(z0) if noise is None else noise.to(z0.device, z0.dtype)
        if noise.shape != z0.shape:
            raise ValueError(f"noise must have the latent shape {tuple(z0.shape)}, got {tuple(noise.shape)}.")
        target = z0.detach() if gamma == 0.0 else z0.detach() + gamma * (z0 - z0.detach())
        alpha, sigma = self.alpha_sigma(timesteps)
        z_t = add_noise(target, noise, alpha, sigma)
        if self_conditioning is None:
            self_conditioning = self.training and bool(torch.rand(()) < self.config.self_conditioning_prob)
        previous_x0 = None
        context, context_mask = context if context is not None else (None, None)
        if self_conditioning:
            with torch.no_grad():
                previous_x0 = self.denoiser(z_t, timesteps, None, context, context_mask).detach()
        x0_hat = self.denoiser(z_t, timesteps, previous_x0, context, context_mask)
        per_sample = ((x0_hat.float() - target.float()) ** 2).mean(dim=(1, 2))  # (B,)
        return {"loss": per_sample.mean(), "per_sample": per_sample, "timesteps": timesteps, "x0_hat": x0_hat}

    def _reconstruction_losses(self, z0: torch.Tensor, hidden: torch.Tensor, input_ids: torch.Tensor,
                               attention_mask: torch.Tensor, decoder_noise: torch.Tensor | None,
                               token_loss_fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L_h through the latent decoder (with decoder-input noise in training) and L_w through the token decoder.
        Both decoders run over the whole canvas of max_sequence_length positions, exactly as in generation, so the
        amount of right padding in a batch cannot change any result."""
        cfg, length = self.config, input_ids.shape[1]
        decoder_in = z0
        if self.training and cfg.decoder_noise_std > 0:
            decoder_noise = torch.randn_like(z0) if decoder_noise is None else decoder_noise.to(z0.device, z0.dtype)
            decoder_in = z0 + cfg.decoder_noise_std * decoder_noise
        hidden_hat = self.decode_hidden(decoder_in)  # (B, L_max, H)
        mask = attention_mask.float()  # (B, L)
        per_position = ((hidden_hat[:, :length].float() - hidden) ** 2).mean(-1)  # (B, L)
        loss_hidden = (per_position * mask).sum() / mask.sum()
        select = attention_mask.bool()
        if token_loss_fraction < 1.0:
            sub = select & (torch.rand(select.shape, device=select.device) < token_loss_fraction)
            select = sub if sub.any() else select
        stop = cfg.decoder_loss == "mse" and cfg.token_loss_stop_gradient
        token_input = (hidden_hat.detach() if stop else hidden_hat).to(self._dtype_of(self.token_decoder))
        features = self.token_decoder.features(token_input)[:, :length][select]  # (K, W): only scored positions
        logits = self.token_decoder.lm_head(features).float()
        targets = input_ids[select]
        accuracy = (logits.argmax(-1) == targets).float().mean().detach()
        return loss_hidden, F.cross_entropy(logits, targets), accuracy

    def _combine(self, diffusion: dict[str, torch.Tensor], loss_hidden: torch.Tensor, loss_token: torch.Tensor,
                 accuracy: torch.Tensor, z0: torch.Tensor) -> LDLMOutput:
        cfg = self.config
        if cfg.decoder_loss == "mse":
            loss = (cfg.loss_diffusion_weight * diffusion["loss"] + cfg.loss_hidden_weight * loss_hidden
                    + cfg.loss_token_weight * loss_token)
        else:  # the ablation: the token loss trains the latents, L_h is only reported
            loss = cfg.loss_diffusion_weight * diffusion["loss"] + cfg.loss_token_weight * loss_token
            loss_hidden = loss_hidden.detach()
        return LDLMOutput(loss=loss, loss_diffusion=diffusion["loss"], loss_hidden=loss_hidden, loss_token=loss_token,
                          token_accuracy=accuracy, loss_diffusion_per_sample=diffusion["per_sample"].detach(),
                          timesteps=diffusion["timesteps"], latents=z0, predicted_latents=diffusion["x0_hat"])


__all__ = ["LDLMForDiffusionGeneration", "LDLMOutput", "LDLMPreTrainedModel"]
