"""Inference Endpoints handler for an exported LDLM checkpoint (shipped in every folder `save_pretrained` writes).

Hub widgets do not run custom-code models; an Inference Endpoint with this `handler.py` does. Request:

    {"inputs": "a prompt" | ["p1", "p2"] | null, "parameters": {"num_inference_steps": 50, "max_new_tokens": 32,
     "solver": "euler", "num_return_sequences": 1, "do_sample": false, "temperature": 1.0, "top_p": 1.0, "seed": 0}}

`inputs` null or "" generates unconditionally. `parameters` are the model's generation settings (its
`LDLMGenerationConfig`, which validates them) plus `seed`; this file adds only the service's caps on work per
request. Answer: one {"generated_text", "completion", "input_index"} per sequence, or [{"error": "..."}] for a bad
request. The model loads through remote code (trust_remote_code), so the file is standalone: no package imports.
Calls are serialised with a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

MAX_BATCH = 32  # prompts x num_return_sequences per request
MAX_PROMPT_CHARS = 20_000
CAPS = {"num_inference_steps": 1000, "num_return_sequences": 16, "guidance_steps": 20}  # work per request
# Generation settings that shape the Python return value or the token ids, not the text: not for requests.
NOT_REQUEST_PARAMETERS = ("return_dict_in_generate", "output_history", "pad_token_id", "bos_token_id",
                          "eos_token_id", "distilled_steps")


def request_parameters(settings_fields: tuple[str, ...]) -> tuple[str, ...]:
    """The parameter names a request may set: the generation settings, less `NOT_REQUEST_PARAMETERS`, plus seed."""
    return tuple(f for f in settings_fields if f not in NOT_REQUEST_PARAMETERS) + ("seed",)


def validate_request(data: Any, settings_fields: tuple[str, ...]) -> tuple[list[str] | None, dict[str, Any]]:
    """Check a request's shape and the service caps; return (prompts or None, generate kwargs). The values of the
    generation settings are checked by the model's generation config. Raises ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError('The request body must be a JSON object: {"inputs": ..., "parameters": {...}}.')
    unknown = sorted(set(data) - {"inputs", "parameters"})
    if unknown:
        raise ValueError(f"Unknown request keys {unknown}; use 'inputs' and 'parameters'.")
    prompts = _prompts(data.get("inputs"))
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise ValueError("'parameters' must be a JSON object.")
    allowed = request_parameters(settings_fields)
    for name, value in params.items():
        if name not in allowed:
            raise ValueError(f"Unknown parameter {name!r}; supported: {sorted(allowed)}.")
        cap = CAPS.get(name)
        if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise ValueError(f"Parameter {name!r} is capped at {cap} by this endpoint, got {value}.")
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValueError(f"Parameter 'seed' must be an integer in [0, 2**63), got {seed!r}.")
    batch = (len(prompts) if prompts else 1) * params.get("num_return_sequences", 1)
    if isinstance(batch, int) and batch > MAX_BATCH:
        raise ValueError(f"prompts x num_return_sequences = {batch} exceeds the cap of {MAX_BATCH} sequences.")
    return prompts, dict(params)


def _prompts(inputs: Any) -> list[str] | None:
    if inputs is None or inputs == "":
        return None
    if isinstance(inputs, str):
        prompts = [inputs]
    elif isinstance(inputs, list) and inputs and all(isinstance(x, str) and x for x in inputs):
        prompts = list(inputs)
    else:
        raise ValueError("'inputs' must be a string, a non-empty list of non-empty strings, or null.")
    if len(prompts) > MAX_BATCH:
        raise ValueError(f"At most {MAX_BATCH} prompts per request, got {len(prompts)}.")
    if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
        raise ValueError(f"Each prompt may have at most {MAX_PROMPT_CHARS} characters.")
    return prompts


class EndpointHandler:
    """`EndpointHandler(path)(data) -> list[dict]`, the Inference Endpoints custom-handler contract."""

    def __init__(self, path: str = "") -> None:
        self.model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.settings_fields = type(self.model.generation_config).field_names()
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            prompts, kwargs = validate_request(data, self.settings_fields)
            with self.lock:
                out = self._generate(prompts, kwargs)
        except (ValueError, TypeError) as error:  # bad request: say what is wrong
            return [{"error": str(error)}]
        per_input = kwargs.get("num_return_sequences", 1)
        decode = self.tokenizer.batch_decode
        texts = decode(out.sequences, skip_special_tokens=True)
        completions = decode(out.completions, skip_special_tokens=True)
        return [{"generated_text": text, "completion": completion, "input_index": row // per_input}
                for row, (text, completion) in enumerate(zip(texts, completions))]

    def _generate(self, prompts: list[str] | None, kwargs: dict[str, Any]):
        seed = kwargs.pop("seed", None)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        inputs = {}
        if prompts is not None:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.model.config.max_sequence_length)
            inputs = {"input_ids": enc.input_ids.to(self.model.device),
                      "attention_mask": enc.attention_mask.to(self.model.device)}
        return self.model.generate(**inputs, generator=generator, return_dict_in_generate=True, **kwargs)


__all__ = ["EndpointHandler", "validate_request"]
