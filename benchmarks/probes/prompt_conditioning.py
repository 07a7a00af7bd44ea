"""Does a prompt condition LDLM's output?

    python -m benchmarks.probes.prompt_conditioning runs/cpu-long --num_prompts 64 --prefix_tokens 6

For held-out sentences (the last 5% of the Brown corpus, which training holds out), take the first `prefix_tokens`
tokens as a prompt and compare, under the same scorer and the same continuation length:
- conditioned: `generate(prompt)` (guidance toward the prompt), scored as prompt + continuation;
- glued: an unconditional sample of the same length appended to the same prompt.
A prompt that genuinely conditions the continuation gives it a lower gen-PPL than the glued control. The
continuation alone is scored given the prompt: PPL over continuation tokens only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path

import torch

from ldlm_metrics import load_scorer
from modeling_ldlm import LDLMForDiffusionGeneration

from ..paths import BROWN


def continuation_ppl(scorer, prompts: list[str], continuations: list[str]) -> float:
    """exp(mean NLL of the continuation tokens given the prompt) under the scorer."""
    tok, model = scorer.tokenizer, scorer.model
    start = next(i for i in (tok.bos_token_id, tok.eos_token_id) if i is not None)
    nll, count = 0.0, 0
    for prompt, cont in zip(prompts, continuations):
        p = [start] + tok(prompt, add_special_tokens=False).input_ids
        c = tok(" " + cont, add_special_tokens=False).input_ids if cont.strip() else []
        if not c:
            continue
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(p) - 1 : -1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, torch.tensor(c), reduction="sum"))
        count += len(c)
    return math.exp(nll / max(count, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--num_prompts", type=int, default=64)
    parser.add_argument("--prefix_tokens", type=int, default=6)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance_scale", type=float, default=1.0)
    parser.add_argument("--scorer", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text_file", type=Path, default=BROWN)
    args = parser.parse_args()

    model = LDLMForDiffusionGeneration.from_pretrained(args.checkpoint).eval()
    tok = model.tokenizer
    with gzip.open(args.text_file, "rt", encoding="utf-8") as f:
        lines = [s for s in (line.strip() for line in f) if s]
    held_out = lines[int(len(lines) * 0.95):]
    rows = [s for s in held_out if len(tok(s).input_ids) >= args.prefix_tokens + 6][: args.num_prompts]
    # prompt = [CLS] + the first prefix_tokens word pieces (generate drops a trailing [SEP] itself)
    prompt_ids = [tok(s).input_ids[: args.prefix_tokens + 1] for s in rows]
    prompts = [tok.decode(p, skip_special_tokens=True) for p in prompt_ids]

    start = time.perf_counter()
    conditioned = []
    for i, ids in enumerate(prompt_ids):
        out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens, num_inference_steps=args.steps,
                             guidance_scale=args.guidance_scale, generator=torch.Generator().manual_seed(args.seed + i),
                             return_dict_in_generate=True)
        conditioned.append(tok.decode(out.completions[0].tolist(), skip_special_tokens=True))
    cond_s = time.perf_counter() - start
    uncond = model.generate(num_return_sequences=len(rows), num_inference_steps=args.steps,
                            max_new_tokens=args.max_new_tokens + 1,
                            generator=[torch.Generator().manual_seed(args.seed + i) for i in range(len(rows))])
    glued = [tok.decode(r.tolist(), skip_special_tokens=True) for r in uncond]  # [CLS] + up to max_new_tokens

    scorer = load_scorer(args.scorer)
    result = {
        "checkpoint": str(args.checkpoint), "num_prompts": len(rows), "prefix_tokens": args.prefix_tokens,
        "max_new_tokens": args.max_new_tokens, "steps": args.steps, "guidance_scale": args.guidance_scale,
        "seed": args.seed, "scorer": scorer.name, "scorer_checksum": scorer.checksum,
        "continuation_ppl_conditioned": continuation_ppl(scorer, prompts, conditioned),
        "continuation_ppl_glued_unconditional": continuation_ppl(scorer, prompts, glued),
        "conditioned_seconds_per_prompt": cond_s / len(rows),
        "examples": [{"prompt": p, "conditioned": c, "glued": g} for p, c, g in zip(prompts, conditioned, glued)][:5],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
