"""Watch a sample sharpen: transformers.TextDiffusionStreamer redraws the decoded x0_hat after every denoising step.

    python examples/stream.py path/to/checkpoint --prompt "once upon a time" --sleep 0.05
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModel, AutoTokenizer, TextDiffusionStreamer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--prompt", default=None, help="omit for an unconditional sample")
    parser.add_argument("--steps", type=int, default=None,
                        help="default: the checkpoint's num_inference_steps; more steps show more drafts")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=0.05, help="pause between drafts, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = AutoModel.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    streamer = TextDiffusionStreamer(tokenizer, sleep_time=args.sleep, skip_special_tokens=True)
    inputs = tokenizer(args.prompt, return_tensors="pt") if args.prompt else {}
    steps = {} if args.steps is None else {"num_inference_steps": args.steps}
    model.generate(**inputs, **steps, max_new_tokens=args.max_new_tokens, streamer=streamer,
                   generator=torch.Generator().manual_seed(args.seed))
    print()


if __name__ == "__main__":
    main()
