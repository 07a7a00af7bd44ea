"""Generate from a saved LDLM checkpoint: unconditionally and from a prompt; prints network calls and time.

    python examples/generate.py path/to/checkpoint --prompt "the weather today"
    python examples/generate.py path/to/checkpoint --steps 25 --solver dpmpp_2m

--steps, --solver and --noise-scale default to the checkpoint's generation_config.json (10 Euler steps for a model
trained by train/run.py, the distilled step count for a distilled student).
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModel, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="folder or Hub id written by LDLMForDiffusionGeneration.save_pretrained")
    parser.add_argument("--prompt", default="the weather today")
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="default: the checkpoint's num_inference_steps")
    parser.add_argument("--solver", default=None, help="euler | euler_maruyama | ddpm | dpmpp_2m | heun")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--noise-scale", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = AutoModel.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    given = dict(num_inference_steps=args.steps, solver=args.solver, noise_scale=args.noise_scale)
    settings = {"return_dict_in_generate": True, **{k: v for k, v in given.items() if v is not None}}

    start = time.perf_counter()
    out = model.generate(num_return_sequences=args.num_samples, max_new_tokens=args.max_new_tokens,
                         generator=torch.Generator().manual_seed(args.seed), **settings)
    seconds = time.perf_counter() - start
    print(f"== unconditional: {args.num_samples} samples, {out.num_network_calls} network calls, {seconds:.3f} s")
    for text in tokenizer.batch_decode(out.sequences, skip_special_tokens=True):
        print("  ", text)

    enc = tokenizer(args.prompt, return_tensors="pt")
    start = time.perf_counter()
    out = model.generate(enc.input_ids, enc.attention_mask, num_return_sequences=args.num_samples,
                         max_new_tokens=args.max_new_tokens, generator=torch.Generator().manual_seed(args.seed),
                         **settings)
    seconds = time.perf_counter() - start
    print(f"== prompt {args.prompt!r}: {out.num_network_calls} network calls, {seconds:.3f} s")
    for text in tokenizer.batch_decode(out.sequences, skip_special_tokens=True):
        print("  ", text)


if __name__ == "__main__":
    main()
