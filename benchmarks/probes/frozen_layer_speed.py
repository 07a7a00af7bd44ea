"""What stopping the frozen LM at the layer LDLM reads saves: seconds per batch of `frozen_hidden_states` with the
early exit against the full pass, on held-out sentences, for a training config's model (fresh weights: the frozen
LM's weights are the pretrained ones, and the rest does not run).

    python -m benchmarks.probes.frozen_layer_speed train/configs/quickstart.yaml --batch 64 --batches 8 --rounds 5

This is the frozen-LM work of caching the training set's states, of every training step that does not cache them,
and of a conditional model's context pass (batch 64 is the quickstart's training batch). Rounds alternate the two
passes over the same batches; the result is the median over rounds of each pass's seconds per batch and of their
ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from .checkpoint_quality import held_out
from .prompt_latency import frozen_lm_to_its_end, load_source


def seconds_per_batch(model, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    start = time.perf_counter()
    for ids, mask in batches:
        model.frozen_hidden_states(ids, mask)
    return (time.perf_counter() - start) / len(batches)


def padded_batches(model, count: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches of `size` held-out sentences, padded to the canvas as the training collator pads them."""
    length, pad = model.config.max_sequence_length, model.config.pad_token_id
    rows = held_out(model.tokenizer, count * size, length)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    return [(ids[i:i + size], mask[i:i + size]) for i in range(0, len(rows), size)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="An LDLM folder or a training config (fresh weights).")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    model = load_source(args.source)
    batches = padded_batches(model, args.batches, args.batch)
    seconds_per_batch(model, batches[:1])  # warm-up, and the reader's check of the early exit
    rounds = []
    for _ in range(args.rounds):
        early = seconds_per_batch(model, batches)
        with frozen_lm_to_its_end(model, True):
            full = seconds_per_batch(model, batches)
        rounds.append((early, full))
    result = {"source": args.source, "threads": torch.get_num_threads(), "batch": args.batch,
              "layer": model.config.frozen_lm_layer, "frozen_lm_layers": model.config.frozen_lm_num_layers,
              "early_exit_checked": model.frozen_layer_reader.early_exit,
              "early_exit_seconds_per_batch": statistics.median(e for e, _ in rounds),
              "full_pass_seconds_per_batch": statistics.median(f for _, f in rounds),
              "full_over_early": statistics.median(f / e for e, f in rounds)}
    print(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
