"""LDLM generation speed of one checkpoint: batch-1 latency and batch-64 throughput (medians of warm runs), peak
memory and executed network calls, per number of denoising steps.

    python -m benchmarks.probes.generation_speed runs/cpu-long --steps 10 25 50 100
"""

from __future__ import annotations

import argparse
import json

import torch

from modeling_ldlm import LDLMForDiffusionGeneration

from ..evaluate_arms import speed_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--solver", default="euler")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    model = LDLMForDiffusionGeneration.from_pretrained(args.checkpoint).eval()

    def sample(batch: int, steps: int, knob: float, seed: int):
        out = model.generate(num_return_sequences=batch, num_inference_steps=steps, solver=args.solver,
                             noise_scale=knob, generator=torch.Generator().manual_seed(seed),
                             return_dict_in_generate=True)
        return out.sequences.tolist(), out.num_network_calls

    for row in speed_rows("ldlm", sample, args.steps, 1.0, args.batch, repeats=5):
        print(json.dumps({"solver": args.solver, "threads": torch.get_num_threads(), **row}))

if __name__ == "__main__":
    main()
