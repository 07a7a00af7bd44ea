"""Checkpoints are self-contained: a fresh Python process without the package loads them through remote code."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import tiny_lm_folder, tiny_model, token_batch

FRESH_LOAD = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    folder, ids, mask, t, noise = sys.argv[1], *map(json.loads, sys.argv[2:6])
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    causal = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert type(causal).__name__ == "LDLMForDiffusionGeneration"
    out = model(torch.tensor(ids), torch.tensor(mask), timesteps=torch.tensor(t), noise=torch.tensor(noise),
                self_conditioning=False)
    print(json.dumps({"loss": out.loss.item(), "training": model.training}))
""")


def run_fresh(code: str, *args: str, tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_saved_folder_loads_with_remote_code_in_fresh_process(tmp_path, lm_kind):
    model = tiny_model(lm_kind).eval()
    folder = tmp_path / "ckpt"
    model.save_pretrained(folder)
    files = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "modeling_ldlm.py", "configuration_ldlm.py"} <= files
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForCausalLM"] == "modeling_ldlm.LDLMForDiffusionGeneration"
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    t, noise = torch.tensor([0.3, 0.8]), torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0))
    expected = model(ids, mask, timesteps=t, noise=noise, self_conditioning=False).loss.item()
    out = json.loads(run_fresh(FRESH_LOAD, str(folder), *(json.dumps(x.tolist()) for x in (ids, mask, t, noise)),
                               tmp_path=tmp_path))
    assert abs(out["loss"] - expected) < 1e-5
    assert out["training"] is False


# What a checkpoint carries: the model's remote code (the modules generation, forward, loading, the text-generation
# pipeline and the Inference Endpoints handler run), its config, its generation config and its weights; nothing else.
CHECKPOINT_FILES = {
    "config.json", "generation_config.json", "model.safetensors",
    "modeling_ldlm.py", "configuration_ldlm.py", "adaptive_timesteps.py", "canvas.py", "decoders.py", "denoiser.py",
    "encoder.py", "generation_config.py", "generation_ldlm.py", "guidance.py", "handler.py", "layers.py",
    "noise_schedules.py", "pipeline_ldlm.py", "context.py", "frozen_layer.py", "random_rows.py", "solvers.py",
    "token_ids.py",
}


def test_a_checkpoint_carries_only_what_it_runs(tmp_path):
    tiny_model().save_pretrained(tmp_path / "ckpt")
    assert set(os.listdir(tmp_path / "ckpt")) == CHECKPOINT_FILES


def test_from_frozen_lm_loads_lm_weights_and_ships_the_tokenizer(tmp_path, lm_kind):
    from transformers import AutoModel

    lm_dir = tiny_lm_folder(tmp_path / "lm", lm_kind)
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm_dir), num_latents=3, max_sequence_length=16,
                                                      latent_dim=8, encoder_hidden_size=32, encoder_num_heads=2,
                                                      denoiser_hidden_size=32, denoiser_num_heads=2,
                                                      latent_decoder_hidden_size=32, latent_decoder_num_heads=2,
                                                      token_decoder_hidden_size=32, token_decoder_num_heads=2)
    assert model.config.num_latents == 3
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == (0, 2, 3)
    reference = AutoModel.from_pretrained(lm_dir)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(model.frozen_lm.state_dict()[name], tensor)
    enc = model.tokenizer(["w1 w2 w3", "w4"], padding=True, return_tensors="pt")
    assert torch.isfinite(model(enc.input_ids, enc.attention_mask).loss)
    folder = tmp_path / "ckpt"
    model.save_pretrained(folder)
    assert (folder / "tokenizer_config.json").exists()
    reloaded = LDLMForDiffusionGeneration.from_pretrained(folder)
    assert reloaded.tokenizer is not None
    assert reloaded.tokenizer("w1 w2 w3").input_ids == enc.input_ids[0].tolist() == [2, 6, 7, 8, 3]


def test_inference_needs_only_the_core_requirements(tmp_path):
    """Loading a checkpoint and generating must not import the training or evaluation extras (accelerate, datasets,
    evaluate, mauve): an inference-only install has only torch, transformers, safetensors and huggingface-hub."""
    tiny_model().eval().save_pretrained(tmp_path / "ckpt")
    code = textwrap.dedent("""
        import sys
        for name in ("accelerate", "datasets", "evaluate", "mauve"):
            sys.modules[name] = None  # importing any of them now raises ImportError
        import torch
        from modeling_ldlm import LDLMForDiffusionGeneration
        model = LDLMForDiffusionGeneration.from_pretrained(sys.argv[1]).eval()
        ids = model.generate(num_return_sequences=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
        print(tuple(ids.shape))
    """)
    assert run_fresh(code, str(tmp_path / "ckpt"), tmp_path=tmp_path).startswith("(2,")
