"""Intervals of a result's headline quality figure, and the claims they can carry.

Each (arm, step count) frontier's gen-PPL at the data's entropy gets a 95% bootstrap interval
(`ldlm_metrics.bootstrap.bootstrap_matched_gen_ppl`: every knob point's samples and the held-out texts' entropies
resampled). A claim compares the headline LDLM arm at its default step count with another arm's best frontier (the
step count with the lowest matched gen-PPL): it holds or fails only where the two intervals do not overlap;
otherwise the two are "not distinguishable" at this number of samples.
"""

from __future__ import annotations

import math

from ldlm_metrics.bootstrap import SampleScores, bootstrap_matched_gen_ppl, distinguishable


def frontiers(quality: list[dict]) -> dict[tuple[str, int], list[dict]]:
    by: dict[tuple[str, int], list[dict]] = {}
    for row in quality:
        by.setdefault((row["arm"], row["steps"]), []).append(row)
    return by


def matched_intervals(quality: list[dict], control: dict, seed: int = 0) -> dict[str, dict]:
    """`{"<arm>@<steps>": {value, low, high, level, matched_share}}` for every frontier whose rows kept their
    per-sample scores (rows of older results did not: they get no interval)."""
    out = {}
    for (arm, steps), rows in frontiers(quality).items():
        kept = [r for r in rows if "text_nll" in r]
        if kept and "text_entropy" in control:
            scores = [SampleScores.from_row(r) for r in kept]
            out[f"{arm}@{steps}"] = bootstrap_matched_gen_ppl(scores, control["text_entropy"], seed=seed)
    return out


def best_frontier(intervals: dict[str, dict], arm: str) -> tuple[str, dict] | None:
    """The arm's step count with the lowest matched gen-PPL (None when no frontier of it reaches the entropy)."""
    own = [(k, v) for k, v in intervals.items() if k.split("@")[0] == arm and math.isfinite(v["value"])]
    return min(own, key=lambda kv: kv[1]["value"]) if own else None


def verdict(ours: dict, theirs: dict) -> str:
    """'better' / 'worse' (lower gen-PPL is better) when the intervals separate, else 'not distinguishable'."""
    if not distinguishable(ours, theirs):
        return "not distinguishable"
    return "better" if ours["value"] < theirs["value"] else "worse"


def claims(intervals: dict[str, dict], headline: str, competitors: list[str]) -> list[dict]:
    """The headline point (`"<arm>@<steps>"`) against each competitor arm's best frontier."""
    ours, out = intervals.get(headline), []
    for arm in competitors:
        best = best_frontier(intervals, arm)
        if ours is None or not math.isfinite(ours["value"]):
            out.append({"versus": arm, "ldlm": headline, "verdict": "LDLM has no matched point"})
            continue
        if best is None:
            out.append({"versus": arm, "ldlm": headline, "verdict": "no matched point"})
            continue
        key, theirs = best
        out.append({"versus": key, "ldlm": headline, "verdict": verdict(ours, theirs),
                    "ldlm_interval": [ours["low"], ours["high"]], "versus_interval": [theirs["low"], theirs["high"]],
                    "ratio": ours["value"] / theirs["value"]})
    return out


def interval_summary(quality: list[dict], control: dict, headline: str, competitors: list[str], seed: int) -> dict:
    """What a result's summary adds: every frontier's matched interval, and the claims (empty for rows without
    per-sample scores)."""
    intervals = matched_intervals(quality, control, seed)
    return {"matched_intervals": intervals, "claims": claims(intervals, headline, competitors)} if intervals else {}
