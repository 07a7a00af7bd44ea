"""Sharded training (FSDP2, `train.sharding`) on two CPU ranks over gloo, launched with the FSDP accelerate config,
against one process on the same global batches:

- the gradients are exactly the mean of the two halves' gradients (as gradient accumulation over the same two
  micro-batches computes them in one process) and agree with one forward over the whole batch to float32 rounding;
  the weights after each of two AdamW steps are exactly the single-process ones;
- a sharded checkpoint (model and optimiser, `torch.distributed.checkpoint`) reloads bit-exact into a freshly sharded
  model with other weights, which then takes the next step exactly as the continuing run does;
- the gathered full weights, saved with `save_pretrained`, load with remote code in a fresh process and generate the
  same ids as the single-process model;
- the blocks named in the model's `_no_split_modules` (and in fsdp.yaml) are the units, the frozen LM is neither
  sharded nor optimised, and accelerate's own FSDP2 preparation under fsdp.yaml makes the same units.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from modeling_ldlm import LDLMForDiffusionGeneration
from modeling_ldlm.layers import TransformerBlock
from tests.modeling_ldlm.test_remote_code import run_fresh
from tests.train.fsdp_ranks import adamw, build, global_batch, joint_loss, optimizer_step, rank_share
from tests.train.test_train_run import free_port
from train.sharding import FROZEN_LM, in_frozen_lm, wrapping_units

ROOT = Path(__file__).resolve().parents[2]
FSDP_YAML = ROOT / "train" / "accelerate" / "fsdp.yaml"
WORLD = 2
EXACT = {"rtol": 0.0, "atol": 0.0}

GENERATE = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModel
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
    ids = model.generate(num_return_sequences=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    print(json.dumps(ids.tolist()))
""")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Two gloo ranks under `accelerate launch --config_file train/accelerate/fsdp.yaml`: their output folder and
    rank 0's record (tests/train/fsdp_ranks.py)."""
    out = tmp_path_factory.mktemp("fsdp")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_YAML),
           "--num_processes", str(WORLD), "--main_process_port", str(free_port()), "-m", "tests.train.fsdp_ranks",
           str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)  # ranks that disagree on a collective hang: fail instead
    assert result.returncode == 0, result.stderr[-4000:]
    return out, torch.load(out / "ranks.pt", weights_only=True)


def one_process(micro_batches: int) -> dict:
    """Two AdamW steps in one process on the same global batches, each split into `micro_batches` equal micro-batches
    whose gradients are averaged (1: one forward over the whole batch): the first step's gradients and the weights
    after each step."""
    model = build()
    optimizer = adamw(model)
    record = {}
    for step in (1, 2):
        for part in range(micro_batches):
            (joint_loss(model, rank_share(global_batch(step), part, micro_batches)) / micro_batches).backward()
        if step == 1:
            record["gradients"] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        optimizer_step(optimizer)
        record[f"after_{step}"] = {k: v.clone() for k, v in model.state_dict().items()}
    return record


@pytest.fixture(scope="module")
def accumulated(one_thread):
    """The global batches as the ranks' two shares, in one process."""
    return one_process(WORLD)


def test_sharded_gradients_and_steps_equal_one_process(ranks, accumulated):
    _, record = ranks
    # FSDP's reduce-scatter averages the ranks' gradients: exactly the mean of the two shares' gradients (a sum, or a
    # mean taken twice, fails here, and in the weights of both steps).
    torch.testing.assert_close(record["gradients"], accumulated["gradients"], **EXACT)
    torch.testing.assert_close(record["after_one"], accumulated["after_1"], **EXACT)
    torch.testing.assert_close(record["after_two"], accumulated["after_2"], **EXACT)
    # One forward over the whole global batch sums in another order: the same gradients to float32 rounding.
    torch.testing.assert_close(record["gradients"], one_process(1)["gradients"], rtol=1e-5, atol=1e-6)


def test_sharded_checkpoint_reloads_bit_exact_and_resumes_identically(ranks):
    _, record = ranks
    torch.testing.assert_close(record["reloaded"], record["after_one"], **EXACT)  # model: weights and buffers
    saved, reloaded = record["optimizer_after_one"], record["optimizer_reloaded"]
    torch.testing.assert_close(reloaded["state"], saved["state"], **EXACT)  # AdamW: step, both moments
    assert reloaded["param_groups"] == saved["param_groups"]
    assert {float(s["step"]) for s in saved["state"].values()} == {1.0}
    torch.testing.assert_close(record["resumed_after_two"], record["after_two"], **EXACT)


def test_exported_folder_loads_fresh_and_generates_as_one_process(ranks, accumulated, tmp_path):
    out, _ = ranks
    folder = out / "export"
    torch.testing.assert_close(load_file(folder / "model.safetensors"), accumulated["after_1"], **EXACT)
    model = build()
    model.load_state_dict(accumulated["after_1"])
    model.eval()
    expected = model.generate(num_return_sequences=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert json.loads(run_fresh(GENERATE, str(folder), tmp_path=tmp_path)) == expected.tolist()


def test_the_blocks_are_the_units_and_the_frozen_lm_is_left_whole(ranks):
    _, record = ranks
    model = build()
    blocks = [name for name, _ in wrapping_units(model)]
    assert record["layout"]["units"] == ["", *blocks]  # the root, then every block
    assert not record["layout"]["frozen_lm_sharded"]
    trainable = sorted(n for n, p in model.named_parameters() if not in_frozen_lm(n))
    assert record["layout"]["optimised"] == trainable  # everything but the frozen LM
    # accelerate under fsdp.yaml: the same units (plus the frozen LM's input embeddings, which accelerate always
    # makes a unit; here one that holds no sharded parameter), and the frozen LM unsharded.
    units = record["accelerate_layout"]["units"]
    assert [u for u in units if not in_frozen_lm(u)] == ["", *blocks]
    assert not record["accelerate_layout"]["frozen_lm_sharded"]


def test_the_model_and_fsdp_yaml_name_the_same_wrapping_units():
    fsdp = yaml.safe_load(FSDP_YAML.read_text())["fsdp_config"]
    declared = LDLMForDiffusionGeneration._no_split_modules
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"].split(",") == declared
    assert fsdp["fsdp_ignored_modules"] == FROZEN_LM
    model = build()
    used = {type(m).__name__ for name, m in model.named_modules() if not in_frozen_lm(name)}
    assert set(declared) <= used
    assert {type(m).__name__ for _, m in wrapping_units(model)} == set(declared)


def test_wrapping_units_never_include_the_frozen_lm():
    model = build()
    model.frozen_lm.extra_block = TransformerBlock(8, 2, 2.0)  # a frozen LM with a block class of the model's own
    names = [name for name, _ in wrapping_units(model)]
    assert names and not any(in_frozen_lm(n) for n in names)
    assert len(names) == sum(len(getattr(model, part).blocks) for part in
                             ("encoder", "denoiser", "latent_decoder", "token_decoder"))
