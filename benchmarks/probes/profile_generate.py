"""Where the time of `generate()` goes: seconds and FLOPs per part, next to this machine's dense matmul rate.

    python -m benchmarks.probes.profile_generate     # cpu-small and a paper-like width, random weights
    python -m benchmarks.probes.profile_generate --checkpoint runs/cpu-long --steps 10

Each part is timed on its own, on exactly the tensors `generate()` gives it (median of warm runs): the denoiser calls
(S steps), the latent decoder, the token decoder's body, the vocabulary head over the positions read, token
sampling and the read-out, and drawing the per-row random numbers (one generator per row). `generate()` itself is
timed end to end, and again with the vocabulary head as one call over the whole canvas instead of position chunks
for the rows not yet ended (the ids are the same; a trained checkpoint shows the saving, random weights rarely end
a row early); "rest" is what the parts do not explain (Python, solver arithmetic). FLOPs are counted with
`torch.utils.flop_counter.FlopCounterMode` (matmuls and attention), and the achieved rate of each part is set
against a dense fp32 matmul measured in the same run. Run it on a quiet machine: it times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from modeling_ldlm import LDLMConfig, LDLMForDiffusionGeneration
from modeling_ldlm.canvas import unconditional_canvas
from modeling_ldlm.generation_ldlm import HeadChunking, sample_tokens
from modeling_ldlm.random_rows import normal_rows, row_generators

from ..speed import count_flops

# Random-weight sizes around the offline MiniLM (BERT, hidden 384, 6 layers, 30,522 words); "paper-like" keeps the
# paper's widths (768, 12-layer DiT, 6-layer encoder and latent decoder, 3-layer token decoder) on 128 tokens.
SIZES = {
    "cpu-small": dict(preset="cpu-small", max_sequence_length=32, num_latents=16, latent_dim=64),
    "paper-like": dict(preset="paper-owt", max_sequence_length=128, num_latents=32, latent_dim=128),
}


def minilm_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                      intermediate_size=1536, max_position_embeddings=512, pad_token_id=0)


def build(name: str) -> LDLMForDiffusionGeneration:
    from modeling_ldlm import PRESETS

    size = dict(SIZES[name])
    fields = {**PRESETS[size.pop("preset")], **size, "frozen_lm_layer": 3}
    torch.manual_seed(0)
    config = LDLMConfig(frozen_lm_config=minilm_config(), eos_token_id=102, pad_token_id=0, bos_token_id=101,
                        **fields)
    return LDLMForDiffusionGeneration(config).eval()


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def timed_side_by_side(a, b, repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed alternately (a, b, b, a, ...), so that drift of the machine hits both alike."""
    a(), b()
    runs = {a: [], b: []}
    for i in range(repeats):
        for fn in ((a, b) if i % 2 == 0 else (b, a)):
            start = time.perf_counter()
            fn()
            runs[fn].append(time.perf_counter() - start)
    return statistics.median(runs[a]), statistics.median(runs[b])


def matmul_rate(repeats: int) -> float:
    """GFLOP/s of a dense 2048 x 2048 fp32 matmul."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / timed(lambda: a @ b, repeats) / 1e9


@contextmanager
def one_head_call(model: LDLMForDiffusionGeneration):
    """generate() with the vocabulary head as one call over the canvas (no position chunks)."""
    saved = model.head_chunking
    model.head_chunking = HeadChunking(min_rows=2**62)
    try:
        yield
    finally:
        model.head_chunking = saved


@torch.no_grad()
def profile(model: LDLMForDiffusionGeneration, batch: int, steps: int, repeats: int) -> dict:
    cfg = model.config
    model.requires_grad_(False)  # FlopCounterMode's module tracker hooks every tensor that requires grad
    z = torch.randn(batch, cfg.num_latents, cfg.latent_dim)
    t = torch.full((batch,), 0.5)
    width = cfg.max_sequence_length
    hidden = model.decode_hidden(z)
    features = model.token_decoder.features(hidden)
    logits = model.token_decoder.lm_head(features[:, :width]).float()
    eos = torch.tensor([cfg.eos_token_id])
    parts = {
        "denoiser calls": lambda: [model.denoise(z, t, z) for _ in range(steps)],
        "latent decoder": lambda: model.decode_hidden(z),
        "token decoder body": lambda: model.token_decoder.features(hidden),
        "vocabulary head": lambda: model.token_decoder.lm_head(features[:, :width]).float(),
        "token choice and read-out": lambda: unconditional_canvas(batch, width, eos, cfg.pad_token_id, z.device)
        .read_out(sample_tokens(logits, False)),
        "per-row random numbers": lambda: normal_rows(z.shape, row_generators(torch.Generator().manual_seed(0), batch)),
    }
    rows = {}
    for name, fn in parts.items():
        seconds, count = timed(fn, repeats), count_flops(fn)
        rows[name] = {"seconds": seconds, "gflop": count / 1e9, "gflop_per_s": count / 1e9 / seconds if count else 0.0}

    def whole():
        model.generate(num_return_sequences=batch, num_inference_steps=steps, self_conditioning=True,
                       generator=torch.Generator().manual_seed(0))

    def whole_one_head_call():
        with one_head_call(model):
            whole()

    (total_s, one_call_s), total_flops = timed_side_by_side(whole, whole_one_head_call, repeats), count_flops(whole)
    rows["rest (Python, solver arithmetic)"] = {"seconds": max(total_s - sum(r["seconds"] for r in rows.values()), 0.0),
                                                "gflop": 0.0, "gflop_per_s": 0.0}
    return {"batch": batch, "steps": steps, "generate_seconds": total_s, "generate_gflop": total_flops / 1e9,
            "gflop_per_sequence": total_flops / 1e9 / batch, "generate_gflop_per_s": total_flops / 1e9 / total_s,
            "generate_seconds_one_head_call": one_call_s,
            "parts": rows}


def markdown(result: dict) -> str:
    lines = [f"Dense fp32 matmul (2048^3): **{result['matmul_gflop_per_s']:.1f} GFLOP/s**, {result['threads']} "
             "threads.", ""]
    for run in result["runs"]:
        lines += [f"**{run['size']}**, batch {run['batch']}, {run['steps']} steps: generate() {run['generate_seconds']:.3f} "
                  f"s, {run['gflop_per_sequence']:.3f} GFLOP per sequence, {run['generate_gflop_per_s']:.1f} GFLOP/s "
                  f"({run['generate_gflop_per_s'] / result['matmul_gflop_per_s']:.2f} of the matmul rate); "
                  f"{run['generate_seconds_one_head_call']:.3f} s with the head as one call", "",
                  "| part | seconds | share | GFLOP | GFLOP/s |", "|---|---|---|---|---|"]
        for name, part in run["parts"].items():
            lines.append(f"| {name} | {part['seconds']:.4f} | {part['seconds'] / run['generate_seconds']:.0%} | "
                         f"{part['gflop']:.3f} | {part['gflop_per_s']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="profile this checkpoint instead of the random sizes")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args()
    models = ({"checkpoint": LDLMForDiffusionGeneration.from_pretrained(args.checkpoint).eval()} if args.checkpoint
              else {name: build(name) for name in args.sizes})
    result = {"threads": torch.get_num_threads(), "matmul_gflop_per_s": matmul_rate(args.repeats), "runs": []}
    for name, model in models.items():
        for batch in args.batches:
            result["runs"].append({"size": name, **profile(model, batch, args.steps, args.repeats)})
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
