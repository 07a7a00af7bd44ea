"""Generation for LDLM: `LDLMGenerationMixin.generate`, parallel denoising of the latents, then one decode.

    z_1 = noise_scale * eps,  eps ~ N(0, I)                              (B, N, D), one generator per row
    x0_hat = f(z_t, t, x0_sc)  -> solver step z_t -> z_s                 S steps, t_max -> t_min, then t = 0
    tokens = argmax / sample_{T, top-k, top-p} T(G(x0_hat))             decoders once, at the end
    cut each row at its first EOS, pad after it, pad the batch to its longest row

`generate` reads as its steps: settings (`LDLMGenerationConfig`) -> canvas (`canvas.py`: what is fixed and where
the output is read) -> time grid and initial noise -> `solvers.sample` over the guided denoise call
(`guidance.py`) -> decode -> read out. A per-step callback sees (step, t, z_t, x0_hat) and may return a replacement
x0_hat; streaming drafts and `output_history` are built on the same hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.utils import ModelOutput, logging

from .canvas import Canvas, build_canvas
from .context import classifier_free_guidance
from .generation_config import LDLMGenerationConfig
from .guidance import DenoiserFn, GuidedDenoiser
from .random_rows import normal_rows, row_generators, uniform_rows
from .solvers import StepCallback, learned_timesteps, sample, trailing_timesteps, uniform_timesteps

logger = logging.get_logger(__name__)

# Inputs some callers pass that generation has no use for (BERT tokenizers' token_type_ids, the pipeline's
# use_cache): accepted and ignored.
_UNUSED_INPUTS = ("use_cache", "token_type_ids")
# The hub arguments `from_pretrained` hands to `adjust_generation_fn` that `GenerationConfig.from_pretrained` takes.
_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


@dataclass(frozen=True)
class HeadChunking:
    """How `generate` runs the vocabulary head over the canvas: in about `chunks` position chunks of at least
    `min_positions` positions (few enough calls to cost no launch overhead, enough to skip most of a row's canvas
    after its EOS) and of at least `min_rows` matmul rows (batch x positions): below that the call is bound by reading
    the head's weight, which every chunk reads again, so a small batch gets one call. The ids are the same for every
    setting, only the time differs. Set `model.head_chunking` to change it; `HeadChunking(min_rows=2**62)` is one
    call over the whole canvas."""

    chunks: int = 4
    min_positions: int = 8
    min_rows: int = 256

    def __post_init__(self) -> None:
        for name in ("chunks", "min_positions", "min_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HeadChunking.{name} must be a positive integer, got {value!r}.")

    def positions_per_call(self, width: int, batch: int) -> int:
        """Canvas positions per head call for a batch of `batch` rows reading `width` positions."""
        return max(self.min_positions, -(-width // self.chunks), -(-self.min_rows // batch))


@dataclass
class LDLMGenerationOutput(ModelOutput):
    """`sequences` (B, prompt + completion) ids; `completions` (B, C) the generated part alone (cut at EOS);
    `latents` (B, N, D) final x0; `num_network_calls` denoiser calls; `timesteps` (S,) the grid; `history` one
    (B, N, D) x0_hat per step when `output_history=True`."""

    sequences: torch.LongTensor | None = None
    completions: torch.LongTensor | None = None
    latents: torch.Tensor | None = None
    num_network_calls: int | None = None
    timesteps: torch.Tensor | None = None
    history: tuple[torch.Tensor, ...] | None = None


def sample_tokens(logits: torch.Tensor, do_sample: bool, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float = 1.0, generators: list[torch.Generator] | None = None,
                  uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L, V) logits -> (B, L) ids: argmax, or one inverse-CDF draw per position (one uniform per position,
    drawn from `generators`, or `uniforms` (B, L) when the caller drew them)."""
    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, L, V)
    index = None
    if (top_k and top_k < probs.shape[-1]) or top_p < 1.0:
        probs, index = probs.sort(dim=-1, descending=True)
        if top_k:
            probs[..., top_k:] = 0.0
        if top_p < 1.0:
            before = probs.cumsum(-1) - probs  # mass of the more likely tokens
            probs = probs.masked_fill(before >= top_p, 0.0)
    cdf = probs.cumsum(-1)
    u = uniforms if uniforms is not None else draw_uniforms(tuple(logits.shape[:2]), generators, logits.device)
    choice = torch.searchsorted(cdf, (u * cdf[..., -1])[..., None].contiguous()).clamp_max(probs.shape[-1] - 1)
    return (index.gather(-1, choice) if index is not None else choice)[..., 0]  # (B, L)


