"""What each of two gloo ranks runs for tests/train/test_fsdp.py, launched with the FSDP accelerate config:
`accelerate launch --config_file train/accelerate/fsdp.yaml --num_processes 2 -m tests.train.fsdp_ranks OUT`.

- A tiny LDLM sharded by `train.sharding`, two AdamW steps, each rank on its half of every global batch; after the
  first step a sharded checkpoint (model and optimiser), which a freshly built and sharded model (other random
  weights) loads and continues from, and the full weights exported as a save_pretrained folder.
- The units accelerate's own FSDP2 preparation makes from that launch's config (the FSDP_* variables `accelerate
  launch` set from fsdp.yaml).

Rank 0 writes what the test compares into OUT/ranks.pt. The global batches, the loss call and the optimiser are
defined here once, for the ranks and for the test's single-process run alike.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from tests.conftest import tiny_config, tiny_model, token_batch
from train.sharding import (
    full_state_dict,
    load_sharded,
    save_pretrained_from_shards,
    save_sharded,
    shard_model,
    sharded_units,
    trainable_parameters,
)

GLOBAL_BATCH = 4  # sequences per optimiser step, over all ranks
LENGTH = 12  # no padding: every rank's mean loss weighs its tokens as the global mean does
GAMMA = 0.5  # encoder_grad_scale: the encoder gets a scaled share of the diffusion gradient
LEARNING_RATE = 1e-2


def global_batch(step: int) -> dict[str, torch.Tensor]:
    """The model inputs of optimiser step `step`, with every random draw (timesteps, noise) fixed in advance."""
    ids, mask = token_batch(GLOBAL_BATCH, LENGTH, seed=step)
    config, g = tiny_config(), torch.Generator().manual_seed(1000 + step)
    latents = (GLOBAL_BATCH, config.num_latents, config.latent_dim)
    return {"input_ids": ids, "attention_mask": mask, "timesteps": torch.rand(GLOBAL_BATCH, generator=g),
            "noise": torch.randn(latents, generator=g), "decoder_noise": torch.randn(latents, generator=g)}


def rank_share(batch: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    """This rank's contiguous share of a global batch."""
    return {k: v.chunk(world)[rank] for k, v in batch.items()}


def joint_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """LDLMTrainer.compute_loss's call of the model, at a fixed gamma and with self-conditioning on."""
    return model(**batch, encoder_grad_scale=GAMMA, self_conditioning=True, token_loss_fraction=1.0).loss


def build(seed: int = 0):
    """The tiny model, in training mode."""
    return tiny_model(seed=seed).train()


def adamw(model) -> torch.optim.AdamW:
    """The optimiser over the trainable parameters (after sharding: over the shards)."""
    return torch.optim.AdamW(trainable_parameters(model), lr=LEARNING_RATE)


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def full_gradients(model) -> dict[str, torch.Tensor]:
    """Every gradient, gathered whole on every rank (collective)."""
    return {n: p.grad.full_tensor() for n, p in model.named_parameters() if p.grad is not None}


def full_weights(model) -> dict[str, torch.Tensor]:
    """A copy of the whole model's state on rank 0, empty elsewhere (collective; unsharded tensors such as the frozen
    LM's come back as the live ones, hence the copy)."""
    return copy.deepcopy(full_state_dict(model))


def full_optimizer_state(model, optimizer) -> dict:
    """A copy of the optimiser state gathered on rank 0, empty elsewhere (collective)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return copy.deepcopy(get_optimizer_state_dict(model, optimizer, options=options))


def layout(model, optimizer) -> dict:
    """Which modules are FSDP units, whether the frozen LM stayed plain tensors, what the optimiser holds."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {"units": sharded_units(model),
            "frozen_lm_sharded": any(isinstance(p, DTensor) for p in model.frozen_lm.parameters()),
            "optimised": sorted(names[id(p)] for group in optimizer.param_groups for p in group["params"])}


def accelerate_layout() -> dict:
    """The FSDP units of accelerate's FSDP2 preparation under this launch's config, and whether any frozen-LM parameter
    was sharded. Accelerate shards only on accelerators, so its preparation function is called directly, with the few
    accelerator attributes it reads; the launch's default mesh here is the CPU's."""
    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None, mixed_precision="no",
                                  is_main_process=dist.get_rank() == 0, device=torch.device("cpu"))
    model = fsdp2_prepare_model(accelerator, build())
    return {"units": sharded_units(model),
            "frozen_lm_sharded": any(isinstance(p, DTensor) for p in model.frozen_lm.parameters())}


def train_step(model, optimizer, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Optimiser step `step` on this rank's share of its global batch; returns the averaged gradients it applied."""
    joint_loss(model, rank_share(global_batch(step), rank, world)).backward()
    gradients = full_gradients(model)
    optimizer_step(optimizer)
    return gradients


def run(out: Path) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = shard_model(build(), mesh)
    optimizer = adamw(model)
    record = {"layout": layout(model, optimizer), "accelerate_layout": accelerate_layout(),
              "gradients": train_step(model, optimizer, 1, rank, world)}
    save_sharded(model, optimizer, out / "checkpoint")
    save_pretrained_from_shards(model, out / "export")
    record.update(after_one=full_weights(model), optimizer_after_one=full_optimizer_state(model, optimizer))
    resumed = shard_model(build(seed=1), mesh)  # other weights everywhere, the frozen LM's too: the checkpoint sets all
    resumed_optimizer = adamw(resumed)
    load_sharded(resumed, resumed_optimizer, out / "checkpoint")
    record.update(reloaded=full_weights(resumed), optimizer_reloaded=full_optimizer_state(resumed, resumed_optimizer))
    train_step(model, optimizer, 2, rank, world)
    train_step(resumed, resumed_optimizer, 2, rank, world)
    record.update(after_two=full_weights(model), resumed_after_two=full_weights(resumed))
    if rank == 0:
        torch.save(record, out / "ranks.pt")


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        run(Path(sys.argv[1]))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
