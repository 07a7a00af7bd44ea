"""The LDLMConfig fields a command line may set (`--config_overrides`), and the ones a trained model cannot change.

`SHAPE_FIELDS` are the fields that fix the shapes of a model's weights and latents (which frozen-LM layer its
encoder reads, and whether its denoiser has the cross-attention of context conditioning): fine-tuning (train/run.py)
may not change them, and a distillation student (train/distill.py) must share them with its teacher.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from modeling_ldlm import LDLMConfig

PARTS = ("encoder", "denoiser", "latent_decoder", "token_decoder")
SHAPE_FIELDS: tuple[str, ...] = (
    "frozen_lm_layer", "max_sequence_length", "num_latents", "latent_dim", "vocab_size", "mlp_ratio", "timestep_bins",
    "context_conditioning",
    *(f"{part}_{size}" for part in PARTS for size in ("hidden_size", "num_layers", "num_heads")),
)


def config_field_names() -> list[str]:
    """LDLMConfig's own fields, those `--config_overrides` may set (the frozen LM's config comes from --frozen_lm)."""
    own = inspect.get_annotations(LDLMConfig)  # not the fields of transformers' base config
    return [f.name for f in dataclasses.fields(LDLMConfig) if f.name in own and f.name != "frozen_lm_config"]


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """'denoiser_num_layers=6,dropout=0.1' -> {"denoiser_num_layers": 6, "dropout": 0.1}; ValueError on a malformed
    entry or a name that is not an LDLMConfig field."""
    fields: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"--config_overrides entries look like key=value, got {item!r}.")
        key, value = (s.strip() for s in item.split("=", 1))
        fields[key] = _parse_value(value)
    unknown = [key for key in fields if key not in config_field_names()]
    if unknown:
        raise ValueError(f"--config_overrides names {', '.join(map(repr, unknown))}, which LDLMConfig does not have; "
                         f"its fields are: {', '.join(config_field_names())}.")
    return fields


def _parse_value(text: str) -> bool | int | float | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


__all__ = ["PARTS", "SHAPE_FIELDS", "config_field_names", "parse_config_overrides"]