def draw_uniforms(shape: tuple[int, int], generators: list[torch.Generator] | None,
                  device: torch.device) -> torch.Tensor:
    """The (B, L) uniforms of token sampling: row b from generator b, or from the global generator."""
    return uniform_rows(shape, generators, device) if generators else torch.rand(shape, device=device)


class StepHook:
    """The solvers' per-step callback: the user's `step_callback` first (it may replace x0_hat, and the
    self-conditioning input follows), then the history and the streamer's draft, which see the final x0_hat."""

    def __init__(self, denoiser: GuidedDenoiser, user: StepCallback | None, history: list | None,
                 draft: Callable[[torch.Tensor], None] | None):
        self.denoiser, self.user, self.history, self.draft = denoiser, user, history, draft

    def __call__(self, step: int, t: float, z_t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor | None:
        replaced = None
        if self.user is not None:
            replaced = self.user(step, t, z_t, x0)
            if replaced is not None:
                if not isinstance(replaced, torch.Tensor) or replaced.shape != x0.shape:
                    raise ValueError(f"step_callback must return None or a tensor of shape {tuple(x0.shape)} "
                                     f"(the x0_hat it was given), got {type(replaced).__name__}.")
                replaced = replaced.float()
                self.denoiser.remember(replaced)
                x0 = replaced
        if self.history is not None:
            self.history.append(x0.detach())
        if self.draft is not None:
            self.draft(x0)
        return replaced


class LDLMGenerationMixin:
    """`generate` for [`LDLMForDiffusionGeneration`] (transformers' `can_generate()` keys on the mixin's name).
    `head_chunking` (a `HeadChunking`, defaults to `HeadChunking()`) sets how the vocabulary head is split into calls."""

    head_chunking: HeadChunking = HeadChunking()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        streamer: Any = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        fixed_tokens: torch.LongTensor | None = None,
        fixed_mask: torch.Tensor | None = None,
        step_callback: StepCallback | None = None,
        **kwargs: Any,
    ) -> torch.LongTensor | LDLMGenerationOutput:
        r"""Generate by denoising latents. Three modes:

        - unconditional (no `input_ids`): `num_return_sequences` samples of up to `max_new_tokens` tokens (the whole
          canvas by default);
        - prompted: `input_ids` (B, P), left or right padded per `attention_mask`; returns `input_ids` unchanged
          followed by the completion (B * num_return_sequences, P + C);
        - infilling: `fixed_tokens` (B, T) with `fixed_mask` (B, T) (True = keep): returns (B, <= T) ids with the
          fixed positions kept and the rest generated.

        kwargs override `generation_config` (see [`LDLMGenerationConfig`]). `generator` is one `torch.Generator`
        (one seed per row is drawn from it) or a list with one generator per output row: a row's result then does
        not depend on the batch it is generated in. Completions end at their first EOS, padded with pad_token_id.
        `step_callback(step, t, z_t, x0_hat)` is called once per grid step after the denoiser; a tensor it returns
        replaces x0_hat for the solver's update and the next step's self-conditioning.
        """
        # 1. settings
        settings = self._prepare_generation_config(generation_config, **kwargs)
        # 2. canvas: which positions are fixed, where the completion is read
        canvas = self._build_canvas(settings, input_ids, attention_mask, fixed_tokens, fixed_mask)
        # 3. time grid and initial noise, one generator per row
        grid = self._time_grid(settings)
        generators = row_generators(generator, canvas.batch_size)
        shape = (canvas.batch_size, self.config.num_latents, self.config.latent_dim)
        z = settings.noise_scale * normal_rows(shape, generators, self.device)  # (B, N, D)
        # 4. denoise
        denoiser = self._guided_denoiser(settings, canvas)
        history = [] if settings.output_history else None
        hook = StepHook(denoiser, step_callback, history, self._draft_streamer(streamer, canvas))
        if streamer is not None and canvas.prompt is not None:
            streamer.put(canvas.prompt.cpu())
        latents = sample(settings.solver, denoiser, z, grid, self.alpha_sigma, generator=generators,
                         noise_scale=settings.noise_scale, callback=hook)  # (B, N, D)
        # 5. decode: the decoders run once, the vocabulary head only where a row has not ended
        tokens = self._decode_tokens(latents, canvas, settings, generators)  # (B, W)
        # 6. read out
        completion = canvas.read_out(tokens)
        sequences = canvas.sequences(completion)
        if streamer is not None:
            streamer.put(completion.cpu())
            streamer.end()
        if not settings.return_dict_in_generate:
            return sequences
        return LDLMGenerationOutput(sequences=sequences, completions=completion, latents=latents,
                                    num_network_calls=denoiser.calls, timesteps=grid,
                                    history=tuple(history) if history is not None else None)

    # ---- the steps ----------------------------------------------------------------------------------------------
    def _build_canvas(self, settings: LDLMGenerationConfig, input_ids: Any, attention_mask: Any, fixed_tokens: Any,
                      fixed_mask: Any) -> Canvas:
        mc = self.config
        pad = settings.pad_token_id if settings.pad_token_id is not None else mc.pad_token_id
        eos = settings.eos_token_id if settings.eos_token_id is not None else mc.eos_token_id
        eos = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        eos_ids = torch.tensor(eos, dtype=torch.long, device=self.device)
        return build_canvas(input_ids, attention_mask, fixed_tokens, fixed_mask,
                            copies=settings.num_return_sequences, max_new_tokens=settings.max_new_tokens,
                            max_length=settings.max_length, canvas=mc.max_sequence_length, vocab_size=mc.vocab_size,
                            eos_ids=eos_ids, pad_id=pad if pad is not None else 0, device=self.device)

    def _time_grid(self, settings: LDLMGenerationConfig) -> torch.Tensor:
        steps, t_max, t_min = settings.num_inference_steps, settings.t_max, settings.t_min
        if settings.distilled_steps is not None and steps != settings.distilled_steps:
            logger.warning(f"This model was distilled for num_inference_steps={settings.distilled_steps}; "
                           f"{steps} steps work, but quality is only measured at {settings.distilled_steps}.")
        if settings.time_spacing == "trailing":
            return trailing_timesteps(steps, t_max)
        if settings.time_spacing == "learned":
            return learned_timesteps(steps, self.timestep_sampler.probabilities(), t_max, t_min)
        return uniform_timesteps(steps, t_max, t_min)

    def _guided_denoiser(self, settings: LDLMGenerationConfig, canvas: Canvas) -> GuidedDenoiser:
        dtype = next(self.denoiser.parameters()).dtype
        network = self._network(settings, canvas, dtype)
        if not canvas.has_fixed_tokens or settings.guidance_scale <= 0:
            return GuidedDenoiser(network, dtype, settings.self_conditioning)
        fixed = canvas.fixed

        def fixed_logits(latents: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (K, V) at the fixed positions
            return self.token_decoder.lm_head(self.canvas_features(latents)[fixed]).float()

        return GuidedDenoiser(network, dtype, settings.self_conditioning, fixed_logits,
                              canvas.fixed_ids[fixed], settings.guidance_scale, settings.guidance_steps)

    def _network(self, settings: LDLMGenerationConfig, canvas: Canvas, dtype: torch.dtype) -> DenoiserFn:
        """The denoiser call of this generation: a conditional checkpoint given a prompt reads it as its context
        (context.py), with classifier-free guidance when `context_guidance_scale` != 1; otherwise the plain call."""
        scale = settings.context_guidance_scale
        conditional = self.config.context_conditioning
        if scale != 1.0 and not conditional:
            raise ValueError(f"context_guidance_scale={scale} needs a checkpoint trained with context conditioning "
                             "(LDLMConfig.context_conditioning=True); this one follows prompts through guidance_scale.")
        if scale != 1.0 and self.config.context_dropout == 0:
            raise ValueError(f"context_guidance_scale={scale} needs a checkpoint trained with context dropout (its "
                             "unconditional prediction); this one has context_dropout=0: leave context_guidance_scale "
                             "at 1.")
        if not conditional and canvas.prompt is not None and settings.guidance_scale <= 0:
            logger.warning("guidance_scale=0 on a checkpoint trained without context conditioning: the prompt is "
                           "copied into the output but does not steer the completion (an unconditional sample).")
        if not conditional or canvas.prompt is None:
            return self.denoise
        context = self.context_states(canvas.fixed_ids, canvas.fixed).to(dtype)  # (B, L, H), one frozen-LM pass
        mask = canvas.fixed

        def conditioned(z_t: torch.Tensor, t: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
            if scale == 1.0:
                return self.denoise(z_t, t, previous, context, mask)
            both = self.denoise(torch.cat([z_t, z_t]), torch.cat([t, t]),
                                None if previous is None else torch.cat([previous, previous]),
                                torch.cat([context, context]), torch.cat([mask, torch.zeros_like(mask)]))
            with_prompt, without = both.chunk(2)
            return classifier_free_guidance(with_prompt, without, scale)

        return conditioned

    def _draft_streamer(self, streamer: Any, canvas: Canvas) -> Callable[[torch.Tensor], None] | None:
        if streamer is None or not hasattr(streamer, "put_draft"):
            return None

        def draft(x0: torch.Tensor) -> None:
            tokens = self.canvas_logits(x0, canvas.read_width).argmax(-1)
            streamer.put_draft(value=canvas.read_out(tokens).cpu())

        return draft

    def _decode_tokens(self, latents: torch.Tensor, canvas: Canvas, settings: LDLMGenerationConfig,
                       generators: list[torch.Generator] | None) -> torch.Tensor:
        """Latents (B, N, D) -> canvas ids (B, W). The decoders' body runs once over the canvas; the vocabulary head
        and the token choice run in a few position chunks (`self.head_chunking`), each only for the rows whose
        completion has not ended in the chunks before (a row's positions after its first EOS are never read). The ids
        read out are those of one head call over the whole width: the same uniforms are drawn, and each position's
        choice is its own."""
        width, batch = canvas.read_width, canvas.batch_size
        features = self.canvas_features(latents, width)  # (B, W, H)
        uniforms = draw_uniforms((batch, width), generators, latents.device) if settings.do_sample else None
        tokens = torch.full((batch, width), canvas.pad_id, dtype=torch.long, device=latents.device)
        rows = torch.arange(batch, device=latents.device)
        chunk = self.head_chunking.positions_per_call(width, batch)
        for lo in range(0, width, chunk):
            hi = min(lo + chunk, width)
            logits = self.token_decoder.lm_head(features[rows, lo:hi]).float()  # (b, hi - lo, V)
            tokens[rows, lo:hi] = sample_tokens(logits, settings.do_sample, settings.temperature, settings.top_k,
                                                settings.top_p, uniforms=None if uniforms is None else
                                                uniforms[rows, lo:hi])
            rows = rows[~canvas.ended_within(tokens, hi)[rows]] if hi < width else rows
            if rows.numel() == 0:
                break
        return tokens

    def canvas_features(self, latents: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """Latents (B, N, D) -> the token decoder's features (B, width, H) of the first `width` canvas positions
        (all of them by default): the latent decoder and the token decoder's body, before the vocabulary head."""
        return self.token_decoder.features(self.decode_hidden(latents))[:, :width]

    def canvas_logits(self, latents: torch.Tensor, width: int) -> torch.Tensor:
        """Latents (B, N, D) -> fp32 logits of the first `width` canvas positions (B, width, V); the vocabulary head
        only runs there."""
        return self.token_decoder.lm_head(self.canvas_features(latents, width)).float()

    def _prepare_generation_config(self, generation_config: GenerationConfig | None,
                                   **kwargs: Any) -> LDLMGenerationConfig:
        """Priority: kwargs > `generation_config` > `self.generation_config` > `LDLMGenerationConfig` defaults."""
        base = generation_config if generation_config is not None else getattr(self, "generation_config", None)
        settings = LDLMGenerationConfig.from_any(base)
        fields = LDLMGenerationConfig.field_names()
        unknown = sorted(k for k in kwargs if k not in fields and k not in _UNUSED_INPUTS)
        if unknown:
            inputs = [p for p in inspect.signature(type(self).generate).parameters if p not in ("self", "kwargs")]
            raise ValueError(f"generate() got unknown arguments {unknown}. Generation settings: {sorted(fields)}; "
                             f"inputs: {', '.join(inputs)}.")
        for key, value in kwargs.items():
            if key in fields:
                setattr(settings, key, value)
        settings.validate()
        return settings

    def adjust_generation_fn(self, generation_config: GenerationConfig | None, from_auto_class: bool,
                             from_pipeline: bool, pretrained_model_name_or_path: str | None,
                             **download_kwargs: Any) -> None:
        """Called by `from_pretrained`: load `generation_config.json` (as DiffusionGemma does)."""
        if generation_config is not None:
            self.generation_config = LDLMGenerationConfig.from_any(generation_config)
            return
        if pretrained_model_name_or_path is None:
            return
        hub = {k: download_kwargs[k] for k in _HUB_KWARGS if k in download_kwargs}
        try:
            self.generation_config = LDLMGenerationConfig.from_pretrained(
                pretrained_model_name_or_path, _from_auto=from_auto_class, _from_pipeline=from_pipeline, **hub)
        except OSError:
            logger.info("No generation_config.json found; using the default LDLMGenerationConfig.")


__all__ = ["HeadChunking", "LDLMGenerationMixin", "LDLMGenerationOutput", "StepHook", "sample_tokens"]
