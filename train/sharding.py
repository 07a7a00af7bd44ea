"""How LDLM shards under FSDP2 (`torch.distributed.fsdp.fully_shard`): the one place that says it, for every sharded
run (tests/train/test_fsdp.py proves it on two CPU ranks; benchmarks/probes/scale_check.py measures it on GPUs).

- Wrapping units: every block of the trainable parts whose class the model names in `_no_split_modules`
  (`TransformerBlock`, `DiTBlock`; train/accelerate/fsdp.yaml names the same classes) is its own FSDP unit, whose
  full weights exist only during its own forward and backward.
- The root unit: the model itself, holding the remaining trainable parameters (projections, embeddings, latent and
  position queries, the token head).
- The frozen LM: never sharded (its parameters are the root's `ignored_params`: each rank keeps a full copy, as
  fsdp.yaml's `fsdp_ignored_modules` says) and never given to the optimiser (`trainable_parameters`).
- Checkpoints: sharded model and optimiser state through `torch.distributed.checkpoint` (`save_sharded` /
  `load_sharded`); a `save_pretrained` folder from the gathered full state dict (`save_pretrained_from_shards`).

Only the model's `forward` all-gathers the root's parameters: call `generate` on an unsharded model (such as the
exported folder), not on a sharded one. Every rank must run the same units in the same order, since each unit
all-gathers its weights when it runs: the one random branch of LDLM's forward, the self-conditioning draw
(`self_conditioning=None` draws it from the CPU generator), agrees across ranks only while their CPU generators do
(the Trainer seeds every rank alike); pass `self_conditioning` explicitly where they may not.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

FROZEN_LM = "frozen_lm"  # the module FSDP leaves unsharded and the optimiser never sees


def in_frozen_lm(name: str) -> bool:
    """Whether a module or parameter name lies inside the frozen LM."""
    return name == FROZEN_LM or name.startswith(FROZEN_LM + ".")


def wrapping_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module outside the frozen LM whose class the model names in `_no_split_modules`."""
    classes = set(model._no_split_modules)
    return [(name, module) for name, module in model.named_modules()
            if type(module).__name__ in classes and not in_frozen_lm(name)]


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser gets: those that require gradients, never the frozen LM's."""
    return [p for name, p in model.named_parameters() if p.requires_grad and not in_frozen_lm(name)]


def mesh_device(mesh: DeviceMesh) -> torch.device:
    """The device of this rank in `mesh`."""
    if mesh.device_type == "cpu":
        return torch.device("cpu")
    return torch.device(mesh.device_type, torch.accelerator.current_device_index())


def shard_model(model: nn.Module, mesh: DeviceMesh, mp_policy: MixedPrecisionPolicy | None = None,
                reshard_after_forward: bool = True) -> nn.Module:
    """Shard `model` in place over `mesh`: each wrapping unit, then the root with the frozen LM ignored. The frozen
    LM moves to the mesh's device whole (fully_shard moves only what it manages)."""
    frozen = getattr(model, FROZEN_LM)
    frozen.requires_grad_(False)
    frozen.to(mesh_device(mesh))
    options = {"mesh": mesh, "mp_policy": mp_policy or MixedPrecisionPolicy()}
    for _, module in wrapping_units(model):
        fully_shard(module, reshard_after_forward=reshard_after_forward, **options)
    fully_shard(model, ignored_params=set(frozen.parameters()), **options)
    return model


def sharded_units(model: nn.Module) -> list[str]:
    """Names of the modules that are FSDP units ("" is the root)."""
    return [name for name, module in model.named_modules() if isinstance(module, FSDPModule)]


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: str | os.PathLike) -> None:
    """Every rank writes its shards of the model and optimiser state into `folder` (collective)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(folder))


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: str | os.PathLike) -> None:
    """Load what `save_sharded` wrote into an already sharded model and its optimiser (collective)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state gathered on rank 0, on the CPU; an empty dict on the other ranks (collective)."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def unsharded_class(model: nn.Module) -> type[nn.Module]:
    """The model's own class (fully_shard swaps in a subclass of it and `FSDPModule`)."""
    return next(cls for cls in type(model).__mro__ if not issubclass(cls, FSDPModule))


def save_pretrained_from_shards(model: nn.Module, folder: str | os.PathLike) -> None:
    """Gather the full state dict and, on rank 0, write it with `save_pretrained` through an unsharded copy of the
    model (same config, generation config and tokenizer): a folder `from_pretrained` loads (collective)."""
    state = full_state_dict(model)
    if dist.get_rank() == 0:
        copy = unsharded_class(model)(model.config)
        copy.load_state_dict(state, strict=True)
        copy.generation_config = model.generation_config
        copy.tokenizer = getattr(model, "tokenizer", None)
        copy.save_pretrained(folder)
    dist.barrier()


__all__ = ["FROZEN_LM", "full_state_dict", "in_frozen_lm", "load_sharded", "save_pretrained_from_shards",
           "save_sharded", "shard_model", "sharded_units", "trainable_parameters", "unsharded_class",
           "wrapping_units"]
