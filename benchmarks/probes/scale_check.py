"""Scale check of the paper-scale path: sizes, FLOPs and memory at the real `paper-owt` sizes, and measured speed.

    python -m benchmarks.probes.scale_check --count_only   # any machine, ~2 min on 2 cores: parameters, FLOPs, memory
    python -m benchmarks.probes.scale_check                # a GPU: also training and generation speed (~10 min)
    python -m benchmarks.probes.scale_check --batches 1 --generation_steps 10 50   # CPU at full size: ~8 min on 2 cores
    python -m benchmarks.probes.scale_check --reduced      # CPU, toy widths: the same code path, for the tests
    python -m benchmarks.probes.scale_check --reduced --processes 2   # CPU, two gloo ranks: the multi-GPU smoke's path

The model is built from configs alone (GPT-2 small's config for the frozen LM, random weights, random tokens): no
download. Counted, not guessed: parameters per part; FLOPs of one joint training step (forward + backward) and of
one generated sequence at 10/50/200 steps (`FlopCounterMode`, one real sequence on the CPU); the bytes autograd
saves for backward (activations) per sequence, with and without gradient checkpointing; weights, gradients and AdamW
states.
Measured on the device it runs on: peak memory and tokens/s of bf16 joint training at several batch sizes with and
without gradient checkpointing, generation throughput at 10/50/200 steps, and the MDLM baseline's training at the
same generation-time size. Out-of-memory batch sizes are reported as such, not fatal.
With more than one GPU, a multi-GPU smoke launches the probe again under torchrun, one process per GPU: the same
training step at the smallest batch size per GPU, data parallel (DDP) and then sharded (FSDP2, as train/sharding.py
shards), with tokens/s over all GPUs and the peak memory of each GPU ("multi_gpu" in the output; skipped, with the
reason, on one GPU or none).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.nn.parallel import DistributedDataParallel
from torch.utils.flop_counter import FlopCounterMode

from modeling_ldlm import PRESETS, LDLMConfig, LDLMForDiffusionGeneration
from train.sharding import shard_model, trainable_parameters

from ..baselines import MDLMBaseline
from ..paths import ROOT

PARTS = ("frozen_lm", "encoder", "denoiser", "latent_decoder", "token_decoder")
REDUCED = dict(max_sequence_length=64, num_latents=64, latent_dim=32, encoder_hidden_size=32, encoder_num_layers=1,
               encoder_num_heads=2, denoiser_hidden_size=32, denoiser_num_layers=2, denoiser_num_heads=2,
               latent_decoder_hidden_size=32, latent_decoder_num_layers=1, latent_decoder_num_heads=2,
               token_decoder_hidden_size=32, token_decoder_num_layers=1, token_decoder_num_heads=2)


def paper_config(reduced: bool) -> LDLMConfig:
    from transformers import GPT2Config

    lm = (GPT2Config(n_layer=4, n_embd=32, n_head=2, n_positions=64, vocab_size=1000, bos_token_id=999,
                     eos_token_id=999) if reduced else GPT2Config())
    fields = {**PRESETS["paper-owt"], **(REDUCED if reduced else {})}
    return LDLMConfig(frozen_lm_config=lm, eos_token_id=lm.eos_token_id, bos_token_id=lm.bos_token_id,
                      pad_token_id=lm.eos_token_id, **fields)


def parameters(model: LDLMForDiffusionGeneration) -> dict[str, float]:
    """Millions of parameters per part, and the trainable and generation-time totals."""
    counts = {part: sum(p.numel() for p in getattr(model, part).parameters()) / 1e6 for part in PARTS}
    counts["trainable"] = sum(v for k, v in counts.items() if k != "frozen_lm")
    counts["generation_time"] = counts["denoiser"] + counts["latent_decoder"] + counts["token_decoder"]
    return counts


def batch(config: LDLMConfig, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, config.vocab_size, (size, config.max_sequence_length), device=device)
    return ids, torch.ones_like(ids)


def set_activation_checkpointing(model: LDLMForDiffusionGeneration, on: bool) -> None:
    """Switch activation checkpointing on or off: newer transformers 5.x name it `activation_checkpointing_enable`
    and keep `gradient_checkpointing_enable` only as a deprecated alias; earlier 5.x have only the latter."""
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    getattr(model, f"{prefix}_checkpointing_{'enable' if on else 'disable'}")()


def training_step_counts(model: LDLMForDiffusionGeneration, checkpointing: bool) -> dict[str, float]:
    """FLOPs and saved-for-backward bytes of one joint training step, for one sequence."""
    saved = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    if checkpointing:
        set_activation_checkpointing(model, True)
    ids, mask = batch(model.config, 1, "cpu")
    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(ids, mask, self_conditioning=False).loss.backward()
    if checkpointing:
        set_activation_checkpointing(model, False)
    return {"gflop": counter.get_total_flops() / 1e9, "saved_activation_mib": saved[0] / 2**20}


@torch.no_grad()
def generation_gflop(model: LDLMForDiffusionGeneration, steps: int) -> float:
    """FLOPs of one sequence: `steps` denoiser calls, then the decoders once over the whole canvas."""
    config, counter = model.config, FlopCounterMode(display=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:  # FlopCounterMode's module tracker hooks every tensor that requires grad, even under no_grad
        p.requires_grad_(False)
    z = torch.zeros(1, config.num_latents, config.latent_dim)
    t = torch.zeros(1)
    with counter:
        model.denoise(z, t, z)
        per_call = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        model.canvas_logits(z, config.max_sequence_length)
    for p in trainable:
        p.requires_grad_(True)
    return (steps * per_call + counter.get_total_flops()) / 1e9


def memory_model(params: dict[str, float], activations_mib: float, batch_size: int) -> dict[str, float]:
    """GiB for fp32 weights (all parts), fp32 gradients and AdamW moments (trainable parts), activations x batch."""
    total = sum(params[p] for p in PARTS) * 1e6
    trainable = params["trainable"] * 1e6
    gib = {"weights": total * 4 / 2**30, "gradients": trainable * 4 / 2**30, "adamw": trainable * 8 / 2**30,
           "activations": activations_mib * batch_size / 1024}
    gib["total"] = sum(gib.values())
    return gib


def counted(reduced: bool) -> dict:
    """Everything that is counted rather than timed (one sequence, on the CPU)."""
    torch.manual_seed(0)
    model = LDLMForDiffusionGeneration(paper_config(reduced))
    params = parameters(model)
    train = {name: training_step_counts(model, ckpt) for name, ckpt in (("plain", False), ("checkpointing", True))}
    return {"parameters_m": params, "train_step_per_sequence": train,
            "generation_gflop_per_sequence": {s: generation_gflop(model, s) for s in (10, 50, 200)},
            "memory_gib_at_batch": {b: {k: memory_model(params, v["saved_activation_mib"], b) for k, v in train.items()}
                                    for b in (8, 16, 32)}}


def timed(fn, repeats: int = 3) -> float:
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def peak_gib(fn) -> float | None:
    if not torch.cuda.is_available():
        return None
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2**30


def measure_training(step_fn, sizes: list[int], tokens_per_sequence: int, checkpointing: bool) -> list[dict]:
    rows = []
    for size in sizes:
        try:
            seconds = timed(lambda size=size: step_fn(size))
            rows.append({"batch": size, "checkpointing": checkpointing, "seconds_per_step": seconds,
                         "tokens_per_s": size * tokens_per_sequence / seconds,
                         "peak_gib": peak_gib(lambda size=size: step_fn(size))})
        except torch.OutOfMemoryError:
            rows.append({"batch": size, "checkpointing": checkpointing, "out_of_memory": True})
            torch.cuda.empty_cache()
    return rows


def measured(reduced: bool, sizes: list[int], device: str, generation_steps: tuple[int, ...] = (10, 50, 200)) -> dict:
    """Speed and memory on this device (bf16 autocast on a GPU, fp32 on a CPU)."""
    config = paper_config(reduced)
    torch.manual_seed(0)
    model = LDLMForDiffusionGeneration(config).to(device)
    model.fit_hidden_statistics([batch(config, 2, device)])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def ldlm_step(size: int) -> None:
        with torch.autocast(device_type=device, dtype=dtype, enabled=device == "cuda"):
            loss = model(*batch(config, size, device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rows = []
    for checkpointing in (False, True):
        model.train()
        if checkpointing:
            set_activation_checkpointing(model, True)
        rows += measure_training(ldlm_step, sizes, config.max_sequence_length, checkpointing)
        if checkpointing:
            set_activation_checkpointing(model, False)
    model.eval()
    generation = {}
    for steps in generation_steps:
        with torch.autocast(device_type=device, dtype=dtype, enabled=device == "cuda"):
            seconds = timed(lambda steps=steps: model.generate(num_return_sequences=sizes[0], num_inference_steps=steps),
                            repeats=1)
        generation[steps] = {"batch": sizes[0], "seq_per_s": sizes[0] / seconds}
    return {"device": device, "ldlm_training": rows, "generation": generation,
            "mdlm_training": mdlm_training(config, model, sizes, device, dtype)}


def mdlm_training(config: LDLMConfig, model, sizes: list[int], device: str, dtype) -> list[dict]:
    """MDLM at LDLM's generation-time size: the width of the denoiser, layers to match its parameter count."""
    target = parameters(model)["generation_time"] * 1e6
    width, heads = config.denoiser_hidden_size, config.denoiser_num_heads
    per_layer = 12 * width**2
    layers = max(1, round((target - config.vocab_size * width) / per_layer))
    mdlm = MDLMBaseline(config.vocab_size, config.max_sequence_length, width, layers, heads, config.bos_token_id,
                        config.eos_token_id, config.pad_token_id).to(device)
    optimizer = torch.optim.AdamW(mdlm.parameters(), lr=1e-4)

    def step(size: int) -> None:
        ids, mask = batch(config, size, device)
        with torch.autocast(device_type=device, dtype=dtype, enabled=device == "cuda"):
            loss = mdlm.loss(ids, mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rows = measure_training(step, sizes, config.max_sequence_length, False)
    return [{**r, "layers": layers, "parameters_m": sum(p.numel() for p in mdlm.parameters()) / 1e6} for r in rows]


def multi_gpu(reduced: bool, batch_per_gpu: int, processes: int | None) -> dict:
    """The DDP and FSDP rows of the multi-GPU smoke, run by this probe relaunched under torchrun with `processes`
    processes (default: one per GPU); skipped, with the reason printed, for fewer than two."""
    processes = torch.cuda.device_count() if processes is None else processes
    if processes < 2:
        reason = f"{torch.cuda.device_count()} GPU(s) here: the DDP/FSDP smoke needs more than one"
        print(f"multi-GPU smoke skipped: {reason}", file=sys.stderr)
        return {"skipped": reason}
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # this process's cached blocks, before the processes of the smoke start
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "multi_gpu.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "benchmarks.probes.scale_check", "--parallel_worker", str(out), "--batches", str(batch_per_gpu),
               *(["--reduced"] if reduced else [])]
        code = subprocess.run(cmd, cwd=ROOT).returncode
        return json.loads(out.read_text()) if code == 0 else {"failed": f"exit status {code}: {' '.join(cmd)}"}


