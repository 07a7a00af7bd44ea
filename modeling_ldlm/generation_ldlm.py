"""Generation for LDLM: `LDLMGenerationConfig`, `LDLMGenerationMixin.generate` and prompt/infilling guidance (§3).

    z_1 = noise_scale * eps,  eps ~ N(0, I)                              (B, N, D), one generator per row
    x0_hat = f(z_t, t, x0_sc)  -> solver step z_t -> z_s                 S steps, t_max -> t_min, then t = 0
    tokens = argmax / sample_{T, top-k, top-p} T(G(x0_hat))             decoders once, at the end
    cut each row at its first EOS, pad after it, pad the batch to its longest row

Prompts and infilling (choice: guidance, DESIGN §3 option 1). The latents are global (a Perceiver reads the whole
sequence), so there is no prefix to copy in latent space. Instead every denoiser output is pushed toward latents
whose decoded canvas shows the fixed tokens c at the fixed positions P:

    loss(x) = sum_{p in P} CE(T(G(x))_p, c_p)          per row, summed (a row's push never depends on the batch)
    x0_hat <- x0_hat - guidance_scale * grad / rms(grad)      repeated guidance_steps times, rms over (N, D)

and the solver continues from the guided x0_hat (self-conditioning also sees it). The fixed tokens are finally
forced into the output. A prompt is the fixed prefix c = prompt at positions 0..len-1 (a trailing EOS/[SEP] that
the tokenizer adds is dropped first: training sequences continue past it), the completion is read from the
canvas positions right after it. The same mechanism fills arbitrary `fixed_mask` positions (infilling). Cost: one
decoder forward and backward per step while fixed tokens are given; unconditional generation runs the decoders once.
The alternative (a conditional denoiser trained with condition dropout) needs training changes and is not built.
Measured on tiny random models (tests): guidance raises the share of prompt positions the decoders reproduce before
forcing; the gen-PPL comparison of prompted continuations awaits a trained checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GenerationConfig
from transformers.utils import ModelOutput, logging

from .samplers import SOLVERS, TIME_SPACINGS, learned_timesteps, network_calls, randn_rows, sample, uniform_timesteps

logger = logging.get_logger(__name__)

_IGNORED_KWARGS = {"use_cache", "token_type_ids"}  # passed by some callers (BERT tokenizers), unused here


class LDLMGenerationConfig(GenerationConfig):
    r"""
    Sampler settings of [`LDLMGenerationMixin.generate`], saved as `generation_config.json`.

    Args:
        num_inference_steps (`int`, defaults to 50): points of the time grid (denoiser calls, 2S - 1 for `"heun"`).
        solver (`str`, defaults to `"euler"`): `"euler"` (DDIM), `"euler_maruyama"`, `"ddpm"`, `"dpmpp_2m"`, `"heun"`.
        t_max, t_min (`float`, defaults to 1.0, 0.05): the grid runs from t_max down to t_min, then jumps to 0.
        time_spacing (`str`, defaults to `"uniform"`): `"uniform"` or `"learned"` (the model's adaptive-timestep
            warping: equal training-loss increase between steps; uniform while the model has no statistics).
        self_conditioning (`bool`, defaults to True): feed the previous x0_hat to the denoiser.
        noise_scale (`float`, defaults to 1.0): scales the initial noise and the noise of stochastic solvers
            (below 1: less diverse, often cleaner samples).
        do_sample (`bool`, defaults to False): sample tokens (temperature / top_k / top_p) instead of argmax.
        temperature, top_k, top_p: token sampling; top_k = 0 or None and top_p = 1 disable the filters.
        guidance_scale (`float`, defaults to 1.0), guidance_steps (`int`, defaults to 1): strength of the push toward
            fixed tokens (prompts, infilling); 0 turns guidance off (fixed tokens are still forced in the output).
        max_new_tokens (`int`, *optional*): completion tokens; prompt + max_new_tokens must fit the canvas.
        max_length (`int`, *optional*): bound on prompt + completion when max_new_tokens is unset (clamped to the
            canvas).
        num_return_sequences (`int`, defaults to 1): samples per prompt (the batch size when there is no prompt).
        return_dict_in_generate (`bool`, defaults to False): return an [`LDLMGenerationOutput`].
        output_history (`bool`, defaults to False): keep every step's x0_hat in the output.
        pad_token_id, bos_token_id, eos_token_id: default to the model config's.
    """

    _DEFAULTS: dict[str, Any] = {
        "num_inference_steps": 50, "solver": "euler", "t_max": 1.0, "t_min": 0.05, "time_spacing": "uniform",
        "self_conditioning": True, "noise_scale": 1.0, "do_sample": False, "temperature": 1.0, "top_k": None,
        "top_p": 1.0, "guidance_scale": 1.0, "guidance_steps": 1, "max_new_tokens": None, "max_length": None,
        "num_return_sequences": 1, "return_dict_in_generate": False, "output_history": False,
        "pad_token_id": None, "bos_token_id": None, "eos_token_id": None,
    }

    def __init__(self, **kwargs: Any):
        # Like DiffusionGemmaGenerationConfig: no super().__init__(), only the fields this sampler uses.
        for name, default in self._DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        self._commit_hash = kwargs.pop("_commit_hash", None)
        self._from_model_config = kwargs.pop("_from_model_config", None)
        self.transformers_version = kwargs.pop("transformers_version", None)
        if kwargs:
            raise ValueError(f"Unknown LDLMGenerationConfig fields {sorted(kwargs)}; valid: {sorted(self._DEFAULTS)}.")
        self.validate()

    def validate(self, **unused_kwargs: Any) -> None:
        """Raise a ValueError naming the first invalid field."""
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for name in ("num_inference_steps", "num_return_sequences", "guidance_steps"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("max_new_tokens", "max_length"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
        if self.solver not in SOLVERS:
            raise ValueError(f"Unknown solver {self.solver!r}; choose one of {SOLVERS}.")
        if self.time_spacing not in TIME_SPACINGS:
            raise ValueError(f"Unknown time_spacing {self.time_spacing!r}; choose one of {TIME_SPACINGS}.")
        if not (is_num(self.t_min) and is_num(self.t_max)) or not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(f"Need 0 <= t_min < t_max <= 1, got t_min={self.t_min!r}, t_max={self.t_max!r}.")
        for name in ("noise_scale", "guidance_scale"):
            value = getattr(self, name)
            if not is_num(value) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if not is_num(self.temperature) or not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (use do_sample=False for argmax), got {self.temperature!r}.")
        if not is_num(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if self.top_k is not None and (not is_int(self.top_k) or self.top_k < 0):
            raise ValueError(f"top_k must be an integer >= 0 or None, got {self.top_k!r}.")
        for name in ("self_conditioning", "do_sample", "return_dict_in_generate", "output_history"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    def to_diff_dict(self) -> dict[str, Any]:
        """Fields that differ from this class's own defaults (the base class diffs against its defaults)."""
        defaults = type(self)().to_dict()
        out = {k: v for k, v in self.to_dict().items()
               if k not in defaults or k == "transformers_version" or v != defaults[k]}
        self.dict_dtype_to_str(out)
        return out

    def get_generation_mode(self, *args: Any, **kwargs: Any):
        raise NotImplementedError("LDLMGenerationConfig has no autoregressive generation mode.")

    @classmethod
    def from_model_config(cls, *args: Any, **kwargs: Any):
        raise NotImplementedError("LDLMGenerationConfig is not derived from the model config.")


