"""What limits reconstruction: the token decoder or the latents.

    python -m benchmarks.probes.token_decoder_ceiling runs/quickstart --train_steps 100

For a trained LDLM folder, on held-out Brown sentences (the last 5% of the corpus, which the CPU presets hold out):
the token decoder's accuracy on the frozen LM's own normalised states h (its ceiling) and on the decoded states
G(E(h)) (the reconstruction). With `--train_steps` > 0 it then trains a fresh token decoder of the folder's size on
the true states alone, once with a free linear vocabulary head and once with the head tied to the frozen LM's input
embeddings (token_head="frozen_embeddings"), and reports the held-out accuracy of each every 100 steps. Prints one
JSON object, and writes it to `--output` when given.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from modeling_ldlm import LDLMForDiffusionGeneration
from modeling_ldlm.decoders import TokenDecoder

from ..paths import BROWN


def corpus_rows(tokenizer, held_out: bool, count: int, length: int) -> list[list[int]]:
    """Token ids with the tokenizer's special tokens of the first `count` Brown sentences that fit the canvas: from
    the last 5% of the corpus (held out by the CPU presets) or from the first 95% (their training part)."""
    lines = [line.strip() for line in gzip.open(BROWN, "rt", encoding="utf-8") if line.strip()]
    cut = int(len(lines) * 0.95)
    rows = []
    for line in lines[cut:] if held_out else lines[:cut]:
        ids = tokenizer(line).input_ids
        if len(ids) <= length:
            rows.append(ids)
        if len(rows) == count:
            break
    return rows


def padded(rows: list[list[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row[:length]), 1
    return ids, mask


@torch.no_grad()
def true_states(model: LDLMForDiffusionGeneration, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model.normalize_hidden(model.frozen_hidden_states(ids, mask))


def accuracy(decoder: torch.nn.Module, states: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    with torch.no_grad():
        return float((decoder(states).argmax(-1) == ids)[mask.bool()].float().mean())


@torch.no_grad()
def ceiling(model: LDLMForDiffusionGeneration, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    """The folder's token decoder on the true states and on the decoded ones."""
    states = true_states(model, ids, mask)
    decoded = model.decode_hidden(model.encode(ids, mask))
    return {"from_frozen_states": accuracy(model.token_decoder, states, ids, mask),
            "from_decoded_states": accuracy(model.token_decoder, decoded, ids, mask)}


def train_alone(model, head: str, train_rows, val, steps: int, seed: int) -> dict[int, float]:
    """A fresh token decoder (the folder's sizes, `head`) trained on the true states: held-out accuracy by step."""
    torch.manual_seed(seed)
    decoder = TokenDecoder(model.config.__class__(**{**model.config.to_dict(), "token_head": head}))
    if head == "frozen_embeddings":
        decoder.lm_head.bind(model.frozen_lm.get_input_embeddings())
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0)
    rng, length, curve = random.Random(seed), model.config.max_sequence_length, {}
    val_states = true_states(model, *val)
    for step in range(1, steps + 1):
        ids, mask = padded(rng.sample(train_rows, 64), length)
        logits = decoder(true_states(model, ids, mask))
        loss = F.cross_entropy(logits[mask.bool()], ids[mask.bool()])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0 or step == steps:
            curve[step] = accuracy(decoder, val_states, *val)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--samples", type=int, default=512, help="held-out sentences scored")
    parser.add_argument("--train_steps", type=int, default=0, help="train fresh token decoders this many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    model = LDLMForDiffusionGeneration.from_pretrained(args.folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    length = model.config.max_sequence_length
    val = padded(corpus_rows(tokenizer, True, args.samples, length), length)
    result = {"folder": str(args.folder), "token_head": model.config.token_head, **ceiling(model, *val)}
    for head in ("linear", "frozen_embeddings") if args.train_steps > 0 else ():
        train_rows = corpus_rows(tokenizer, False, 20000, length)
        result[f"trained_alone_{head}"] = train_alone(model, head, train_rows, val, args.train_steps, args.seed)
    print(json.dumps(result))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