def init_rank() -> torch.device:
    """Join the launch's process group (NCCL on GPUs, gloo on CPUs); this rank's device."""
    if not torch.cuda.is_available():
        dist.init_process_group("gloo")
        return torch.device("cpu")
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")
    return torch.device("cuda", torch.cuda.current_device())


def parallel_model(config: LDLMConfig, mode: str, device: torch.device):
    """The same freshly seeded model, wrapped in DDP or sharded like train/sharding.py; its unwrapped self."""
    torch.manual_seed(0)
    model = LDLMForDiffusionGeneration(config).train()
    if mode == "fsdp":
        return shard_model(model, init_device_mesh(device.type, (dist.get_world_size(),))), model
    model.to(device)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None), model


def parallel_row(config: LDLMConfig, mode: str, size: int, device: torch.device) -> dict:
    """Seconds per bf16 training step (fp32 on CPUs) of `size` sequences per GPU (process), tokens/s over all of
    them, and the peak memory of each (None on CPUs)."""
    wrapped, model = parallel_model(config, mode, device)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
    coin = torch.Generator().manual_seed(0)  # the self-conditioning draw, alike on every rank (FSDP needs that)

    def step() -> None:
        conditioning = bool(torch.rand((), generator=coin) < config.self_conditioning_prob)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = wrapped(*batch(config, size, str(device)), self_conditioning=conditioning).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    mine = [timed(step), peak_gib(step)]
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    seconds = max(s for s, _ in every)
    return {"gpus": len(every), "batch_per_gpu": size, "seconds_per_step": seconds,
            "tokens_per_s": size * len(every) * config.max_sequence_length / seconds,
            "peak_gib_per_gpu": [gib for _, gib in every]}


