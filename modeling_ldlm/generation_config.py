"""LDLMGenerationConfig: the sampler settings of `generate()`, saved as `generation_config.json`.

It is the single place where sampler settings are validated: `generate()` builds one per call (kwargs override the
model's saved config), and the Inference Endpoints handler builds one per request and adds only its service caps.
"""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig

from .solvers import SOLVERS, TIME_SPACINGS, check_time_grid


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class LDLMGenerationConfig(GenerationConfig):
    r"""
    Sampler settings of [`LDLMGenerationMixin.generate`], saved as `generation_config.json`.

    Args:
        num_inference_steps (`int`, defaults to 10): points of the time grid (denoiser calls, 2S - 1 for `"heun"`);
            10 scored within about 10% of 50 and 100 in the CPU benchmarks. Distilled students default to theirs.
        solver (`str`, defaults to `"euler"`): `"euler"` (DDIM), `"euler_maruyama"`, `"ddpm"`, `"dpmpp_2m"`, `"heun"`.
        t_max, t_min (`float`, defaults to 1.0, 0.05): the grid runs from t_max down to t_min, then jumps to 0.
        time_spacing (`str`, defaults to `"uniform"`): `"uniform"`, `"learned"` (the model's adaptive-timestep
            warping: equal training-loss increase between steps; uniform while the model has no statistics) or
            `"trailing"` (S times t_max (1 - i/S), i < S, ignoring t_min: the grid distilled students are trained on).
        self_conditioning (`bool`, defaults to True): feed the previous x0_hat to the denoiser.
        noise_scale (`float`, defaults to 1.0): scales the initial noise and the noise of stochastic solvers
            (below 1: less diverse, often cleaner samples).
        do_sample (`bool`, defaults to False): sample tokens (temperature / top_k / top_p) instead of argmax.
        temperature, top_k, top_p: token sampling; top_k = 0 or None and top_p = 1 disable the filters.
        guidance_scale (`float`, defaults to 1.0), guidance_steps (`int`, defaults to 1): strength of the push toward
            fixed tokens (prompts, infilling); 0 turns guidance off (fixed tokens are still forced in the output).
            Checkpoints trained with context conditioning default to 0: their denoiser reads the prompt itself.
        context_guidance_scale (`float`, defaults to 1.0): classifier-free guidance weight w of a checkpoint trained
            with context conditioning and context dropout, x0 = x0_uncond + w (x0_prompt - x0_uncond); 1 uses the
            prompt-conditioned prediction alone (one network call per step), any other value runs the denoiser on
            the batch twice (with and without the prompt) in one call.
        max_new_tokens (`int`, *optional*): completion tokens; prompt + max_new_tokens must fit the canvas.
        max_length (`int`, *optional*): bound on prompt + completion when max_new_tokens is unset (clamped to the
            canvas).
        num_return_sequences (`int`, defaults to 1): samples per prompt (the batch size when there is no prompt).
        return_dict_in_generate (`bool`, defaults to False): return an [`LDLMGenerationOutput`].
        output_history (`bool`, defaults to False): keep every step's x0_hat in the output.
        pad_token_id, bos_token_id, eos_token_id: default to the model config's.
        distilled_steps (`int`, *optional*): set in a distilled student's saved config: the step count it was
            distilled for (generate warns when asked for another).
    """

    _DEFAULTS: dict[str, Any] = {
        "num_inference_steps": 10, "solver": "euler", "t_max": 1.0, "t_min": 0.05, "time_spacing": "uniform",
        "self_conditioning": True, "noise_scale": 1.0, "do_sample": False, "temperature": 1.0, "top_k": None,
        "top_p": 1.0, "guidance_scale": 1.0, "guidance_steps": 1, "context_guidance_scale": 1.0,
        "max_new_tokens": None, "max_length": None,
        "num_return_sequences": 1, "return_dict_in_generate": False, "output_history": False,
        "pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "distilled_steps": None,
    }
    # What transformers' own GenerationConfig methods (save/load, hashing) read besides the fields: metadata only.
    _METADATA = ("_commit_hash", "_from_model_config", "transformers_version")

    def __init__(self, **kwargs: Any):
        # Like DiffusionGemmaGenerationConfig: no GenerationConfig.__init__ (its autoregressive fields would be saved
        # and validated), only this sampler's fields plus the metadata the base class's methods read. Private keys
        # a newer transformers adds on save/load ("_..." ) are kept as metadata rather than refused.
        for name, default in self._DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        for name in self._METADATA:
            setattr(self, name, kwargs.pop(name, None))
        for name in [k for k in kwargs if k.startswith("_")]:
            setattr(self, name, kwargs.pop(name))
        if kwargs:
            raise ValueError(f"Unknown LDLMGenerationConfig fields {sorted(kwargs)}; valid: {sorted(self._DEFAULTS)}.")
        self.validate()

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls._DEFAULTS)

    def validate(self, **unused_kwargs: Any) -> None:
        """Raise a ValueError naming the first invalid field."""
        for name in ("num_return_sequences", "guidance_steps"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("max_new_tokens", "max_length", "distilled_steps"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
        if self.solver not in SOLVERS:
            raise ValueError(f"Unknown solver {self.solver!r}; choose one of {SOLVERS}.")
        if self.time_spacing not in TIME_SPACINGS:
            raise ValueError(f"Unknown time_spacing {self.time_spacing!r}; choose one of {TIME_SPACINGS}.")
        check_time_grid(self.num_inference_steps, self.t_max, self.t_min)
        self._validate_token_sampling()
        for name in ("noise_scale", "guidance_scale", "context_guidance_scale"):
            value = getattr(self, name)
            if not _is_number(value) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        for name in ("self_conditioning", "do_sample", "return_dict_in_generate", "output_history"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    def _validate_token_sampling(self) -> None:
        if not _is_number(self.temperature) or not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (use do_sample=False for argmax), got {self.temperature!r}.")
        if not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise ValueError(f"top_k must be an integer >= 0 or None, got {self.top_k!r}.")

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

    @classmethod
    def from_any(cls, config: Any) -> LDLMGenerationConfig:
        """This class from any `GenerationConfig` (its fields that this sampler knows), or the defaults for None."""
        if config is None:
            return cls()
        if not isinstance(config, GenerationConfig):
            raise ValueError(f"generation_config must be an LDLMGenerationConfig, got {type(config).__name__}.")
        values = config.to_dict() if isinstance(config, cls) else config.to_diff_dict()
        return cls(**{k: v for k, v in values.items() if k in cls._DEFAULTS})


__all__ = ["LDLMGenerationConfig"]
