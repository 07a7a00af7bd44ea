"""LDLMForDiffusionGeneration: the latent diffusion language model and its joint training loss (DESIGN §1).

One training step, for tokens w (B, L):
    h   = norm(LM(w)[layer])                                    frozen, normalised with persistent statistics
    z0  = E(h)                                                  (B, N, D)
    z_t = alpha_t z~0 + sigma_t eps,  z~0 = sg(z0) + gamma (z0 - sg(z0))
    L_diff = || f(z_t, t, x0_sc) - z~0 ||^2                     gamma = encoder_grad_scale (warmup, DESIGN §2)
    h^  = G(z0 + sigma_dec eps')                                training only noise
    L_h = || h^ - h ||^2 over non-pad positions                 (decoder_loss="mse")
    L_w = CE(T(sg(h^)), w) over non-pad positions               (stop-gradient switchable)
    L   = c_diff L_diff + c_h L_h + c_w L_w
With decoder_loss="ce" (the ablation), L_w flows through G into E and L_h is reported but not optimised.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_ldlm import PRESETS, LDLMConfig
from .decoders import LatentDecoder, TokenDecoder
from .denoiser import LatentDenoiser
from .encoder import LatentEncoder
from .generation_ldlm import LDLMGenerationConfig, LDLMGenerationMixin
from .schedules import add_noise, alpha_sigma
from .timestep_sampler import AdaptiveTimestepSampler, initial_curve


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


def check_token_batch(
    input_ids: Any, attention_mask: Any, vocab_size: int, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a right-padded batch of token ids; return (input_ids, attention_mask) as (B, L) long tensors."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.LongTensor of shape (batch, length), got {type(input_ids).__name__}.")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
    if input_ids.dim() != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape (batch, length) with both > 0, got {tuple(input_ids.shape)}.")
    if input_ids.shape[1] > max_length:
        raise ValueError(
            f"input_ids has length {input_ids.shape[1]} but the model handles at most max_sequence_length="
            f"{max_length} tokens; truncate the text (tokenizer(..., truncation=True, max_length={max_length}))."
        )
    if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size:
        raise ValueError(f"input_ids holds ids outside the vocabulary [0, {vocab_size}).")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {shape}.")
    attention_mask = attention_mask.long()
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token).")
    if (attention_mask.sum(-1) == 0).any():
        raise ValueError("Every row needs at least one real token: attention_mask has an all-zero row.")
    if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
        raise ValueError("LDLM expects right padding (tokens first, padding after): set tokenizer.padding_side='right'.")
    return input_ids.long(), attention_mask


class LDLMPreTrainedModel(PreTrainedModel):
    config_class = LDLMConfig
    base_model_prefix = "ldlm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock", "DiTBlock"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (LatentEncoder,)):
            init.normal_(module.latent_queries, std=std)
        elif isinstance(module, LatentDenoiser):
            init.normal_(module.position_embedding, std=std)
        elif isinstance(module, LatentDecoder):
            init.normal_(module.position_queries, std=std)
            init.normal_(module.latent_position, std=std)
        elif isinstance(module, AdaptiveTimestepSampler):
            init.copy_(module.loss_ema, initial_curve(module.loss_ema.numel()))
            init.zeros_(module.num_updates)
        elif isinstance(module, LDLMForDiffusionGeneration):
            init.zeros_(module.hidden_mean)
            init.ones_(module.hidden_std)
            init.zeros_(module.hidden_stats_fitted)
        else:
            super()._init_weights(module)


def check_tokenizer_matches(config: LDLMConfig, tokenizer: Any, where: str) -> None:
    """Raise a ValueError when `tokenizer` cannot belong to `config`: more tokens than the model's vocabulary, or
    end/pad ids that differ (generation would cut and pad at the wrong token, silently)."""
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"The tokenizer of {where!r} has {len(tokenizer)} tokens but the model's vocabulary has "
                         f"{config.vocab_size}: use the tokenizer the model was trained with.")
    eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for field, token_id in (("eos_token_id", eos), ("pad_token_id", tokenizer.pad_token_id)):
        if token_id is not None and getattr(config, field) is not None and token_id != getattr(config, field):
            raise ValueError(f"The tokenizer of {where!r} has {field}={token_id} but the model's config has "
                             f"{field}={getattr(config, field)}: use the tokenizer the model was trained with, or "
                             f"set config.{field} to match it.")


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
        self.timestep_sampler = AdaptiveTimestepSampler(config.timestep_bins)
        self.tokenizer = None
        self.post_init()
        self.frozen_lm.eval()
        # Total length bound for generate() and for the stock text-generation pipeline (whose 256-token default
        # would not fit the canvas); a saved generation_config.json replaces it on from_pretrained.
        self.generation_config.max_length = config.max_sequence_length

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_frozen_lm(
        cls, name_or_path: str, preset: str | None = None, tokenizer: Any = None, **config_overrides: Any
    ) -> LDLMForDiffusionGeneration:
        """Start a new LDLM around a pretrained LM (a Hub name or a local folder); weights of the LM are loaded,
        everything else is freshly initialised. `preset` is one of `PRESETS`; any `LDLMConfig` field overrides it."""
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
        lm = AutoModel.from_pretrained(name_or_path, use_safetensors=True)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name_or_path)
        if len(tokenizer) > lm.config.vocab_size:
            raise ValueError(
                f"The tokenizer of {name_or_path!r} has {len(tokenizer)} tokens but the LM embeds only "
                f"{lm.config.vocab_size}; pass the tokenizer that belongs to this LM."
            )
        fields = dict(PRESETS[preset]) if preset else {}
        fields.update(config_overrides)
        special = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
            "eos_token_id": tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
        }
        for key, value in special.items():
            if value is not None:
                fields.setdefault(key, value)
        if fields.get("pad_token_id") is None:
            fields["pad_token_id"] = fields.get("eos_token_id")
        config = LDLMConfig(frozen_lm_config=lm.config, **fields)
        model = cls(config)
        missing, unexpected = model.frozen_lm.load_state_dict(lm.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise ValueError(f"Frozen LM weights do not fit: missing {missing}, unexpected {unexpected}.")
        check_tokenizer_matches(config, tokenizer, str(name_or_path))
        model.tokenizer = tokenizer
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """`PreTrainedModel.from_pretrained` reading safetensors only (never pickle), with clear errors for a
        corrupted weights file, non-finite weights, or a tokenizer that does not belong to the config."""
        kwargs.setdefault("use_safetensors", True)
        name = str(pretrained_model_name_or_path)
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as err:
            raise ValueError(
                f"The weights of {name!r} are not a readable safetensors file ({err}); the download or the save was "
                "probably cut short. Delete the file and download it again (from_pretrained(..., "
                "force_download=True)) or save the model again.") from err
        model.frozen_lm.requires_grad_(False)  # loading materialises fresh parameters: freeze them again
        bad = [n for n, p in model.named_parameters() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
        if bad:
            raise ValueError(f"The weights of {name!r} hold NaN/Inf values in {bad[:5]}{' ...' if len(bad) > 5 else ''}"
                             ": the checkpoint is corrupted or training diverged before it was saved.")
        if os.path.isfile(os.path.join(name, "tokenizer_config.json")):
            # Running as remote code means the caller trusted this folder: say so, or AutoTokenizer prompts on stdin.
            trusted = kwargs.get("trust_remote_code", cls.__module__.startswith("transformers_modules"))
            model.tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trusted)
            check_tokenizer_matches(model.config, model.tokenizer, name)
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save weights, config, generation_config.json, remote code (AutoModel and AutoModelForCausalLM), the
        frozen LM's tokenizer and the Inference Endpoints handler.py."""
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.update({
            "AutoConfig": "configuration_ldlm.LDLMConfig",
            "AutoModel": "modeling_ldlm.LDLMForDiffusionGeneration",
            "AutoModelForCausalLM": "modeling_ldlm.LDLMForDiffusionGeneration",
        })
        self.config.auto_map = auto_map
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        handler = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handler.py")
        if os.path.isfile(handler):  # absent when this file runs as remote code from a checkpoint
            shutil.copy(handler, os.path.join(save_directory, "handler.py"))

    def train(self, mode: bool = True) -> LDLMForDiffusionGeneration:
        super().train(mode)
        self.frozen_lm.eval()  # the frozen LM never trains: no dropout, ever
        return self

    # ---- frozen hidden states -----------------------------------------------------------------------------------
    @torch.no_grad()
    def frozen_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw hidden states of the configured layer of the frozen LM: (B, L, H)."""
        if self.frozen_lm.training:  # never let dropout into the frozen states, whoever toggled the mode
            self.frozen_lm.eval()
        out = self.frozen_lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.hidden_states[self.config.frozen_lm_layer].float()

    def normalize_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden - self.hidden_mean) / self.hidden_std

    @torch.no_grad()
    def fit_hidden_statistics(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Set the per-channel mean/std of the frozen hidden states from (input_ids, attention_mask) batches."""
        total, total_sq, count = 0.0, 0.0, 0
        for input_ids, attention_mask in batches:
            input_ids, attention_mask = check_token_batch(
                input_ids.to(self.device), attention_mask.to(self.device), self.config.vocab_size,
                self.config.max_sequence_length)
            hidden = self.frozen_hidden_states(input_ids, attention_mask).double()
            keep = attention_mask.bool()
            total = total + hidden[keep].sum(0)
            total_sq = total_sq + (hidden[keep] ** 2).sum(0)
            count += int(keep.sum())
        if count < 2:
            raise ValueError("fit_hidden_statistics needs at least two non-pad tokens.")
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(1e-10).sqrt()
        self.hidden_mean.copy_(mean.float())
        self.hidden_std.copy_(std.float().clamp_min(1e-4))
        self.hidden_stats_fitted.fill_(True)

    # ---- the parts ----------------------------------------------------------------------------------------------
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return alpha_sigma(t, self.config.noise_schedule, self.config.noise_schedule_d)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens -> clean latents z0 (B, N, D)."""
        input_ids, attention_mask = check_token_batch(
            input_ids, attention_mask, self.config.vocab_size, self.config.max_sequence_length)
        hidden = self.normalize_hidden(self.frozen_hidden_states(input_ids, attention_mask))
        return self.encoder(hidden, attention_mask)

    def denoise(self, z_t: torch.Tensor, t: torch.Tensor, self_cond: torch.Tensor | None = None) -> torch.Tensor:
        """One denoiser call: x0_hat (B, N, D)."""
        return self.denoiser(z_t, t, self_cond)

    def decode_hidden(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> normalised hidden states at every canvas position (B, max_sequence_length, H)."""
        return self.latent_decoder(latents)

    def decode_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> vocabulary logits (B, max_sequence_length, V)."""
        return self.token_decoder(self.decode_hidden(latents))

    # ---- joint loss ---------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        decoder_noise: torch.Tensor | None = None,
        encoder_grad_scale: float = 1.0,
        self_condition: bool | None = None,
        token_loss_fraction: float = 1.0,
        hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> LDLMOutput:
        """Joint loss of one batch. `timesteps` (B,), `noise` (B, N, D) and `decoder_noise` (B, N, D) may be
        injected for determinism; `self_condition=None` draws it with probability `config.self_condition_prob`;
        `token_loss_fraction` < 1 scores the token loss on a random subset of non-pad positions; `hidden_states`
        (B, L, H), the raw frozen-LM states of `input_ids` precomputed once, skips the frozen LM."""
        cfg = self.config
        if not 0.0 <= float(encoder_grad_scale) <= 1.0:
            raise ValueError(f"encoder_grad_scale must be in [0, 1], got {encoder_grad_scale}.")
        if not 0.0 < token_loss_fraction <= 1.0:
            raise ValueError(f"token_loss_fraction must be in (0, 1], got {token_loss_fraction}.")
        input_ids, attention_mask = check_token_batch(input_ids, attention_mask, cfg.vocab_size,
                                                      cfg.max_sequence_length)
        b, length = input_ids.shape
        mask = attention_mask.float()  # (B, L)

        if hidden_states is None:
            hidden_states = self.frozen_hidden_states(input_ids, attention_mask)
        elif tuple(hidden_states.shape) != (b, length, cfg.frozen_lm_hidden_size):
            raise ValueError(f"hidden_states must have shape {(b, length, cfg.frozen_lm_hidden_size)}, "
                             f"got {tuple(hidden_states.shape)}.")
        hidden = self.normalize_hidden(hidden_states.float())  # (B, L, H)
        z0 = self.encoder(hidden, attention_mask)  # (B, N, D)

        # Diffusion loss; the encoder sees its gradient scaled by gamma.
        if timesteps is None:
            timesteps = torch.rand(b, device=z0.device)
        timesteps = timesteps.to(z0.device).float()
        if timesteps.shape != (b,) or not ((timesteps >= 0) & (timesteps <= 1)).all():
            raise ValueError(f"timesteps must be a ({b},) tensor with values in [0, 1].")
        if noise is None:
            noise = torch.randn_like(z0)
        if noise.shape != z0.shape:
            raise ValueError(f"noise must have the latent shape {tuple(z0.shape)}, got {tuple(noise.shape)}.")
        gamma = float(encoder_grad_scale)
        target = z0.detach() if gamma == 0.0 else z0.detach() + gamma * (z0 - z0.detach())
        alpha, sigma = self.alpha_sigma(timesteps)
        z_t = add_noise(target, noise, alpha, sigma)
        if self_condition is None:
            self_condition = self.training and bool(torch.rand(()) < cfg.self_condition_prob)
        self_cond = None
        if self_condition:
            with torch.no_grad():
                self_cond = self.denoiser(z_t, timesteps, None).detach()
        x0_hat = self.denoiser(z_t, timesteps, self_cond)
        loss_diff_per_sample = ((x0_hat - target) ** 2).mean(dim=(1, 2))  # (B,)
        loss_diffusion = loss_diff_per_sample.mean()

        # Reconstruction through the decoders.
        decoder_in = z0
        if self.training and cfg.decoder_noise_std > 0:
            if decoder_noise is None:
                decoder_noise = torch.randn_like(z0)
            decoder_in = z0 + cfg.decoder_noise_std * decoder_noise
        # Both decoders always run over the whole canvas of max_sequence_length positions, exactly as in generation,
        # so the amount of right padding in a batch cannot change any result.
        hidden_hat = self.latent_decoder(decoder_in)  # (B, L_max, H)
        per_position = ((hidden_hat[:, :length] - hidden) ** 2).mean(-1)  # (B, L)
        loss_hidden = (per_position * mask).sum() / mask.sum()

        select = attention_mask.bool()
        if token_loss_fraction < 1.0:
            sub = select & (torch.rand(select.shape, device=select.device) < token_loss_fraction)
            select = sub if sub.any() else select
        token_input = hidden_hat.detach() if (cfg.decoder_loss == "mse" and cfg.token_loss_stop_gradient) else hidden_hat
        features = self.token_decoder.features(token_input)[:, :length][select]  # (K, W): only scored positions
        logits = self.token_decoder.lm_head(features).float()
        targets = input_ids[select]
        loss_token = F.cross_entropy(logits, targets)
        token_accuracy = (logits.argmax(-1) == targets).float().mean().detach()

        if cfg.decoder_loss == "mse":
            loss = (cfg.loss_diffusion_weight * loss_diffusion + cfg.loss_hidden_weight * loss_hidden
                    + cfg.loss_token_weight * loss_token)
        else:
            loss = cfg.loss_diffusion_weight * loss_diffusion + cfg.loss_token_weight * loss_token
            loss_hidden = loss_hidden.detach()
        return LDLMOutput(
            loss=loss,
            loss_diffusion=loss_diffusion,
            loss_hidden=loss_hidden,
            loss_token=loss_token,
            token_accuracy=token_accuracy,
            loss_diffusion_per_sample=loss_diff_per_sample.detach(),
            timesteps=timesteps,
            latents=z0,
            predicted_latents=x0_hat,
        )


__all__ = ["LDLMForDiffusionGeneration", "LDLMOutput", "LDLMPreTrainedModel", "check_token_batch"]