def parallel_worker(reduced: bool, size: int, output: Path) -> None:
    """One process of the multi-GPU smoke: DDP, then FSDP; the first writes both rows to `output`."""
    device = init_rank()
    config = paper_config(reduced)
    rows = {}
    for mode in ("ddp", "fsdp"):
        rows[mode] = parallel_row(config, mode, size, device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if dist.get_rank() == 0:
        output.write_text(json.dumps({"device": device.type, **rows}, indent=1))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="toy widths (CPU, the tests)")
    parser.add_argument("--count_only", action="store_true", help="only what the meta device can count")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 8 16 32 (2 4 reduced)")
    parser.add_argument("--generation_steps", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--processes", type=int, default=None,
                        help="processes of the multi-GPU smoke (default: one per GPU; 2 on a CPU tests its path)")
    parser.add_argument("--parallel_worker", type=Path, default=None, help=argparse.SUPPRESS)  # set by multi_gpu
    args = parser.parse_args()
    if args.parallel_worker is not None:
        parallel_worker(args.reduced, (args.batches or [8])[0], args.parallel_worker)
        return
    result = {"sizes": "reduced" if args.reduced else "paper-owt (GPT-2 small frozen, L = N = 1024, D = 768)",
              "counted": counted(args.reduced)}
    if not args.count_only:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        sizes = args.batches or ([2, 4] if args.reduced else [8, 16, 32])
        result["measured"] = measured(args.reduced, sizes, device, tuple(args.generation_steps))
        result["multi_gpu"] = multi_gpu(args.reduced, sizes[0], args.processes)
    text = json.dumps(result, indent=1, default=str)
    if args.output is not None:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
