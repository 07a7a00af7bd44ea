"""The scale check at toy widths: the same code path the GPU runs (python -m benchmarks.probes.scale_check)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.paths import ROOT
from benchmarks.probes.scale_check import multi_gpu


@pytest.mark.usefixtures("one_thread")
def test_scale_check_counts_and_measures_at_reduced_width(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.probes.scale_check", "--reduced", "--batches", "2",
                             "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads(out.read_text())
    params = r["counted"]["parameters_m"]
    assert params["trainable"] == pytest.approx(sum(params[p] for p in ("encoder", "denoiser", "latent_decoder",
                                                                       "token_decoder")))
    train = r["counted"]["train_step_per_sequence"]
    assert train["plain"]["gflop"] > 0 and train["checkpointing"]["gflop"] > train["plain"]["gflop"]  # recompute
    assert train["checkpointing"]["saved_activation_mib"] < train["plain"]["saved_activation_mib"]
    gen = r["counted"]["generation_gflop_per_sequence"]
    assert gen["10"] < gen["50"] < gen["200"]
    measured = r["measured"]
    assert {row["checkpointing"] for row in measured["ldlm_training"]} == {False, True}
    assert all(row["tokens_per_s"] > 0 for row in measured["ldlm_training"] + measured["mdlm_training"])
    assert set(measured["generation"]) == {"10", "50", "200"}
    if torch.cuda.device_count() < 2:
        assert "skipped" in r["multi_gpu"]


@pytest.mark.usefixtures("one_thread")
def test_the_multi_gpu_smoke_runs_ddp_and_fsdp_on_two_cpu_ranks(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # two gloo ranks: the code path the GPUs run, not their speed
    rows = multi_gpu(reduced=True, batch_per_gpu=2, processes=2)
    assert rows["device"] == "cpu"
    for mode in ("ddp", "fsdp"):
        row = rows[mode]
        assert row["gpus"] == 2 and row["batch_per_gpu"] == 2 and row["tokens_per_s"] > 0
        assert len(row["peak_gib_per_gpu"]) == 2
