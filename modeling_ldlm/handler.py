"""Inference Endpoints handler for an exported LDLM checkpoint (copied into every folder `save_pretrained` writes).

Hub widgets do not run custom-code models; an Inference Endpoint with this `handler.py` does. Request:

    {"inputs": "a prompt" | ["p1", "p2"] | null, "parameters": {"num_inference_steps": 50, "max_new_tokens": 32,
     "solver": "euler", "num_return_sequences": 1, "do_sample": false, "temperature": 1.0, "top_p": 1.0, "seed": 0}}

`inputs` null or "" generates unconditionally. Answer: one {"generated_text", "completion", "input_index"} per
sequence, or [{"error": "..."}] for a bad request. The model loads through remote code (trust_remote_code), so the
file is standalone: no package imports. Calls are serialised with a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

MAX_STEPS = 1000
MAX_BATCH = 32
MAX_RETURN_SEQUENCES = 16
MAX_PROMPT_CHARS = 20_000
_SOLVERS = ("euler", "euler_maruyama", "ddpm", "dpmpp_2m", "heun")

# name -> (type(s), check, description)
_PARAMETERS: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "num_inference_steps": ((int,), lambda v: 1 <= v <= MAX_STEPS, f"an integer in [1, {MAX_STEPS}]"),
    "max_new_tokens": ((int,), lambda v: v >= 1, "an integer >= 1 that fits the model's canvas"),
    "num_return_sequences": ((int,), lambda v: 1 <= v <= MAX_RETURN_SEQUENCES,
                             f"an integer in [1, {MAX_RETURN_SEQUENCES}]"),
    "solver": ((str,), lambda v: v in _SOLVERS, f"one of {_SOLVERS}"),
    "time_spacing": ((str,), lambda v: v in ("uniform", "learned"), "'uniform' or 'learned'"),
    "t_max": ((int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "t_min": ((int, float), lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "self_conditioning": ((bool,), lambda v: True, "true or false"),
    "noise_scale": ((int, float), lambda v: 0 <= v <= 10, "a number in [0, 10]"),
    "do_sample": ((bool,), lambda v: True, "true or false"),
    "temperature": ((int, float), lambda v: 0 < v <= 100, "a number in (0, 100]"),
    "top_p": ((int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "top_k": ((int,), lambda v: v >= 0, "an integer >= 0"),
    "guidance_scale": ((int, float), lambda v: 0 <= v <= 100, "a number in [0, 100]"),
    "guidance_steps": ((int,), lambda v: 1 <= v <= 20, "an integer in [1, 20]"),
    "seed": ((int,), lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)"),
}


def validate_request(data: Any) -> tuple[list[str] | None, dict[str, Any]]:
    """Check a request body; return (prompts or None, generate kwargs). Raises ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError('The request body must be a JSON object: {"inputs": ..., "parameters": {...}}.')
    unknown = sorted(set(data) - {"inputs", "parameters"})
    if unknown:
        raise ValueError(f"Unknown request keys {unknown}; use 'inputs' and 'parameters'.")
    inputs = data.get("inputs")
    if inputs is None or inputs == "":
        prompts = None
    elif isinstance(inputs, str):
        prompts = [inputs]
    elif isinstance(inputs, list) and inputs and all(isinstance(x, str) and x for x in inputs):
        prompts = list(inputs)
    else:
        raise ValueError("'inputs' must be a string, a non-empty list of non-empty strings, or null.")
    if prompts is not None:
        if len(prompts) > MAX_BATCH:
            raise ValueError(f"At most {MAX_BATCH} prompts per request, got {len(prompts)}.")
        if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
            raise ValueError(f"Each prompt may have at most {MAX_PROMPT_CHARS} characters.")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise ValueError("'parameters' must be a JSON object.")
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name not in _PARAMETERS:
            raise ValueError(f"Unknown parameter {name!r}; supported: {sorted(_PARAMETERS)}.")
        types, check, description = _PARAMETERS[name]
        is_bool = isinstance(value, bool)
        if (is_bool and bool not in types) or not isinstance(value, types) or not check(value):
            raise ValueError(f"Parameter {name!r} must be {description}, got {value!r}.")
        kwargs[name] = float(value) if float in types and not is_bool else value
    batch = (len(prompts) if prompts else 1) * kwargs.get("num_return_sequences", 1)
    if batch > MAX_BATCH:
        raise ValueError(f"prompts x num_return_sequences = {batch} exceeds the cap of {MAX_BATCH} sequences.")
    return prompts, kwargs


class EndpointHandler:
    """`EndpointHandler(path)(data) -> list[dict]`, the Inference Endpoints custom-handler contract."""

    def __init__(self, path: str = "") -> None:
        self.model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            prompts, kwargs = validate_request(data)
            seed = kwargs.pop("seed", None)
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            with self.lock:
                if prompts is None:
                    sequences = self.model.generate(generator=generator, **kwargs)
                    prompt_width = 0
                else:
                    max_len = self.model.config.max_sequence_length
                    enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                         max_length=max_len)
                    sequences = self.model.generate(input_ids=enc.input_ids.to(self.model.device),
                                                    attention_mask=enc.attention_mask.to(self.model.device),
                                                    generator=generator, **kwargs)
                    prompt_width = enc.input_ids.shape[1]
        except ValueError as error:  # bad request: say what is wrong
            return [{"error": str(error)}]
        per_input = kwargs.get("num_return_sequences", 1)
        decode = self.tokenizer.batch_decode
        texts = decode(sequences, skip_special_tokens=True)
        completions = decode(sequences[:, prompt_width:], skip_special_tokens=True)
        return [{"generated_text": text, "completion": completion, "input_index": row // per_input}
                for row, (text, completion) in enumerate(zip(texts, completions))]


__all__ = ["EndpointHandler", "validate_request"]
