"""The data pipeline probe at toy size (python -m benchmarks.probes.data_throughput)."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.paths import ROOT
from tests.conftest import tiny_lm_folder


def test_data_throughput_measures_both_paths_on_the_same_text(tmp_path):
    """Both paths tokenise and pack the whole file into as many tokens (their validation hold-outs differ only in
    where the split falls), and the extrapolation follows from the rates."""
    lm = tiny_lm_folder(tmp_path / "lm")
    out = tmp_path / "data.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.probes.data_throughput", "--size_mb", "2",
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
