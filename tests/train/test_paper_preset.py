"""The paper-scale preset (train/configs/owt-paper.yaml) end to end at reduced width on CPU: packed 1024-token
sequences from a local text file, a GPT-2-family frozen LM read at layer -3, one latent per token (N = L = 1024),
bf16, gradient checkpointing, evaluation, a checkpoint, the final save, samples at the preset's 200 steps, and a
fresh-process remote-code load.

Overridden, and why: widths and layer counts (the point: reduced size); the data source and its size (a local
file instead of OpenWebText, so batch sizes, eval sizes, steps and workers fit a few hundred blocks of text);
report_to (tensorboard is not installed). Everything else is the preset's."""

import dataclasses
import gzip
import json
import textwrap
from pathlib import Path

import pytest
from transformers import TrainingArguments

from tests.conftest import tiny_gpt2_folder
from tests.modeling_ldlm.test_remote_code import run_fresh
from train.run import main

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "train" / "configs"

WIDTHS = ("latent_dim=16,encoder_hidden_size=32,encoder_num_layers=1,encoder_num_heads=2,denoiser_hidden_size=32,"
          "denoiser_num_layers=2,denoiser_num_heads=2,latent_decoder_hidden_size=32,latent_decoder_num_layers=1,"
          "latent_decoder_num_heads=2,token_decoder_hidden_size=32,token_decoder_num_layers=1,"
          "token_decoder_num_heads=2")

# newer transformers 5.x renamed the argument (the old name still works, with a FutureWarning); 5.20 has only the old one
CHECKPOINTING_FLAG = ("--activation_checkpointing"
                      if "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
                      else "--gradient_checkpointing")
LOAD = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModel
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    out = model.generate(num_return_sequences=1, num_inference_steps=2, max_new_tokens=8, return_dict_in_generate=True)
    print(json.dumps({"layer": model.config.frozen_lm_layer, "latents": model.config.num_latents,
                      "length": model.config.max_sequence_length, "calls": out.num_network_calls}))
""")


@pytest.mark.usefixtures("one_thread")
def test_owt_paper_preset_runs_end_to_end_at_reduced_width(tmp_path):
    lm = tiny_gpt2_folder(tmp_path / "gpt2", num_layers=4, positions=1024)  # layer -3 exists
    with gzip.open(ROOT / "data" / "brown.txt.gz", "rt", encoding="utf-8") as f:
        lines = [next(f).strip() for _ in range(1000)]
    (tmp_path / "train.txt").write_text("\n".join(lines[:850]))
    (tmp_path / "valid.txt").write_text("\n".join(lines[850:]))
    out = tmp_path / "out"
    summary = main([str(PRESETS / "owt-paper.yaml"), "--frozen_lm", str(lm), "--config_overrides", WIDTHS,
                    "--dataset_name", "none", "--train_file", str(tmp_path / "train.txt"),
                    "--validation_file", str(tmp_path / "valid.txt"), "--output_dir", str(out),
                    "--max_steps", "2", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2",
                    "--max_eval_batches", "1", "--eval_steps", "2", "--save_steps", "2", "--logging_steps", "1",
                    "--warmup_steps", "1", "--preprocessing_num_workers", "1", "--dataloader_num_workers", "0",
                    "--num_samples", "1", CHECKPOINTING_FLAG, "true", "--report_to", "none",
                    "--disable_tqdm", "true"])
    m = summary["metrics"]
    assert all(m[k] == m[k] for k in ("train_loss", "eval_loss", "eval_token_accuracy"))  # finite, not NaN
    assert (out / "checkpoint-2" / "model.safetensors").exists() and (out / "model.safetensors").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["max_sequence_length"] == config["num_latents"] == 1024 and config["frozen_lm_layer"] == -3
    assert len(summary["samples"]) == 1  # drawn at the preset's sample_steps (200)
    run = json.loads((out / "ldlm_run.json").read_text())
    assert "owt-paper.yaml" in run["command"]
    loaded = json.loads(run_fresh(LOAD, str(out), tmp_path=tmp_path))
    assert loaded == {"layer": -3, "latents": 1024, "length": 1024, "calls": 2}
