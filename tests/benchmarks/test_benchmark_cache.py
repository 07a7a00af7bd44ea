"""The benchmark's per-point cache of quality sweeps (benchmarks/stage_cache.py::cached_sweep)."""

import json

import pytest

from benchmarks.stage_cache import cached_sweep


def test_widening_a_sweep_computes_only_the_new_points(tmp_path):
    calls = []

    def point(steps, knob):
        calls.append((steps, knob))
        return [{"steps": steps, "knob": knob, "gen_ppl": 100 * steps + knob}]

    first = cached_sweep(tmp_path, "quality-x", point, [10, 50], [1.0])
    assert calls == [(10, 1.0), (50, 1.0)]
    assert [(r["steps"], r["knob"]) for r in first] == [(10, 1.0), (50, 1.0)]

    calls.clear()
    wide = cached_sweep(tmp_path, "quality-x", point, [10, 50], [0.7, 1.0, 1.3])
    assert calls == [(10, 0.7), (10, 1.3), (50, 0.7), (50, 1.3)]  # the two measured points are reused
    assert [(r["steps"], r["knob"]) for r in wide] == [(10, 0.7), (10, 1.0), (10, 1.3), (50, 0.7), (50, 1.0), (50, 1.3)]
    assert all(r["gen_ppl"] == 100 * r["steps"] + r["knob"] for r in wide)

    calls.clear()
    narrow = cached_sweep(tmp_path, "quality-x", point, [50], [1.3, 0.7])
    assert calls == [] and [(r["steps"], r["knob"]) for r in narrow] == [(50, 1.3), (50, 0.7)]
    assert len(json.loads((tmp_path / "eval" / "quality-x.json").read_text())) == 6  # nothing measured is dropped


def test_a_crash_mid_sweep_keeps_the_points_already_measured(tmp_path):
    def point(steps, knob):
        if knob == 1.3:
            raise RuntimeError("killed")
        return [{"steps": steps, "knob": knob}]

    with pytest.raises(RuntimeError, match="killed"):
        cached_sweep(tmp_path, "quality-y", point, [10], [0.7, 1.0, 1.3])
    saved = json.loads((tmp_path / "eval" / "quality-y.json").read_text())
    assert [(r["steps"], r["knob"]) for r in saved] == [(10, 0.7), (10, 1.0)]