@dataclass
class LDLMGenerationOutput(ModelOutput):
    """`sequences` (B, prompt + completion) ids; `latents` (B, N, D) final x0; `num_network_calls` denoiser calls;
    `timesteps` (S,) the grid; `history` one (B, N, D) x0_hat per step when `output_history=True`."""

    sequences: torch.LongTensor | None = None
    latents: torch.Tensor | None = None
    num_network_calls: int | None = None
    timesteps: torch.Tensor | None = None
    history: tuple[torch.Tensor, ...] | None = None


# ---- pure helpers ---------------------------------------------------------------------------------------------------
def row_generators(generator: Any, batch: int, device: torch.device) -> list[torch.Generator]:
    """One generator per row. A list is used as given; a single generator (or None: the global RNG) hands out one
    seed per row in order, so row b of a batch equals a batch of b + 1 rows' last row started from the same state."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch or not all(isinstance(g, torch.Generator) for g in generator):
            raise ValueError(f"generator must be one torch.Generator or a list of {batch} (one per output row), "
                             f"got a list of {len(generator)}.")
        return list(generator)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    seeds = [int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device)) for _ in range(batch)]
    return [torch.Generator(device=gen_device).manual_seed(s) for s in seeds]


def rand_rows(shape: tuple[int, ...], generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draws, row b from generator b: (B, *rest)."""
    return torch.stack([torch.rand(shape[1:], generator=g, device=g.device) for g in generators]).to(device)


