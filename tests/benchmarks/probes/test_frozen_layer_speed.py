"""The frozen-layer probe on the quickstart's config: both passes timed over the same batches, the early exit checked."""

from benchmarks.probes.frozen_layer_speed import main


def test_probe_times_the_early_exit_against_the_full_pass():
    out = main(["train/configs/quickstart.yaml", "--batch", "4", "--batches", "2", "--rounds", "1"])
    assert (out["layer"], out["frozen_lm_layers"]) == (3, 6)
    assert out["early_exit_checked"] == {3: True}
    assert out["early_exit_seconds_per_batch"] > 0 and out["full_pass_seconds_per_batch"] > 0
    assert out["full_over_early"] > 0
