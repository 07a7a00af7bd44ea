"""The scale check and the generate() profile at toy size: the same code paths the GPU and the benchmarks run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("one_thread")
def test_scale_check_counts_and_measures_at_reduced_width(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale_check.py"), "--reduced", "--batches", "2",
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


@pytest.mark.usefixtures("one_thread")
def test_profile_counts_every_part():
    sys.path.insert(0, str(ROOT))
    from benchmarks.profile_generate import profile
    from tests.conftest import tiny_model

    run = profile(tiny_model().eval(), batch=2, steps=2, repeats=1)
    parts = run["parts"]
    for name in ("denoiser calls", "latent decoder", "token decoder body", "vocabulary head"):
        assert parts[name]["gflop"] > 0 and parts[name]["seconds"] > 0
    counted = sum(p["gflop"] for p in parts.values())
    assert run["generate_gflop"] == pytest.approx(counted, rel=0.02)  # the parts are what generate() computes
