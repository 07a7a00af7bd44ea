"""Render the model card (README.md) of a trained LDLM folder from the MODEL_CARD.md template and a run's settings.

Placeholders are `{{name}}`; unknown ones are left empty. The template is the repository's MODEL_CARD.md when present,
else `DEFAULT_TEMPLATE`. Names filled: model_id, frozen_lm, frozen_lm_layer, dataset, data_mode, max_sequence_length,
num_latents, latent_dim, trainable_parameters, total_parameters, global_step, train_runtime, recipe, metrics,
samples, sample_entropy, command, license.
"""

from __future__ import annotations

import os
import re
from typing import Any

DEFAULT_TEMPLATE = """---
library_name: transformers
license: {{license}}
tags:
- latent-diffusion
- text-generation
- ldlm
pipeline_tag: text-generation
---

# {{model_id}}

A Latent Diffusion Language Model (LDLM, Meshchaninov et al. 2026, arXiv 2605.07933) trained jointly with its latent
space on top of the frozen LM `{{frozen_lm}}` (hidden layer {{frozen_lm_layer}}), on `{{dataset}}`
({{data_mode}} mode, {{max_sequence_length}} tokens per sequence), with N={{num_latents}} latents of width
D={{latent_dim}}. Trainable parameters: {{trainable_parameters}} (total with the frozen LM: {{total_parameters}}).
The weights are an exponential moving average of the training weights.

## Usage

```python
import torch
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained("{{model_id}}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{{model_id}}", trust_remote_code=True)
ids = model.generate(num_return_sequences=4, num_inference_steps=100, generator=torch.Generator().manual_seed(0))
print(tokenizer.batch_decode(ids, skip_special_tokens=True))
```

Hub inference widgets do not run custom-code models; use the snippet above, an Inference Endpoints `handler.py`,
or a Space.

## Training

{{global_step}} optimiser steps in {{train_runtime}} s. Recipe:

{{recipe}}

Command:

```bash
{{command}}
```

## Results (validation)

{{metrics}}

## Samples

Mean unigram entropy: {{sample_entropy}}.

{{samples}}
"""


def markdown_table(values: dict[str, Any]) -> str:
    rows = ["| setting | value |", "|---|---|"]
    for key, value in values.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def render_model_card(context: dict[str, Any], template: str | None = None, repo_root: str | None = None) -> str:
    """Fill `{{name}}` placeholders of the template with `context` (dicts become markdown tables)."""
    if template is None:
        path = os.path.join(repo_root or os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MODEL_CARD.md")
        template = open(path).read() if os.path.isfile(path) else DEFAULT_TEMPLATE

    def fill(match: re.Match) -> str:
        value = context.get(match.group(1).strip(), "")
        if isinstance(value, dict):
            return markdown_table(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", fill, template)