def sample_tokens(logits: torch.Tensor, do_sample: bool, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float = 1.0, generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """(B, L, V) logits -> (B, L) ids: argmax, or one inverse-CDF draw per position (one uniform per position)."""
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
    u = rand_rows(tuple(logits.shape[:2]), generators, logits.device) if generators else torch.rand(
        logits.shape[:2], device=logits.device)
    choice = torch.searchsorted(cdf, (u * cdf[..., -1])[..., None].contiguous()).clamp_max(probs.shape[-1] - 1)
    return (index.gather(-1, choice) if index is not None else choice)[..., 0]  # (B, L)


def cut_at_eos(tokens: torch.Tensor, eos_ids: torch.Tensor, pad_id: int, search_from: torch.Tensor) -> torch.Tensor:
    """Keep each row up to and including its first EOS at or after `search_from` (B,), pad after it, and drop the
    columns that are padding in every row (at least one column stays): (B, M) -> (B, C)."""
    b, m = tokens.shape
    pos = torch.arange(m, device=tokens.device)[None]  # (1, M)
    is_eos = torch.isin(tokens, eos_ids) & (pos >= search_from[:, None])
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(search_from, m))  # (B,)
    out = tokens.masked_fill(pos > first[:, None], pad_id)
    width = int((first + 1).clamp_max(m).max()) if b else 0
    return out[:, :max(width, 1)]


def check_ids(name: str, ids: Any, vocab_size: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise ValueError(f"{name} must be a torch.LongTensor of shape (batch, length), got {type(ids).__name__}.")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids, got dtype {ids.dtype}; pass tokenizer(...).input_ids.")
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, length) with both > 0, got {tuple(ids.shape)}.")
    return ids.long()


def check_mask(name: str, mask: Any, shape: torch.Size) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape {tuple(shape)}, got {type(mask).__name__}.")
    if mask.dim() == 1 and len(shape) == 2 and shape[0] == 1:
        mask = mask[None]
    if mask.shape != shape:
        raise ValueError(f"{name} must have the shape of its ids {tuple(shape)}, got {tuple(mask.shape)}.")
    if mask.dtype != torch.bool and ((mask != 0) & (mask != 1)).any():
        raise ValueError(f"{name} must hold only 0 and 1.")
    return mask.bool()


def completion_width(max_new_tokens: int | None, max_length: int | None, longest: int, input_width: int,
                     canvas: int) -> int:
    """How many canvas positions after the prompt to read; ValueError when the request cannot fit."""
    room = canvas - longest
    if room <= 0:
        raise ValueError(f"The prompt has {longest} tokens and fills the whole canvas of max_sequence_length="
                         f"{canvas}: shorten it to at most {canvas - 1} tokens.")
    if max_new_tokens is not None:
        if max_new_tokens > room:
            raise ValueError(f"A prompt of {longest} tokens plus max_new_tokens={max_new_tokens} does not fit the "
                             f"canvas of max_sequence_length={canvas}: use max_new_tokens <= {room} or a shorter "
                             "prompt.")
        return max_new_tokens
    if max_length is not None:
        if max_length - input_width <= 0:
            raise ValueError(f"max_length={max_length} leaves no room after a prompt of {input_width} tokens: raise "
                             "it or pass max_new_tokens.")
        return min(max_length - input_width, room)
    return room


