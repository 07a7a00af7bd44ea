"""The scale check at toy widths: the same code path the GPU runs (python -m benchmarks.probes.scale_check)."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.paths import ROOT


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
