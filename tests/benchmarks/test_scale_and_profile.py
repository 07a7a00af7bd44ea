"""The scale check and the generate() profile at toy size: the same code paths the GPU and the benchmarks run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


def test_data_throughput_measures_both_paths_on_the_same_text(tmp_path):
    """The data benchmark at toy size: both paths tokenise and pack the whole file into as many tokens (their
    validation hold-outs differ only in where the split falls), and the extrapolation follows from the rates."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import tiny_lm_folder

    lm = tiny_lm_folder(tmp_path / "lm")
    out = tmp_path / "data.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_throughput.py"), "--size_mb", "2",
                             "--max_length", "64", "--workers", "1", "--tokenizer", str(lm), "--work_dir",
                             str(tmp_path / "work"), "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads(out.read_text())
    quarter, full, stream = r["runs"]
    assert r["corpus"]["bytes"] >= 2 * 2**20 and full["text_bytes"] == stream["text_bytes"] > 3 * quarter["text_bytes"]
    assert full["tokens"] == full["blocks"] * 64 and full["tokens"] == pytest.approx(stream["tokens"], rel=0.01)
    assert full["arrow_cache_bytes"] > 0 and "arrow_cache_bytes" not in stream
    owt = r["openwebtext"]["streaming"]
    assert 0 < stream["cpu_seconds"] and 0 < full["cpu_seconds"]
    rate = stream["tokens"] / stream["cpu_seconds"]
    assert owt["owt_hours_on_16_workers"] == pytest.approx(9.04e9 / (rate * 16) / 3600)
