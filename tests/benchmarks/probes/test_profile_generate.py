"""The generate() profile at toy size (benchmarks/probes/profile_generate.py): its parts add up to generate()."""

import pytest

from benchmarks.probes.profile_generate import profile
from tests.conftest import tiny_model


@pytest.mark.usefixtures("one_thread")
def test_profile_counts_every_part():
    run = profile(tiny_model().eval(), batch=2, steps=2, repeats=1)
    parts = run["parts"]
    for name in ("denoiser calls", "latent decoder", "token decoder body", "vocabulary head"):
        assert parts[name]["gflop"] > 0 and parts[name]["seconds"] > 0
    counted = sum(p["gflop"] for p in parts.values())
    assert run["generate_gflop"] == pytest.approx(counted, rel=0.02)  # the parts are what generate() computes
