"""Claims from intervals: a difference counts only where the 95% intervals separate."""

import math

from benchmarks.intervals import claims, verdict


def point(value, low, high):
    return {"value": value, "low": low, "high": high}


def test_verdicts_follow_the_intervals():
    assert verdict(point(100, 90, 110), point(200, 180, 220)) == "better"
    assert verdict(point(200, 180, 220), point(100, 90, 110)) == "worse"
    assert verdict(point(100, 90, 130), point(120, 110, 140)) == "not distinguishable"


def test_claims_take_each_competitors_best_frontier():
    intervals = {"ldlm-sampled@10": point(100, 90, 110), "mdlm@16": point(300, 250, 350),
                 "mdlm@64": point(150, 120, 180), "ar@0": point(105, 95, 115),
                 "cdcd@16": point(math.nan, math.nan, math.nan)}
    ours = ("ldlm-sampled",)
    out = {c["versus"].split("@")[0]: c for c in claims(intervals, [(ours, "mdlm"), (ours, "ar"), (ours, "cdcd")])}
    assert out["mdlm"]["versus"] == "mdlm@64" and out["mdlm"]["verdict"] == "better"
    assert out["mdlm"]["ldlm"] == "ldlm-sampled@10" and out["mdlm"]["ratio"] == 100 / 150
    assert out["ar"]["verdict"] == "not distinguishable"
    assert out["cdcd"]["verdict"] == "no matched point"
    unmatched = claims({**intervals, "ldlm-sampled@10": point(math.nan, math.nan, math.nan)}, [(ours, "mdlm")])
    assert unmatched[0]["verdict"] == "LDLM has no matched point"