class LDLMGenerationMixin:
    """`generate` for [`LDLMForDiffusionGeneration`] (transformers' `can_generate()` keys on the mixin's name)."""

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
        """
        cfg = self._prepare_generation_config(generation_config, **kwargs)
        mc, device = self.config, self.device
        canvas, vocab = mc.max_sequence_length, mc.vocab_size
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else mc.pad_token_id
        eos = cfg.eos_token_id if cfg.eos_token_id is not None else mc.eos_token_id
        eos_ids = torch.tensor(list(eos) if isinstance(eos, (list, tuple)) else [eos], device=device)
        nrs = cfg.num_return_sequences
        if input_ids is not None and fixed_tokens is not None:
            raise ValueError("Pass either input_ids (a prompt) or fixed_tokens/fixed_mask (infilling), not both.")

        prefix, fixed, fixed_ids = None, None, None
        if input_ids is not None:
            ids = check_ids("input_ids", input_ids, vocab).to(device)
            mask = check_mask("attention_mask", attention_mask, ids.shape).to(device)
            if ((ids < 0) | (ids >= vocab))[mask].any():
                raise ValueError(f"input_ids holds ids outside the vocabulary [0, {vocab}).")
            prefix, mask = ids.repeat_interleave(nrs, 0), mask.repeat_interleave(nrs, 0)  # (B, P)
            order = torch.sort((~mask).long(), dim=1, stable=True).indices  # real tokens first, in order
            compact = prefix.gather(1, order)
            lengths = mask.sum(1)  # (B,)
            last = compact.gather(1, (lengths - 1).clamp_min(0)[:, None])[:, 0]
            lengths = lengths - ((lengths > 0) & torch.isin(last, eos_ids)).long()  # drop a trailing EOS/[SEP]
            longest = int(lengths.max())
            if longest > canvas:
                raise ValueError(f"The prompt has {longest} tokens but the model handles at most max_sequence_length="
                                 f"{canvas}; truncate it (tokenizer(..., truncation=True, max_length={canvas - 1})).")
            width = completion_width(cfg.max_new_tokens, cfg.max_length, longest, prefix.shape[1], canvas)
            compact = compact[:, :canvas]
            fixed_ids = F.pad(compact, (0, canvas - compact.shape[1]), value=pad)  # (B, L)
            fixed = torch.arange(canvas, device=device)[None] < lengths[:, None]  # (B, L)
            start, search_from = lengths, torch.zeros_like(lengths)
        elif fixed_tokens is not None:
            if fixed_mask is None:
                raise ValueError("Infilling needs fixed_mask (True where fixed_tokens must be kept).")
            tok = check_ids("fixed_tokens", fixed_tokens, vocab).to(device)
            fmask = check_mask("fixed_mask", fixed_mask, tok.shape).to(device)
            if tok.shape[1] > canvas:
                raise ValueError(f"fixed_tokens has length {tok.shape[1]} but the canvas holds max_sequence_length="
                                 f"{canvas} tokens.")
            if ((tok < 0) | (tok >= vocab))[fmask].any():
                raise ValueError(f"fixed_tokens holds ids outside the vocabulary [0, {vocab}) at fixed positions.")
            tok, fmask = tok.repeat_interleave(nrs, 0), fmask.repeat_interleave(nrs, 0)
            width = tok.shape[1]
            fixed = F.pad(fmask, (0, canvas - width), value=False)
            fixed_ids = F.pad(tok.masked_fill(~fmask, pad), (0, canvas - width), value=pad)
            start = torch.zeros(tok.shape[0], dtype=torch.long, device=device)
            last_fixed = torch.where(fmask.any(1), width - 1 - fmask.flip(1).float().argmax(1), -1)
            search_from = last_fixed.clamp_min(0)  # an EOS ends the text only from the last fixed token on
        else:
            if attention_mask is not None:
                raise ValueError("attention_mask was given without input_ids.")
            width = completion_width(cfg.max_new_tokens, cfg.max_length, 0, 0, canvas)
            start = search_from = torch.zeros(nrs, dtype=torch.long, device=device)
        batch = start.shape[0]
        read_width = int((start + width).max())  # canvas positions the output needs
        offsets = start[:, None] + torch.arange(width, device=device)[None]  # (B, M)

        def read_out(tokens: torch.Tensor) -> torch.Tensor:  # (B, read_width) canvas ids -> (B, C) output ids
            if fixed is not None:
                tokens = torch.where(fixed[:, :read_width], fixed_ids[:, :read_width], tokens)
            return cut_at_eos(tokens.gather(1, offsets), eos_ids, pad, search_from)

        steps = cfg.num_inference_steps
        if cfg.time_spacing == "learned":
            grid = learned_timesteps(steps, self.timestep_sampler.probabilities(), cfg.t_max, cfg.t_min)
        else:
            grid = uniform_timesteps(steps, cfg.t_max, cfg.t_min)
        gens = row_generators(generator, batch, device)
        z = cfg.noise_scale * randn_rows((batch, mc.num_latents, mc.latent_dim), gens, device)  # (B, N, D)
        dtype = next(self.denoiser.parameters()).dtype
        guide = fixed is not None and bool(fixed.any()) and cfg.guidance_scale > 0
        state: dict[str, Any] = {"calls": 0, "self_cond": None}
        history: list[torch.Tensor] = []

        def denoise(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self_cond = state["self_cond"] if cfg.self_conditioning else None
            x0 = self.denoise(z_t.to(dtype), t, self_cond).float()  # (B, N, D)
            state["calls"] += 1
            if guide:
                x0 = self._guide_to_fixed_tokens(x0, fixed, fixed_ids, cfg.guidance_scale, cfg.guidance_steps)
            state["self_cond"] = x0.to(dtype)
            return x0

        drafts = streamer is not None and hasattr(streamer, "put_draft")

        def on_step(step: int, t: float, z_t: torch.Tensor, x0: torch.Tensor) -> None:
            if cfg.output_history:
                history.append(x0.detach())
            if drafts:
                streamer.put_draft(value=read_out(self._canvas_logits(x0, read_width).argmax(-1)).cpu())

        if streamer is not None and prefix is not None:
            streamer.put(prefix.cpu())
        latents = sample(cfg.solver, denoise, z, grid, self.alpha_sigma, generator=gens,
                         noise_scale=cfg.noise_scale, callback=on_step)  # (B, N, D)
        logits = self._canvas_logits(latents, read_width)  # (B, W, V): the decoders' only run without streaming
        tokens = sample_tokens(logits, cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, gens)
        completion = read_out(tokens)
        sequences = completion if prefix is None else torch.cat([prefix, completion.to(prefix.dtype)], dim=1)
        if streamer is not None:
            streamer.put(completion.cpu())
            streamer.end()
        if state["calls"] != network_calls(cfg.solver, steps):
            logger.warning(f"{cfg.solver} made {state['calls']} network calls for {steps} steps.")
        if not cfg.return_dict_in_generate:
            return sequences
        return LDLMGenerationOutput(sequences=sequences, latents=latents, num_network_calls=state["calls"],
                                    timesteps=grid, history=tuple(history) if cfg.output_history else None)

    def _canvas_logits(self, latents: torch.Tensor, width: int) -> torch.Tensor:
        """Latents (B, N, D) -> logits of the first `width` canvas positions (B, width, V); the vocabulary head only
        runs where the output reads."""
        dtype = next(self.token_decoder.parameters()).dtype
        features = self.token_decoder.features(self.decode_hidden(latents.to(dtype)))[:, :width]
        return self.token_decoder.lm_head(features).float()

    def _guide_to_fixed_tokens(self, x0: torch.Tensor, fixed: torch.Tensor, fixed_ids: torch.Tensor, scale: float,
                               steps: int) -> torch.Tensor:
        """x0 (B, N, D) <- x0 - scale * g / rms(g), g = d/dx0 sum_p CE(T(G(x0))_p, c_p) over fixed positions p."""
        targets = fixed_ids[fixed]  # (K,)
        dtype = next(self.token_decoder.parameters()).dtype
        x = x0.detach()
        for _ in range(steps):
            with torch.enable_grad():
                x = x.requires_grad_(True)
                features = self.token_decoder.features(self.decode_hidden(x.to(dtype)))  # (B, L, W)
                logits = self.token_decoder.lm_head(features[fixed]).float()  # (K, V): fixed positions only
                loss = F.cross_entropy(logits, targets, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
            rms = grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)  # (B, 1, 1)
            x = (x - scale * grad / rms).detach()
        return x

    def _prepare_generation_config(self, generation_config: GenerationConfig | None,
                                   **kwargs: Any) -> LDLMGenerationConfig:
        """Priority: kwargs > `generation_config` > `self.generation_config` > `LDLMGenerationConfig` defaults."""
        base = generation_config if generation_config is not None else getattr(self, "generation_config", None)
        if isinstance(base, LDLMGenerationConfig):
            cfg = copy.deepcopy(base)
        elif isinstance(base, GenerationConfig):
            cfg = LDLMGenerationConfig(**{k: v for k, v in base.to_diff_dict().items()
                                          if k in LDLMGenerationConfig._DEFAULTS})
        elif base is None:
            cfg = LDLMGenerationConfig()
        else:
            raise ValueError(f"generation_config must be an LDLMGenerationConfig, got {type(base).__name__}.")
        unknown = sorted(k for k in kwargs if k not in LDLMGenerationConfig._DEFAULTS and k not in _IGNORED_KWARGS)
        if unknown:
            raise ValueError(f"generate() got unknown arguments {unknown}. Generation settings: "
                             f"{sorted(LDLMGenerationConfig._DEFAULTS)}; inputs: input_ids, attention_mask, "
                             "generation_config, streamer, generator, fixed_tokens, fixed_mask.")
        for key, value in kwargs.items():
            if key in LDLMGenerationConfig._DEFAULTS:
                setattr(cfg, key, value)
        cfg.validate()
        return cfg

    def adjust_generation_fn(self, generation_config: GenerationConfig | None, from_auto_class: bool,
                             from_pipeline: bool, pretrained_model_name_or_path: str | None, cache_dir: Any = None,
                             force_download: bool = False, proxies: Any = None, local_files_only: bool = False,
                             token: Any = None, revision: Any = None, subfolder: str = "",
                             trust_remote_code: Any = None, **kwargs: Any) -> None:
        """Called by `from_pretrained`: load `generation_config.json` (as DiffusionGemma does)."""
        if generation_config is not None:
            self.generation_config = LDLMGenerationConfig(**{k: v for k, v in generation_config.to_dict().items()
                                                             if k in LDLMGenerationConfig._DEFAULTS})
        elif pretrained_model_name_or_path is not None:
            try:
                self.generation_config = LDLMGenerationConfig.from_pretrained(
                    pretrained_model_name_or_path, cache_dir=cache_dir, force_download=force_download,
                    proxies=proxies, local_files_only=local_files_only, token=token, revision=revision,
                    subfolder=subfolder, _from_auto=from_auto_class, _from_pipeline=from_pipeline)
            except OSError:
                logger.info("No generation_config.json found; using the default LDLMGenerationConfig.")


__all__ = ["LDLMGenerationConfig", "LDLMGenerationMixin", "LDLMGenerationOutput", "completion_width", "cut_at_eos",
           "row_generators", "sample_tokens"]
